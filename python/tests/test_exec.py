"""Commands run to completion, and their errors."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

import krunbox
from krunbox.testing import HostAgentVm


async def test_output_and_code(vm: HostAgentVm) -> None:
    result = await vm.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.code, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    assert result.returncode == 3 and not result.ok
    assert result.describe() == "exit code 3"


async def test_env_cwd_and_stdin(vm: HostAgentVm, scratch: Path) -> None:
    result = await vm.exec(
        ["sh", "-c", 'echo "$GREETING $(pwd)"; cat'],
        env={"GREETING": "hello"},
        cwd=str(scratch),
        stdin=b"from stdin",
    )
    assert result.stdout_text == f"hello {scratch}\nfrom stdin"


async def test_signal_and_timeout(vm: HostAgentVm) -> None:
    killed = await vm.exec(["sh", "-c", "kill -9 $$"])
    assert (killed.code, killed.signal, killed.returncode) == (None, 9, -9)
    slow = await vm.exec(["sleep", "30"], timeout=0.3)
    assert slow.timed_out and slow.signal is not None
    assert "timed out" in slow.describe()


async def test_check_raises_with_the_result(vm: HostAgentVm) -> None:
    with pytest.raises(krunbox.CommandFailed) as failed:
        await vm.exec(["sh", "-c", "echo nope >&2; exit 2"], check=True)
    assert failed.value.result.code == 2
    assert "nope" in str(failed.value)


async def test_bad_commands_are_refused_before_sending(vm: HostAgentVm) -> None:
    with pytest.raises(ValueError, match="empty"):
        await vm.exec([])
    with pytest.raises(TypeError, match="list"):
        await vm.exec("echo hi")


async def test_a_missing_program_exits_127_as_in_a_shell(vm: HostAgentVm) -> None:
    result = await vm.exec(["/no/such/program"])
    assert result.code == 127
    assert "/no/such/program" in result.stderr_text


async def test_a_missing_path_is_an_agent_error_with_kind_and_errno(vm: HostAgentVm) -> None:
    with pytest.raises(krunbox.AgentError) as error:
        await vm.stat("/no/such/path")
    assert error.value.kind == "not_found" and error.value.errno == 2
    assert "/no/such/path" in str(error.value)


async def test_concurrent_execs_from_many_tasks(vm: HostAgentVm) -> None:
    results = await asyncio.gather(
        *(vm.exec(["sh", "-c", f"sleep 0.1; echo {i}"]) for i in range(32))
    )
    assert [r.stdout_text for r in results] == [f"{i}\n" for i in range(32)]


async def _guest_pid(path: Path) -> int:
    for _ in range(200):
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        await asyncio.sleep(0.02)
    raise AssertionError("the guest process never wrote its pid")


async def _gone(pid: int) -> bool:
    for _ in range(250):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie is gone too: the agent reaps it.
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
        except (OSError, IndexError):  # gone between the two looks
            return True
        if state == "Z":
            return True
        await asyncio.sleep(0.02)
    return False


async def test_cancelling_an_exec_kills_the_guest_process(vm: HostAgentVm, scratch: Path) -> None:
    pidfile = scratch / "pid"
    task = asyncio.ensure_future(vm.exec(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"]))
    pid = await _guest_pid(pidfile)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _gone(pid), f"guest process {pid} still runs after its exec was cancelled"


async def test_a_timed_out_wait_for_exec_kills_it(vm: HostAgentVm, scratch: Path) -> None:
    pidfile = scratch / "pid"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(
            vm.exec(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"]), timeout=0.5
        )
    assert await _gone(await _guest_pid(pidfile))


async def test_a_vanished_agent_is_vm_gone(vm: HostAgentVm) -> None:
    os.kill(vm.agent_pid, signal.SIGKILL)
    with pytest.raises(krunbox.VmGoneError) as error:
        await vm.exec(["true"])
    assert "the agent is gone during exec" in str(error.value)
    assert not vm.is_alive()


async def test_a_missing_rootfs_is_a_config_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(krunbox.ConfigError) as error:
        await krunbox.Vm.boot(tmp_path / "no-rootfs")
    assert "no-rootfs" in str(error.value)


async def test_an_unknown_named_vm_is_a_state_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRUNBOX_STATE_DIR", str(tmp_path / "state"))
    with pytest.raises(krunbox.StateError) as error:
        await krunbox.Vm.attach("nobody")
    assert "nobody" in str(error.value)
    assert error.value.hint


async def test_a_bad_allow_rule_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(krunbox.ConfigError) as error:
        await krunbox.Vm.boot(tmp_path, allow=["pypi.org:notaport"])
    assert "notaport" in str(error.value)


async def test_user_and_a_cleared_environment(vm: HostAgentVm) -> None:
    result = await vm.exec(["sh", "-c", "id -u; id -g; echo \"[$HOME]\""], user=(1234, 4321), env_clear=True)
    assert result.stdout_text == "1234\n4321\n[]\n"


async def test_a_bad_rlimit_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(krunbox.ConfigError) as error:
        await krunbox.Vm.boot(tmp_path, rlimits=["nosuchlimit=1:2"])
    assert "nosuchlimit" in str(error.value)
