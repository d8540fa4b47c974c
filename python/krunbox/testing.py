"""Testing without a VM: the guest agent run as a host process.

krunbox's agent is an ordinary Linux program. Run on the host, it serves
every operation on this machine's filesystem and processes, so a program
can test its use of :class:`krunbox.Vm` in milliseconds; guest paths are
then host paths. Give the agent binary (``krunbox-agent``, built by
``cargo build -p krunbox-agent``) or set ``KRUNBOX_AGENT_BIN``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator

from . import _krunbox
from ._spec import StrPath
from ._vm import Vm

AGENT_ENV = "KRUNBOX_AGENT_BIN"
"""The variable naming the agent binary."""


class HostAgentVm(Vm):
    """A :class:`Vm` whose agent is a host process."""

    agent_pid: int
    """The agent process's pid."""


@contextlib.asynccontextmanager
async def host_agent(
    agent_bin: StrPath | None = None,
    *,
    liveness_timeout: float | None = None,
) -> AsyncIterator[HostAgentVm]:
    """A :class:`Vm` whose agent runs on this host, in a temporary
    directory; the agent is killed on exit."""
    program = agent_bin if agent_bin is not None else os.environ.get(AGENT_ENV)
    if not program:
        raise ValueError(f"give the agent binary, or set {AGENT_ENV}")
    with tempfile.TemporaryDirectory(prefix="krunbox-agent-") as dir:
        announce = os.path.join(dir, "announce.sock")
        ops = os.path.join(dir, "ops.sock")
        listener = _krunbox.AgentListener(announce)
        child = subprocess.Popen(
            [os.fspath(program), "--unix-announce", announce, "--unix-listen", ops],
            stdin=subprocess.DEVNULL,
        )
        try:
            agent = await listener.accept(ops, liveness_timeout)
            vm = HostAgentVm(agent)
            vm.agent_pid = child.pid
            yield vm
        finally:
            child.kill()
            child.wait()
