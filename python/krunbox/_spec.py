"""The dicts the native module takes: a command and a VM's configuration."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Union

from . import _krunbox

StrPath = Union[str, "os.PathLike[str]"]
"""A host path."""

User = Union[int, tuple[int, int]]
"""A uid, or ``(uid, gid)``."""


def command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None,
    env_clear: bool,
    cwd: str | None,
    user: User | None,
    stdin: bytes | None,
    stream_stdin: bool,
    timeout: float | None,
) -> dict[str, Any]:
    """A command for the native module."""
    if isinstance(argv, (str, bytes)):
        raise TypeError("give the command as a list of arguments, e.g. ['sh', '-c', '...']")
    uid, gid = (user, None) if isinstance(user, int) or user is None else user
    return {
        "argv": [str(a) for a in argv],
        "env": list((env or {}).items()),
        "env_clear": env_clear,
        "cwd": cwd,
        "uid": uid,
        "gid": gid,
        "stdin": None if stdin is None else bytes(stdin),
        "stream_stdin": stream_stdin,
        "timeout": timeout,
    }


def runner() -> tuple[str, list[str]]:
    """The runner: this Python, loading only the native module and entering
    the VM (``python -I -S -c``; no site, no environment)."""
    code = (
        "import sys, importlib.util as u\n"
        "s = u.spec_from_file_location('krunbox._krunbox', sys.argv[1])\n"
        "m = u.module_from_spec(s)\n"
        "s.loader.exec_module(m)\n"
        "m.enter_runner()\n"
    )
    return sys.executable, ["-I", "-S", "-c", code, str(_krunbox.__file__)]


def boot(
    rootfs: StrPath | None,
    *,
    image: str | None,
    cpus: int,
    memory_mib: int,
    env: Mapping[str, str] | None,
    workdir: str | None,
    net: str,
    hostname: str | None,
    volumes: Sequence[tuple[StrPath, str] | tuple[StrPath, str, bool]],
    publish: Sequence[tuple[int, int]],
    allow: Sequence[str] | None,
    hosts: Mapping[str, str] | None,
    rlimits: Sequence[str],
    user: User | None,
    overlay_root: bool | None,
    log_level: int | None,
    console_log: StrPath | None,
    liveness_timeout: float | None,
) -> dict[str, Any]:
    """A VM's configuration for the native module."""
    return {
        "rootfs": None if rootfs is None else os.fspath(rootfs),
        "image": image,
        "cpus": cpus,
        "memory_mib": memory_mib,
        "env": list((env or {}).items()),
        "workdir": workdir,
        "net": net,
        "hostname": hostname,
        "volumes": [
            (os.fspath(v[0]), v[1], bool(v[2]) if len(v) > 2 else False)
            for v in volumes
        ],
        "publish": [(int(h), int(g)) for h, g in publish],
        "allow": None if allow is None else [str(rule) for rule in allow],
        "hosts": list((hosts or {}).items()),
        "rlimits": [str(limit) for limit in rlimits],
        "user": None if user is None else ((user, user) if isinstance(user, int) else user),
        "overlay_root": overlay_root,
        "log_level": log_level,
        "console_log": None if console_log is None else os.fspath(console_log),
        # With KRUNBOX_RUNNER set, the library's own search (which reads it)
        # picks the runner.
        "runner": None if os.environ.get("KRUNBOX_RUNNER") else runner(),
        "liveness_timeout": liveness_timeout,
    }
