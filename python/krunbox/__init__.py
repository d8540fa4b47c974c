"""krunbox: libkrun microVMs driven in-process from Python.

Boot a VM, put files in it, run commands (collected, streamed, on a
terminal, in the background) and copy results out, with asyncio::

    import asyncio, krunbox

    async def main() -> None:
        async with await krunbox.Vm.boot("/srv/rootfs") as vm:
            await vm.provision(krunbox.Provision().write("/work/PROMPT.md", "hi"))
            result = await vm.exec(["cat", "/work/PROMPT.md"], check=True)
            print(result.stdout_text)

    asyncio.run(main())

Each VM runs in a runner process of its own (libkrun takes over the
process that boots it); the package starts it with this Python. No
server runs. Scripts that are not async use :mod:`krunbox.blocking`.
"""

from . import errors
from ._process import Process
from ._provision import Provision
from ._types import (
    BackgroundOutput,
    BootTimeline,
    CopyStats,
    ExecResult,
    ExitStatus,
    ProcessInfo,
    Stat,
)
from ._vm import BackgroundProcess, Vm
from .errors import (
    AgentError,
    BootError,
    CommandFailed,
    ConfigError,
    CopyError,
    ImageError,
    KrunboxError,
    OutputCutError,
    OutputLimitError,
    ProtocolError,
    StateError,
    TimeoutError,
    VmGoneError,
)

__version__: str = "0.1.0"

__all__ = [
    "AgentError",
    "BackgroundOutput",
    "BackgroundProcess",
    "BootError",
    "BootTimeline",
    "CommandFailed",
    "ConfigError",
    "CopyError",
    "CopyStats",
    "ExecResult",
    "ExitStatus",
    "ImageError",
    "KrunboxError",
    "OutputCutError",
    "OutputLimitError",
    "Process",
    "ProcessInfo",
    "Provision",
    "ProtocolError",
    "Stat",
    "StateError",
    "TimeoutError",
    "Vm",
    "VmGoneError",
    "errors",
]
