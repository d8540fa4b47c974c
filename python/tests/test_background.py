"""Background processes (daemons)."""

from __future__ import annotations

from krunbox.testing import HostAgentVm


async def test_spawn_list_output_kill_remove(vm: HostAgentVm) -> None:
    daemon = await vm.spawn(["sh", "-c", "echo ready; echo warn >&2; exec sleep 60"])
    assert daemon.pid > 0
    assert await daemon.wait(0.2) is None
    listed = {p.id: p for p in await vm.processes()}
    assert listed[daemon.id].argv[0] == "sh" and listed[daemon.id].status is None
    out = await daemon.output()
    assert (out.stdout, out.stderr, out.stdout_range) == (b"ready\n", b"warn\n", (0, 6))
    await daemon.kill()
    status = await daemon.wait(5)
    assert status is not None and status.signal == 15
    await daemon.remove()
    assert daemon.id not in {p.id for p in await vm.processes()}


async def test_it_runs_on_after_the_call(vm: HostAgentVm) -> None:
    job = await vm.spawn(["sh", "-c", "sleep 0.2; echo done"])
    status = await job.wait(5)
    assert status is not None and status.code == 0
    assert (await job.output()).stdout == b"done\n"
