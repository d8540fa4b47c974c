"""The blocking facade, on the same host-process agent."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import krunbox
from krunbox import _krunbox
from krunbox.blocking import Vm, _run


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[Vm]:
    announce, ops = str(tmp_path / "announce.sock"), str(tmp_path / "ops.sock")
    listener = _krunbox.AgentListener(announce)
    child = subprocess.Popen(
        [os.environ["KRUNBOX_AGENT_BIN"], "--unix-announce", announce, "--unix-listen", ops],
        stdin=subprocess.DEVNULL,
    )

    async def accept() -> _krunbox.Agent:
        return await listener.accept(ops)

    try:
        yield Vm(krunbox.Vm(_run(accept())))
    finally:
        child.kill()
        child.wait()


def test_calls_read_like_subprocess(vm: Vm, tmp_path: Path) -> None:
    result = vm.exec(["sh", "-c", "echo hi; exit 5"])
    assert (result.returncode, result.stdout) == (5, b"hi\n")
    vm.write_file(str(tmp_path / "f"), "data")
    assert vm.read_file(str(tmp_path / "f")) == b"data"
    assert vm.stat(str(tmp_path / "f")).size == 4
    with pytest.raises(krunbox.CommandFailed):
        vm.exec(["false"], check=True)


def test_streams_and_daemons(vm: Vm) -> None:
    proc = vm.stream(["sh", "-c", "echo one; echo two"])
    assert b"".join(proc.stdout) == b"one\ntwo\n"
    assert proc.wait().code == 0
    daemon = vm.spawn(["sh", "-c", "echo up; exec sleep 60"])
    assert daemon.wait(0.1) is None
    daemon.kill()
    status = daemon.wait(5)
    assert status is not None and status.signal == 15
    assert daemon.output().stdout == b"up\n"
