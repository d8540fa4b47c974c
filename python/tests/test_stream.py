"""Streamed processes: async iterators, stdin, signals, bounded memory."""

from __future__ import annotations

import asyncio
import gc
import resource
from pathlib import Path

from krunbox.testing import HostAgentVm

from test_exec import _gone, _guest_pid


async def test_both_streams_in_order_then_the_status(vm: HostAgentVm) -> None:
    proc = await vm.stream(["sh", "-c", "echo a; echo b >&2; echo c; exit 4"])
    out, err, status = await proc.read_all()
    assert (out, err, status.code) == (b"a\nc\n", b"b\n", 4)
    assert proc.returncode == 4 and proc.pid is not None


async def test_interactive_stdin(vm: HostAgentVm) -> None:
    proc = await vm.stream(["cat"], interactive=True)
    await proc.write(b"one ")
    await proc.write(b"two")
    await proc.close_stdin()
    out = b"".join([chunk async for chunk in proc.stdout])
    assert out == b"one two"
    assert (await proc.wait()).code == 0


async def test_signal_ends_it(vm: HostAgentVm) -> None:
    proc = await vm.stream(["sleep", "60"])
    await proc.signal(15)
    assert (await proc.wait()).signal == 15


async def test_wait_discards_unread_output(vm: HostAgentVm) -> None:
    # Far more than the queues hold: wait() must not block on it.
    proc = await vm.stream(["head", "-c", str(8 << 20), "/dev/zero"])
    assert (await proc.wait()).code == 0


async def test_pty(vm: HostAgentVm) -> None:
    proc = await vm.stream(["sh", "-c", "test -t 0 && stty size"], pty=(24, 100))
    out = b"".join([chunk async for chunk in proc.stdout])
    assert b"24 100" in out
    assert (await proc.wait()).code == 0


async def test_64_mib_through_an_async_iterator_in_bounded_memory(vm: HostAgentVm) -> None:
    size = 64 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    proc = await vm.stream(["head", "-c", str(size), "/dev/urandom"])
    total = 0
    async for chunk in proc.stdout:
        total += len(chunk)
    assert total == size
    assert (await proc.wait()).code == 0
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 24, f"peak memory grew by {grown_mib:.0f} MiB streaming 64 MiB"


async def test_leaving_async_with_kills_it(vm: HostAgentVm, scratch: Path) -> None:
    pidfile = scratch / "pid"
    async with await vm.stream(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"]):
        pid = await _guest_pid(pidfile)
    assert await _gone(pid)


async def test_a_dropped_process_object_kills_it(vm: HostAgentVm, scratch: Path) -> None:
    pidfile = scratch / "pid"
    proc = await vm.stream(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"])
    pid = await _guest_pid(pidfile)
    del proc
    gc.collect()
    await asyncio.sleep(0)
    assert await _gone(pid), "the guest process outlived its dropped Process object"


async def test_a_reader_that_stops_reading_then_drops_it_ends_it(vm: HostAgentVm) -> None:
    proc = await vm.stream(["sh", "-c", "echo $$; exec yes"])
    first = await anext(proc.stdout)
    pid = int(first.split(b"\n")[0])
    del proc, first
    gc.collect()
    assert await _gone(pid), "an endless writer outlived its abandoned reader"
