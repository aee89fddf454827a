"""``--copy-maps``: a map copied into ``OUT`` (:func:`copy_atomic`) and its subphase's ``_ls.txt``
copied or merged with the rows already there (:func:`copy_ls_table`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

from .atomic import atomic_path, write_text_atomic
from .layout import copy_paths
from .maps import MapJob
from .plan import RunPlan


def copy_atomic(src: Path, dst: Path) -> Path:
    """Copy ``src`` to ``dst`` through a temporary file in the same folder (no partial copies)."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def _rows(text: str) -> list[str]:
    """The non-blank rows of an ``_ls.txt``, whitespace normalised."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def ls_copy_current(src: Path, dst: Path) -> bool:
    """True when the copied table ``dst`` exists and holds every row of ``src``."""
    try:
        have = set(_rows(dst.read_text(errors="replace")))
    except OSError:
        return False
    try:
        return all(row in have for row in _rows(src.read_text(errors="replace")))
    except OSError:
        return True  # the source cannot be read: the load stage names it


def merge_ls_rows(existing: str, new: str) -> tuple[str, list[str]]:
    """``existing`` with the rows of ``new`` merged in: rows it lacks appended, rows of a map it
    holds otherwise replaced by ``new``'s (keyed by their first field, the map name); and the
    names of the maps whose rows were replaced."""
    rows = {row.split()[0]: row for row in _rows(existing)}
    replaced = []
    for row in _rows(new):
        key = row.split()[0]
        if key in rows and rows[key] != row:
            replaced.append(key)
        rows[key] = row
    return "".join(f"{row}\n" for row in rows.values()), replaced


def copy_ls_table(src: Path, dst: Path, notes: list[str]) -> bool:
    """``--copy-maps`` of a subphase's ``_ls.txt``: copied when ``dst`` is absent, left alone
    when it already holds every row, else merged (:func:`merge_ls_rows`: ``dst`` holds another
    input tree's table of the same subphase, or an older version of this one), with a note
    naming both.  True when ``dst`` was created."""
    import fcntl

    dst.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dst.parent, os.O_RDONLY | os.O_DIRECTORY)  # one merge at a time per subphase
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not dst.exists():
            copy_atomic(src, dst)
            return True
        if ls_copy_current(src, dst):
            return False
        merged, replaced = merge_ls_rows(dst.read_text(errors="replace"), src.read_text(errors="replace"))
        write_text_atomic(dst, merged)
        changed = ", ".join(replaced[:3]) + (f" and {len(replaced) - 3} more" if len(replaced) > 3 else "")
        notes.append(
            f"merged the rows of {src} into {dst}, which held other rows"
            + (f" (its rows for {changed} replaced by {src.name}'s)" if replaced else "")
        )
        return False
    finally:
        os.close(fd)


def shared_ls_tables(jobs: Sequence[MapJob], plan: RunPlan) -> list[str]:
    """``--copy-maps``: one line per copied ``_ls.txt`` that tables of several input trees go to
    (their rows are merged there, :func:`copy_ls_table`), naming them."""
    if not plan.copy_maps:
        return []
    sources: dict[Path, list[Path]] = {}
    for job in jobs:
        for src, dst in copy_paths(job, plan):
            if src == job.ls_file and src not in sources.setdefault(dst, []):
                sources[dst].append(src)
    return [
        f"--copy-maps: the tables {' and '.join(map(str, srcs))} both go to {dst}: their rows are merged there"
        for dst, srcs in sources.items()
        if len(srcs) > 1
    ]
