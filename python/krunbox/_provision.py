"""``Provision``: files and folders to put in a guest in one request."""

from __future__ import annotations

import os
from typing import Union

from ._spec import StrPath

Step = Union[
    tuple[str, str, int],
    tuple[str, str, bytes, int],
    tuple[str, str, str],
]


class Provision:
    """A list of steps the agent carries out in one round trip, in order:
    directories, files, modes, symlinks, and host trees copied in.

    >>> plan = Provision().mkdir("/work").write("/work/PROMPT.md", "Fix the bug")
    >>> plan = plan.tree("skills/", "/work/skills")
    """

    def __init__(self) -> None:
        self._steps: list[Step] = []

    def mkdir(self, path: str, mode: int = 0o755) -> Provision:
        """A directory (and its missing parents)."""
        self._steps.append(("mkdir", path, mode))
        return self

    def write(self, path: str, contents: bytes | str, mode: int = 0o644) -> Provision:
        """A file with ``contents`` (``str`` is written as UTF-8)."""
        data = contents.encode() if isinstance(contents, str) else bytes(contents)
        self._steps.append(("write", path, data, mode))
        return self

    def chmod(self, path: str, mode: int) -> Provision:
        """A mode change."""
        self._steps.append(("chmod", path, mode))
        return self

    def symlink(self, path: str, target: str) -> Provision:
        """A symlink at ``path`` pointing to ``target``."""
        self._steps.append(("symlink", path, target))
        return self

    def tree(self, source: StrPath, dest: str) -> Provision:
        """The host file or tree ``source``, copied to ``dest``."""
        self._steps.append(("tree", os.fspath(source), dest))
        return self

    def steps(self) -> list[Step]:
        """The steps, as the native module takes them."""
        return list(self._steps)

    def __len__(self) -> int:
        return len(self._steps)
