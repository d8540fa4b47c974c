"""The seed use case, from Python: boot a VM, provision a prompt and skill
folders in one request, run a command that reads them with its output
streamed, copy the results out, and print the boot timeline.

    python examples/seed.py [ROOTFS]

ROOTFS defaults to $KRUNBOX_TEST_ROOTFS (set in the lab), else the rootfs
`cargo xtask setup` builds (~/.local/share/krunbox/rootfs). On a host
whose KVM cannot run libkrun's guest, run it in the lab:

    cargo xtask lab --python VENV/bin/python \
        --file python/examples/seed.py:/opt/seed.py -- python /opt/seed.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import krunbox

PROMPT = "Summarise the skills you were given.\n"
WORK = "/work/seed"
"""Where the prompt and the skills go in the guest."""


def default_rootfs() -> Path:
    if os.environ.get("KRUNBOX_TEST_ROOTFS"):
        return Path(os.environ["KRUNBOX_TEST_ROOTFS"])
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(data) / "krunbox" / "rootfs"


def make_skills(root: Path, count: int) -> Path:
    for i in range(count):
        skill = root / f"skill-{i}"
        skill.mkdir(parents=True)
        (skill / "SKILL.md").write_text(f"# Skill {i}\nDo thing {i}.\n")
    return root


async def main(rootfs: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        skills = make_skills(Path(tmp) / "skills", 10)
        # overlay_root: the guest's writes stay in its memory; the rootfs
        # on the host is never changed, and every run starts from it.
        async with await krunbox.Vm.boot(rootfs, memory_mib=256, overlay_root=True) as vm:
            plan = krunbox.Provision().mkdir(WORK).write(f"{WORK}/PROMPT.md", PROMPT)
            for skill in sorted(skills.iterdir()):
                plan.tree(skill, f"{WORK}/skills/{skill.name}")
            await vm.provision(plan)

            script = (
                "cat PROMPT.md; "
                'for s in skills/*/SKILL.md; do head -n1 "$s"; done; '
                "ls skills | wc -l > count"
            )
            proc = await vm.stream(["sh", "-c", script], cwd=WORK)
            async for chunk in proc.stdout:
                sys.stdout.write(chunk.decode(errors="replace"))
            status = await proc.wait()

            out = Path(tmp) / "results"
            await vm.copy_out(f"{WORK}/count", out)
            print(f"skills counted in the guest: {out.read_text().strip()}")

            timeline = vm.timeline()
            print(f"boot: ready after {timeline.ready_ms:.0f} ms"
                  f" (runner configured {timeline.configured_ms:.0f} ms,"
                  f" VM entered {timeline.entered_ms:.0f} ms)")
        return status.returncode


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else default_rootfs()
    sys.exit(asyncio.run(main(root)))
