"""Checking output paths before any work: a file must be writable as a file, a folder as a folder.

The science commands call these on ``--out``, ``--json`` and ``--png`` before they read a
single mask, so a path under a regular file, a file name that is a folder, or a folder
name that is a file is one line and exit status 2, with nothing written and nothing lost.
"""

from __future__ import annotations

import os
from pathlib import Path


class OutputPathError(ValueError):
    """An output path that cannot be written; the one-line message names it and the reason."""


def _first_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (``Path.exists`` is False under a regular file)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def _check_parent(path: Path, what: str) -> None:
    """Raise unless the folders above ``path`` exist as folders, or can be made, and are writable."""
    base = _first_existing(path.parent)
    if not base.is_dir():
        raise OutputPathError(f"{what} {path}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {path}: cannot write in {base}")


def check_output_file(path: str | Path, what: str = "--out") -> Path:
    """``path`` if a file can be written there (its folders may be missing); else OutputPathError.

    ``what`` names the option in the message (``--out``, ``--json``).  An existing file is
    fine (it is replaced atomically); an existing folder is not.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path}: is a folder; give a file name")
    _check_parent(path, what)
    return path


def check_output_folder(path: str | Path, what: str = "--png") -> Path:
    """``path`` if it is, or can be made, a writable folder; else OutputPathError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{what} {path}: is a file, not a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputPathError(f"{what} {path}: cannot write in this folder")
        return path
    _check_parent(path, what)
    return path
