"""The values krunbox's operations return."""

from __future__ import annotations

import dataclasses
import signal as _signal
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class ExitStatus:
    """How a guest process ended."""

    code: int | None
    """Its exit code, if it exited."""
    signal: int | None
    """The signal that killed it, if one did."""
    timed_out: bool = False
    """Whether the agent killed it because its timeout ran out."""

    @property
    def returncode(self) -> int:
        """``subprocess``'s convention: the code, or ``-signal``."""
        if self.code is not None:
            return self.code
        return -(self.signal or 0)

    def describe(self) -> str:
        """``exit code 3``, ``signal SIGKILL (timed out)``, …"""
        if self.code is not None:
            text = f"exit code {self.code}"
        elif self.signal is not None:
            try:
                text = f"signal {_signal.Signals(self.signal).name}"
            except ValueError:
                text = f"signal {self.signal}"
        else:
            text = "no status"
        return text + (" (timed out)" if self.timed_out else "")


@dataclasses.dataclass(frozen=True)
class ExecResult(ExitStatus):
    """A command run to completion: its status and its whole output."""

    args: Sequence[str] = ()
    """The command."""
    stdout: bytes = b""
    """Everything it wrote to stdout."""
    stderr: bytes = b""
    """Everything it wrote to stderr."""

    @property
    def ok(self) -> bool:
        """Whether it exited with 0."""
        return self.code == 0

    @property
    def stdout_text(self) -> str:
        """Stdout decoded as UTF-8 (invalid bytes replaced)."""
        return self.stdout.decode(errors="replace")

    @property
    def stderr_text(self) -> str:
        """Stderr decoded as UTF-8 (invalid bytes replaced)."""
        return self.stderr.decode(errors="replace")

    def check(self) -> ExecResult:
        """Itself, or :class:`krunbox.errors.CommandFailed` unless it exited 0."""
        if not self.ok:
            from .errors import CommandFailed

            raise CommandFailed(self)
        return self


@dataclasses.dataclass(frozen=True)
class Stat:
    """A guest path's metadata (a final symlink not followed)."""

    kind: str
    """``"file"``, ``"dir"``, ``"symlink"`` or ``"other"``."""
    mode: int
    size: int
    uid: int
    gid: int
    mtime: int
    """Seconds since the epoch."""
    symlink_target: str | None


@dataclasses.dataclass(frozen=True)
class CopyStats:
    """What a copy moved, and what it skipped."""

    entries: int
    """Entries created: directories, files, symlinks, fifos, hard links."""
    bytes: int
    """File bytes."""
    skipped: list[tuple[str, str]]
    """Device nodes and sockets not copied: ``(path, reason)``."""


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
    """A background process as the agent lists it."""

    id: int
    pid: int
    argv: list[str]
    status: ExitStatus | None
    """How it ended, or ``None`` while it runs."""


@dataclasses.dataclass(frozen=True)
class BackgroundOutput:
    """Output a background process kept (the last 1 MiB of each stream)."""

    stdout: bytes
    stdout_range: tuple[int, int]
    """Where ``stdout`` sits in the whole stream; ask from its end next time."""
    stderr: bytes
    stderr_range: tuple[int, int]
    status: ExitStatus | None


@dataclasses.dataclass(frozen=True)
class BootTimeline:
    """When each phase of the boot ended, in ms from the runner's spawn."""

    configured_ms: float | None
    """libkrun configured by the runner."""
    entered_ms: float | None
    """The runner entered the VM (``krun_start_enter``)."""
    vcpu_started_ms: float | None
    """The first vCPU thread started."""
    agent_started_ms: float | None
    """The guest agent started (estimated from the guest's clock)."""
    ready_ms: float | None
    """The agent answered: the VM is usable."""
    first_exec_ms: float | None
    """The first exec through this VM ended."""


def status(raw: tuple[int | None, int | None, bool] | None) -> ExitStatus | None:
    """An ``ExitStatus`` from the native tuple."""
    return None if raw is None else ExitStatus(*raw)
