"""``Vm``: a booted (or attached) microVM and everything done in it."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType


from . import _krunbox, _spec
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
    status,
)
from ._spec import StrPath, User

DEFAULT_SHUTDOWN_TIMEOUT = 10.0
"""Seconds :meth:`Vm.shutdown` waits for the guest before killing it."""


class Vm:
    """A microVM and its guest agent.

    Boot one with :meth:`Vm.boot`, or attach to one that ``krunbox start``
    named with :meth:`Vm.attach`. ``async with`` shuts a booted VM down on
    a normal exit and kills it on an exception; a booted VM that is
    garbage-collected, or whose program exits, is killed.
    """

    def __init__(
        self,
        agent: _krunbox.Agent,
        machine: _krunbox.Machine | None = None,
        *,
        name: str | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._agent = agent
        self._machine = machine
        self._on_close = on_close
        self.name = name
        """The named VM's name, for an attached VM."""

    @classmethod
    async def boot(
        cls,
        rootfs: StrPath | None = None,
        *,
        image: str | None = None,
        cpus: int = 1,
        memory_mib: int = 512,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        net: str = "tsi",
        hostname: str | None = None,
        volumes: Sequence[tuple[StrPath, str] | tuple[StrPath, str, bool]] = (),
        publish: Sequence[tuple[int, int]] = (),
        allow: Sequence[str] | None = None,
        hosts: Mapping[str, str] | None = None,
        rlimits: Sequence[str] = (),
        user: User | None = None,
        overlay_root: bool | None = None,
        log_level: int | None = None,
        console_log: StrPath | None = None,
        liveness_timeout: float | None = None,
    ) -> Vm:
        """Boots a VM on the host directory ``rootfs``, or on ``image`` (a
        name or ID in krunbox's image store: ``krunbox pull`` or ``load``
        put it there), and waits until its agent answers.

        ``net`` is ``"tsi"`` (the guest reaches what the host reaches) or
        ``"none"``; ``volumes`` are ``(host_dir, guest_dir[, read_only])``;
        ``publish`` are ``(host_port, guest_port)``. ``allow`` walls the
        guest in: it reaches only what the rules name (``"pypi.org:443"``,
        ``"*.github.com"``, ``"10.0.0.0/8:5432"``; docs/egress.md), through
        a proxy, and ``hosts`` pins names to addresses for it.
        ``rlimits`` are ``"nofile=1024:2048"``-style limits; ``user`` (a
        uid, or ``(uid, gid)``) runs the VM's commands that name no user;
        ``overlay_root=True`` keeps the guest's writes in its memory, the
        host directory unchanged; ``log_level`` is libkrun's (0-5).
        """
        spec = _spec.boot(
            rootfs,
            image=image,
            cpus=cpus,
            memory_mib=memory_mib,
            env=env,
            workdir=workdir,
            net=net,
            hostname=hostname,
            volumes=volumes,
            publish=publish,
            allow=allow,
            hosts=hosts,
            rlimits=rlimits,
            user=user,
            overlay_root=overlay_root,
            log_level=log_level,
            console_log=console_log,
            liveness_timeout=liveness_timeout,
        )
        machine = await _krunbox.boot(spec)
        return cls(machine.agent(), machine)

    @classmethod
    async def attach(cls, name: str) -> Vm:
        """The VM that ``krunbox start --name NAME`` started. Leaving
        ``async with`` or :meth:`close` only disconnects from it."""
        return cls(_krunbox.attach(name), name=name)

    # -- lifecycle --------------------------------------------------------

    @property
    def runner_pid(self) -> int | None:
        """The host pid of the VM's runner (a booted VM only)."""
        return None if self._machine is None else self._machine.runner_pid

    @property
    def log_path(self) -> str | None:
        """The VM's log on the host (a booted VM only)."""
        return None if self._machine is None else os.fspath(self._machine.log_path)

    def is_alive(self) -> bool:
        """Whether the agent still answers."""
        return self._agent.is_alive()

    def timeline(self) -> BootTimeline:
        """When each phase of the boot ended (a booted VM only)."""
        if self._machine is None:
            raise ValueError("only a VM this program booted has a boot timeline")
        return BootTimeline(**self._machine.timeline())

    async def shutdown(self, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> ExitStatus:
        """Asks the guest to power off; kills it after ``timeout`` seconds.

        An attached VM is only disconnected from (stop it with
        ``krunbox stop``)."""
        if self._machine is None:
            self.close()
            return ExitStatus(code=None, signal=None)
        code, sig = await self._machine.shutdown(timeout)
        self._close_hook()
        return ExitStatus(code=code, signal=sig)

    async def kill(self) -> None:
        """Kills a booted VM at once and waits until it is gone."""
        if self._machine is not None:
            await self._machine.kill()
        self._close_hook()

    def close(self) -> None:
        """Forgets the VM: a booted one is killed once nothing refers to it."""
        self._machine = None
        self._close_hook()

    def _close_hook(self) -> None:
        if self._on_close is not None:
            hook, self._on_close = self._on_close, None
            hook()

    async def __aenter__(self) -> Vm:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._machine is None:
            self.close()
        elif exc_type is None:
            await self.shutdown()
        else:
            await self.kill()

    # -- commands ---------------------------------------------------------

    async def exec(
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
        """Runs ``argv`` to completion and returns its status and output.

        ``timeout`` (seconds) has the agent kill it when it runs out
        (``ExecResult.timed_out``); ``check=True`` raises
        :class:`~krunbox.errors.CommandFailed` unless it exits with 0.
        Cancelling the awaiting task kills the guest process.
        """
        spec = _spec.command(
            argv,
            env=env,
            env_clear=env_clear,
            cwd=cwd,
            user=user,
            stdin=stdin,
            stream_stdin=False,
            timeout=timeout,
        )
        code, sig, timed_out, out, err = await self._agent.exec(spec)
        result = ExecResult(code, sig, timed_out, list(argv), out, err)
        return result.check() if check else result

    async def stream(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        env_clear: bool = False,
        cwd: str | None = None,
        user: User | None = None,
        stdin: bytes | None = None,
        interactive: bool = False,
        pty: tuple[int, int] | None = None,
        timeout: float | None = None,
    ) -> Process:
        """Starts ``argv`` and returns its :class:`Process`, whose output
        streams as it comes. ``interactive=True`` keeps its stdin open for
        :meth:`Process.write`; ``pty=(rows, cols)`` runs it on a terminal."""
        spec = _spec.command(
            argv,
            env=env,
            env_clear=env_clear,
            cwd=cwd,
            user=user,
            stdin=stdin,
            stream_stdin=interactive or pty is not None,
            timeout=timeout,
        )
        return Process(await self._agent.stream(spec, pty))

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        env_clear: bool = False,
        cwd: str | None = None,
        user: User | None = None,
    ) -> BackgroundProcess:
        """Starts ``argv`` in the background (a daemon): it runs on after
        this call, its stdin ``/dev/null``, the last 1 MiB of each of its
        streams kept by the agent."""
        spec = _spec.command(
            argv,
            env=env,
            env_clear=env_clear,
            cwd=cwd,
            user=user,
            stdin=None,
            stream_stdin=False,
            timeout=None,
        )
        pid_id: tuple[int, int] = await self._agent.spawn(spec)
        return BackgroundProcess(self._agent, *pid_id)

    async def processes(self) -> list[ProcessInfo]:
        """The background processes the agent knows."""
        return [
            ProcessInfo(id, pid, argv, status(raw))
            for id, pid, argv, raw in await self._agent.processes()
        ]

    # -- files ------------------------------------------------------------

    async def copy_in(self, source: StrPath, dest: str) -> CopyStats:
        """Copies the host file or tree ``source`` to the guest path ``dest``;
        a failed copy leaves nothing at ``dest``."""
        return CopyStats(*await self._agent.copy_in(os.fspath(source), dest))

    async def copy_out(self, source: str, dest: StrPath) -> CopyStats:
        """Copies the guest file or tree ``source`` to the host path ``dest``;
        a failed copy leaves nothing at ``dest``."""
        return CopyStats(*await self._agent.copy_out(source, os.fspath(dest)))

    async def provision(self, plan: Provision) -> None:
        """Carries out every step of ``plan`` in one request to the agent."""
        await self._agent.provision(plan.steps())

    async def write_file(self, path: str, contents: bytes | str, mode: int = 0o644) -> None:
        """Writes one guest file (its parent directories created)."""
        await self.provision(Provision().write(path, contents, mode))

    async def mkdir(self, path: str, mode: int = 0o755) -> None:
        """Creates a guest directory and its missing parents."""
        await self._agent.mkdir(path, mode)

    async def stat(self, path: str) -> Stat:
        """A guest path's metadata."""
        return Stat(*await self._agent.stat(path))

    async def read_file(self, path: str) -> bytes:
        """A guest file's contents (through ``cat``: the agent streams it)."""
        result = await self.exec(["cat", "--", path], check=True)
        return result.stdout


class BackgroundProcess:
    """A process started by :meth:`Vm.spawn`."""

    def __init__(self, agent: _krunbox.Agent, id: int, pid: int) -> None:
        self._agent = agent
        self.id = id
        """The agent's id for it."""
        self.pid = pid
        """Its pid in the guest."""

    async def wait(self, timeout: float) -> ExitStatus | None:
        """Its status once it ends, or ``None`` if it still runs after
        ``timeout`` seconds."""
        return status(await self._agent.wait_process(self.id, timeout))

    async def kill(self, signal: int = 15) -> None:
        """Sends it ``signal`` (SIGTERM by default)."""
        await self._agent.kill_process(self.id, signal)

    async def output(self, stdout_offset: int = 0, stderr_offset: int = 0) -> BackgroundOutput:
        """What it wrote, from the given offsets in each stream."""
        out, out_range, err, err_range, raw = await self._agent.read_output(
            self.id, stdout_offset, stderr_offset
        )
        return BackgroundOutput(out, out_range, err, err_range, status(raw))

    async def remove(self) -> None:
        """Makes the agent forget it (once it ended)."""
        await self._agent.remove_process(self.id)

    def __repr__(self) -> str:
        return f"BackgroundProcess(id={self.id}, pid={self.pid})"


