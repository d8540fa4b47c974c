"""A streamed guest process: async iterators over its output."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from types import TracebackType

from . import _krunbox
from ._types import ExitStatus
from .errors import KrunboxError

_QUEUED_CHUNKS = 8
"""Chunks kept per stream for a reader that lags; then the guest waits."""

_END = object()


class _State:
    """What the pump shares with the process object (never the object itself,
    so that dropping the object ends the pump and so the guest process)."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[object]] = {
            "stdout": asyncio.Queue(_QUEUED_CHUNKS),
            "stderr": asyncio.Queue(_QUEUED_CHUNKS),
        }
        self.read: dict[str, bool] = {"stdout": False, "stderr": False}
        self.draining = False
        self.pid: int | None = None
        self.ended: object = None
        self.status: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        # An error nobody waits for is not "never retrieved".
        self.status.add_done_callback(lambda f: f.cancelled() or f.exception())

    def drain_unread(self) -> None:
        """Drops what waits in the streams nobody reads."""
        for name, queue in self.queues.items():
            if not self.read[name]:
                while not queue.empty():
                    queue.get_nowait()

    def offer_end(self) -> None:
        """Puts the end where there is room (readers also look at ``ended``)."""
        for queue in self.queues.values():
            if not queue.full():
                queue.put_nowait(self.ended)


async def _pump(native: _krunbox.Process, state: _State) -> None:
    try:
        while (event := await native.next_event()) is not None:
            kind, value = event
            if kind == "started":
                state.pid = value  # type: ignore[assignment]
            elif kind == "exit":
                state.status.set_result(ExitStatus(*value))  # type: ignore[misc]
            elif state.read[kind] or not state.draining:
                await state.queues[kind].put(value)
        state.ended = _END
    except asyncio.CancelledError:
        # A new exception: the caught one's traceback holds this frame,
        # and so the native process, which must go with the object.
        state.ended = asyncio.CancelledError()
        if not state.status.done():
            state.status.cancel()
        state.offer_end()
        raise
    except BaseException as error:  # the agent failed, or the VM went away
        state.ended = error.with_traceback(None)
        if not state.status.done():
            state.status.set_exception(error)
    for name, queue in state.queues.items():
        if state.read[name]:
            await queue.put(state.ended)
    state.offer_end()


async def _stream(state: _State, name: str) -> AsyncIterator[bytes]:
    state.read[name] = True
    queue = state.queues[name]
    while True:
        if queue.empty() and state.ended is not None:
            chunk = state.ended
        else:
            chunk = await queue.get()
        if chunk is _END:
            return
        if isinstance(chunk, BaseException):
            raise chunk
        assert isinstance(chunk, bytes)
        yield chunk


class Process:
    """A guest process started by :meth:`krunbox.Vm.stream`.

    Its output arrives through ``stdout`` and ``stderr``, async iterators of
    ``bytes`` chunks, in bounded memory (a reader that lags makes the guest
    wait). :meth:`wait` returns its :class:`ExitStatus`, discarding output
    from a stream nobody iterates. Dropping the object, or leaving
    ``async with``, while it runs kills it.
    """

    def __init__(self, native: _krunbox.Process) -> None:
        self._native = native
        self._state = _State()
        self._task = asyncio.ensure_future(_pump(native, self._state))
        weakref.finalize(self, self._task.cancel)
        self.stdout: AsyncIterator[bytes] = _stream(self._state, "stdout")
        """Its stdout (or its terminal's output), chunk by chunk."""
        self.stderr: AsyncIterator[bytes] = _stream(self._state, "stderr")
        """Its stderr, chunk by chunk."""

    @property
    def pid(self) -> int | None:
        """Its pid in the guest, once it started."""
        return self._state.pid

    @property
    def returncode(self) -> int | None:
        """``subprocess``'s convention once it ended, else ``None``."""
        status = self._state.status
        if status.done() and not status.cancelled() and status.exception() is None:
            return status.result().returncode
        return None

    async def write(self, data: bytes) -> None:
        """Writes ``data`` to its stdin (started with ``interactive=True``)."""
        await self._native.write_stdin(bytes(data))

    async def close_stdin(self) -> None:
        """Closes its stdin: it reads end of file."""
        await self._native.close_stdin()

    async def signal(self, signal: int) -> None:
        """Sends it ``signal``."""
        await self._native.signal(int(signal))

    async def kill(self) -> None:
        """Sends it SIGKILL."""
        await self.signal(9)

    async def resize(self, rows: int, cols: int) -> None:
        """Resizes its terminal (started with ``pty=``)."""
        await self._native.resize(rows, cols)

    async def wait(self) -> ExitStatus:
        """Waits until it ends; output nobody iterates is discarded."""
        state = self._state
        state.draining = True
        state.drain_unread()
        try:
            return await asyncio.shield(state.status)
        finally:
            state.drain_unread()

    async def read_all(self) -> tuple[bytes, bytes, ExitStatus]:
        """Reads both streams to their ends: ``(stdout, stderr, status)``."""

        async def collect(stream: AsyncIterator[bytes]) -> bytes:
            return b"".join([chunk async for chunk in stream])

        out, err = await asyncio.gather(collect(self.stdout), collect(self.stderr))
        return out, err, await self.wait()

    async def __aenter__(self) -> Process:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state.status.done():
            return
        try:
            await self.kill()
        except KrunboxError:
            pass  # it ended meanwhile, or the VM went away
        try:
            await self.wait()
        except KrunboxError:
            pass
