"""krunbox for scripts that are not async.

The same operations as :class:`krunbox.Vm`, each a plain call that
returns when done, so a tool that calls ``subprocess.run(["smolvm",
"machine", "exec", …])`` today switches line by line::

    from krunbox.blocking import Vm

    with Vm.boot("/srv/rootfs") as vm:
        vm.write_file("/work/PROMPT.md", "hi")
        print(vm.exec(["cat", "/work/PROMPT.md"], check=True).stdout_text)

The calls run on one event loop in a background thread that the module
starts on first use. A call interrupted (``KeyboardInterrupt``) cancels
its operation, which kills a running guest command.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from . import _vm
from ._provision import Provision
from ._spec import StrPath, User
from ._process import Process as _AioProcess
from ._types import (
    BackgroundOutput,
    BootTimeline,
    CopyStats,
    ExecResult,
    ExitStatus,
    ProcessInfo,
    Stat,
)

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Runs ``coro`` on the background loop and waits for it."""
    global _loop
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="krunbox", daemon=True).start()
        loop = _loop
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


class Vm:
    """A microVM, driven by blocking calls (see :class:`krunbox.Vm`)."""

    def __init__(self, vm: _vm.Vm) -> None:
        self.aio = vm
        """The asyncio object underneath."""

    @classmethod
    def boot(cls, rootfs: StrPath | None = None, **options: Any) -> Vm:
        """Boots a VM; the options are :meth:`krunbox.Vm.boot`'s."""
        return cls(_run(_vm.Vm.boot(rootfs, **options)))

    @classmethod
    def attach(cls, name: str) -> Vm:
        """The VM ``krunbox start --name NAME`` started."""
        return cls(_run(_vm.Vm.attach(name)))

    def exec(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        env_clear: bool = False,
        cwd: str | None = None,
        user: User | None = None,
        stdin: bytes | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> ExecResult:
        """Runs ``argv`` to completion (see :meth:`krunbox.Vm.exec`)."""
        return _run(
            self.aio.exec(
                argv,
                env=env,
                env_clear=env_clear,
                cwd=cwd,
                user=user,
                stdin=stdin,
                timeout=timeout,
                check=check,
            )
        )

    def stream(self, argv: Sequence[str], **options: Any) -> Process:
        """Starts ``argv``, its output to iterate as it comes; the options
        are :meth:`krunbox.Vm.stream`'s."""
        return Process(_run(self.aio.stream(argv, **options)))

    def spawn(self, argv: Sequence[str], **options: Any) -> BackgroundProcess:
        """Starts ``argv`` in the background; the options are
        :meth:`krunbox.Vm.spawn`'s."""
        return BackgroundProcess(_run(self.aio.spawn(argv, **options)))

    def processes(self) -> list[ProcessInfo]:
        """The background processes the agent knows."""
        return _run(self.aio.processes())

    def copy_in(self, source: StrPath, dest: str) -> CopyStats:
        """Copies a host file or tree into the guest."""
        return _run(self.aio.copy_in(source, dest))

    def copy_out(self, source: str, dest: StrPath) -> CopyStats:
        """Copies a guest file or tree to the host."""
        return _run(self.aio.copy_out(source, dest))

    def provision(self, plan: Provision) -> None:
        """Carries out every step of ``plan`` in one request."""
        _run(self.aio.provision(plan))

    def write_file(self, path: str, contents: bytes | str, mode: int = 0o644) -> None:
        """Writes one guest file."""
        _run(self.aio.write_file(path, contents, mode))

    def read_file(self, path: str) -> bytes:
        """A guest file's contents."""
        return _run(self.aio.read_file(path))

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        """Creates a guest directory and its parents."""
        _run(self.aio.mkdir(path, mode))

    def stat(self, path: str) -> Stat:
        """A guest path's metadata."""
        return _run(self.aio.stat(path))

    def timeline(self) -> BootTimeline:
        """When each phase of the boot ended."""
        return self.aio.timeline()

    def shutdown(self, timeout: float = _vm.DEFAULT_SHUTDOWN_TIMEOUT) -> ExitStatus:
        """Asks the guest to power off; kills it after ``timeout`` seconds."""
        return _run(self.aio.shutdown(timeout))

    def kill(self) -> None:
        """Kills the VM at once."""
        _run(self.aio.kill())

    def __enter__(self) -> Vm:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _run(self.aio.__aexit__(exc_type, exc, tb))


def _chunks(stream: AsyncIterator[bytes]) -> Iterator[bytes]:
    async def next_chunk() -> bytes | None:
        try:
            return await anext(stream)
        except StopAsyncIteration:
            return None

    while (chunk := _run(next_chunk())) is not None:
        yield chunk


class Process:
    """A streamed guest process (see :class:`krunbox.Process`)."""

    def __init__(self, process: _AioProcess) -> None:
        self.aio = process
        """The asyncio object underneath."""
        self.stdout: Iterator[bytes] = _chunks(process.stdout)
        """Its stdout, chunk by chunk."""
        self.stderr: Iterator[bytes] = _chunks(process.stderr)
        """Its stderr, chunk by chunk."""

    @property
    def pid(self) -> int | None:
        """Its pid in the guest, once it started."""
        return self.aio.pid

    def write(self, data: bytes) -> None:
        """Writes to its stdin (started with ``interactive=True``)."""
        _run(self.aio.write(data))

    def close_stdin(self) -> None:
        """Closes its stdin."""
        _run(self.aio.close_stdin())

    def signal(self, signal: int) -> None:
        """Sends it ``signal``."""
        _run(self.aio.signal(signal))

    def wait(self) -> ExitStatus:
        """Waits until it ends; output nobody iterated is discarded."""
        return _run(self.aio.wait())


class BackgroundProcess:
    """A process started by :meth:`Vm.spawn`."""

    def __init__(self, process: _vm.BackgroundProcess) -> None:
        self.aio = process
        """The asyncio object underneath."""
        self.id = process.id
        """The agent's id for it."""
        self.pid = process.pid
        """Its pid in the guest."""

    def wait(self, timeout: float) -> ExitStatus | None:
        """Its status once it ends, or ``None`` after ``timeout`` seconds."""
        return _run(self.aio.wait(timeout))

    def kill(self, signal: int = 15) -> None:
        """Sends it ``signal``."""
        _run(self.aio.kill(signal))

    def output(self, stdout_offset: int = 0, stderr_offset: int = 0) -> BackgroundOutput:
        """What it wrote, from the given offsets."""
        return _run(self.aio.output(stdout_offset, stderr_offset))
