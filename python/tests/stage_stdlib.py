"""Copies this Python's standard library to DEST, without what a program
that uses krunbox never imports (tests, GUI toolkits, packaging tools,
other optimisation levels' bytecode), and prints the interpreter's real
path and the standard library's path, a line each.

The VM suite (tests/vm/python_cases.rs) puts the interpreter and this copy
into the nested lab at their host paths, where the interpreter finds its
library as it does on the host.

    python stage_stdlib.py DEST
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig

SKIPPED = {
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "site-packages",
    "distutils",
    "pydoc_data",
}


def ignore(_dir: str, names: list[str]) -> list[str]:
    """What copytree leaves out of each directory."""
    return [n for n in names if n in SKIPPED or n.startswith("config-") or ".opt-" in n]


def main(dest: str) -> None:
    stdlib = sysconfig.get_path("stdlib")
    shutil.copytree(stdlib, dest, ignore=ignore, symlinks=True)
    print(os.path.realpath(sys.executable))
    print(stdlib)


if __name__ == "__main__":
    main(sys.argv[1])
