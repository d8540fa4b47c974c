"""krunbox's exceptions.

They mirror the Rust library's errors. Every one carries the error and its
causes in its message (as the ``krunbox`` CLI prints them) and, where
krunbox knows what to do about it, a ``hint`` (also printed by ``str()``)::

    KrunboxError
    ├── ConfigError        a VM configuration that cannot boot (bad rootfs, …)
    ├── ImageError         an image that is not in the store, or unusable
    ├── BootError          the VM did not come up (KVM, libkrunfw, runner, …)
    ├── VmGoneError        the VM or its agent went away during an operation
    ├── TimeoutError       an operation ran out of time (also builtins.TimeoutError)
    ├── AgentError         the guest agent failed the operation (kind, errno)
    ├── CopyError          a copy in or out that was refused or failed
    ├── ProtocolError      the agent sent what makes no sense
    │   ├── OutputCutError     output arrived short of what the agent sent
    │   └── OutputLimitError   more output than the client's limit
    ├── StateError         a named VM that cannot be found or used
    └── CommandFailed      ``check=True`` and the command did not exit 0
"""

from __future__ import annotations

import builtins
import typing

if typing.TYPE_CHECKING:
    from ._types import ExecResult

__all__ = [
    "KrunboxError",
    "ConfigError",
    "ImageError",
    "BootError",
    "VmGoneError",
    "TimeoutError",
    "AgentError",
    "CopyError",
    "ProtocolError",
    "OutputCutError",
    "OutputLimitError",
    "StateError",
    "CommandFailed",
]


class KrunboxError(Exception):
    """Any error krunbox raises; ``hint`` says what to do, when known."""

    hint: str | None = None

    def __str__(self) -> str:
        text = super().__str__()
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


class ConfigError(KrunboxError):
    """A VM configuration that cannot boot: a missing rootfs, bad sizes, …"""


class ImageError(KrunboxError):
    """An image that is not in the store, or whose configuration is unusable."""


class BootError(KrunboxError):
    """The VM did not come up: no usable KVM or libkrunfw, a runner that failed."""


class VmGoneError(KrunboxError):
    """The VM or its agent went away while an operation ran."""


class TimeoutError(KrunboxError, builtins.TimeoutError):  # noqa: A001
    """An operation ran out of time; also a ``builtins.TimeoutError``."""


class AgentError(KrunboxError):
    """The guest agent failed the operation.

    ``kind`` is the agent's class of failure (``"not_found"``,
    ``"permission_denied"``, ``"exists"``, …) and ``errno`` the guest's OS
    error number, when there was one.
    """

    kind: str | None = None
    errno: int | None = None


class CopyError(KrunboxError):
    """A copy in or out that was refused (special files, limits) or failed."""


class ProtocolError(KrunboxError):
    """The agent sent what makes no sense at this point."""


class OutputCutError(ProtocolError):
    """An output stream ended short of what the agent declared it sent."""


class OutputLimitError(ProtocolError):
    """More output than the client collects (``ExecResult`` is bounded)."""


class StateError(KrunboxError):
    """A named VM that cannot be found, opened or used."""


class CommandFailed(KrunboxError):
    """A command run with ``check=True`` did not exit with 0."""

    def __init__(self, result: ExecResult) -> None:
        super().__init__(
            f"{result.args!r} ended with {result.describe()}: "
            f"{result.stderr[-400:].decode(errors='replace').strip()}"
        )
        self.result = result
