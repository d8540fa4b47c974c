"""No runner outlives its VM object: run by the VM suite on booted VMs
(tests/vm/python_cases.rs), after the example.

    python vm_lifecycle.py ROOTFS

Boots three VMs: one whose object is dropped, one left by an exception
inside ``async with``, one whose program exits without shutting it down;
checks after each that its runner is gone, printing a line per check.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
from pathlib import Path

import krunbox

MEMORY_MIB = 128

CHILD = """
import asyncio, os, sys, krunbox
async def main():
    vm = await krunbox.Vm.boot(sys.argv[1], memory_mib=int(sys.argv[2]))
    print(vm.runner_pid, flush=True)
    os._exit(0)
asyncio.run(main())
"""


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no such file, or no such process while reading it
        return False
    return stat.rsplit(") ", 1)[1][0] != "Z"


async def gone(pid: int, what: str) -> None:
    for _ in range(150):
        if not running(pid):
            print(f"{what}: runner gone")
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"{what}: runner {pid} still runs after 15 s")


async def main(rootfs: str) -> None:
    vm: krunbox.Vm | None = await krunbox.Vm.boot(rootfs, memory_mib=MEMORY_MIB)
    assert vm is not None and vm.runner_pid is not None
    pid = vm.runner_pid
    vm = None
    gc.collect()
    await gone(pid, "dropped")

    pid = 0
    try:
        async with await krunbox.Vm.boot(rootfs, memory_mib=MEMORY_MIB) as boxed:
            pid = boxed.runner_pid or 0
            raise RuntimeError("inside async with")
    except RuntimeError:
        pass
    await gone(pid, "exception")

    child = subprocess.run(
        [sys.executable, "-P", "-c", CHILD, rootfs, str(MEMORY_MIB)],
        capture_output=True,
        check=True,
        env=os.environ,
    )
    await gone(int(child.stdout), "program exit")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
