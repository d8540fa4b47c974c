"""Provisioning, copies, mkdir and stat."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import krunbox
from krunbox.testing import HostAgentVm


def _skills(root: Path, count: int) -> Path:
    for i in range(count):
        skill = root / f"skill-{i}"
        (skill / "scripts").mkdir(parents=True)
        (skill / "SKILL.md").write_text(f"# skill {i}\n")
        (skill / "scripts" / "run.sh").write_text("#!/bin/sh\necho run\n")
        (skill / "scripts" / "run.sh").chmod(0o755)
    return root


async def test_provision_in_one_request(vm: HostAgentVm, scratch: Path) -> None:
    skills = _skills(scratch / "skills-src", 3)
    work = scratch / "guest" / "work"
    plan = (
        krunbox.Provision()
        .mkdir(str(work), 0o700)
        .write(str(work / "PROMPT.md"), "Fix the bug\n")
        .write(str(work / "bin" / "tool"), b"#!/bin/sh\n", 0o755)
        .symlink(str(work / "prompt"), "PROMPT.md")
        .tree(skills, str(work / "skills"))
        .chmod(str(work / "PROMPT.md"), 0o600)
    )
    await vm.provision(plan)
    assert (work / "PROMPT.md").read_text() == "Fix the bug\n"
    assert (work / "PROMPT.md").stat().st_mode & 0o777 == 0o600
    assert (work / "bin" / "tool").stat().st_mode & 0o777 == 0o755
    assert os.readlink(work / "prompt") == "PROMPT.md"
    assert (work / "skills" / "skill-2" / "SKILL.md").read_text() == "# skill 2\n"
    run = await vm.exec([str(work / "skills" / "skill-1" / "scripts" / "run.sh")])
    assert run.stdout == b"run\n"


async def test_copy_a_tree_in_and_out(vm: HostAgentVm, scratch: Path) -> None:
    src = _skills(scratch / "src", 2)
    stats = await vm.copy_in(src, str(scratch / "guest-copy"))
    assert stats.entries >= 8 and stats.skipped == []
    back = await vm.copy_out(str(scratch / "guest-copy"), scratch / "back")
    assert back.bytes == stats.bytes
    assert sorted(p.relative_to(scratch / "back").as_posix() for p in (scratch / "back").rglob("*")) == sorted(
        p.relative_to(src).as_posix() for p in src.rglob("*")
    )


async def test_a_failed_copy_leaves_nothing(vm: HostAgentVm, scratch: Path) -> None:
    with pytest.raises(krunbox.AgentError) as error:
        await vm.copy_out(str(scratch / "missing"), scratch / "dest")
    assert error.value.kind == "not_found"
    assert not (scratch / "dest").exists()
    with pytest.raises(krunbox.CopyError):
        await vm.copy_in(scratch / "no-such-host-dir", str(scratch / "x"))
    assert not (scratch / "x").exists()


async def test_mkdir_stat_write_and_read(vm: HostAgentVm, scratch: Path) -> None:
    await vm.mkdir(str(scratch / "a" / "b"), 0o750)
    stat = await vm.stat(str(scratch / "a" / "b"))
    assert (stat.kind, stat.mode & 0o777) == ("dir", 0o750)
    await vm.write_file(str(scratch / "a" / "f"), "text")
    assert await vm.read_file(str(scratch / "a" / "f")) == b"text"
    assert (await vm.stat(str(scratch / "a" / "f"))).size == 4
