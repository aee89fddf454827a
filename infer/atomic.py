"""Atomic file output: write to a temporary name in the same folder, fsync, then rename.

Readers never see a half-written file, and a failed write leaves nothing behind.  While a
temporary file ``.<name>.<random>.tmp`` is being written, its writer holds an exclusive
``flock`` on a sidecar ``.<name>.<random>.lock``, so another run (or a rerun after a crash)
can tell a temporary that is still being written from one a dead process left behind
(:func:`remove_if_stale`): the kernel drops the lock when its owner dies, however it dies.
(The lock is on a sidecar, not on the temporary itself: HDF5 takes an ``flock`` of its own on
the files it writes, and would find them locked.)
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_SUFFIX = ".tmp"
LOCK_SUFFIX = ".lock"


NAME_MAX = 255
"""Longest file name, in bytes, of the file systems the outputs go to (Linux ``NAME_MAX``)."""
_RANDOM_PART = 8 + max(len(TMP_SUFFIX), len(LOCK_SUFFIX))
"""Bytes ``tempfile.mkstemp`` adds after the prefix: 8 random characters and the suffix."""


def temporary_prefix(path: str | Path) -> str:
    """The hidden prefix of the temporaries of ``path``: ``.<name>.``; for a name too long to
    take it within :data:`NAME_MAX` bytes, ``.<start of name>~<hash of name>.`` (the same for the
    same name, so a rerun finds the temporaries a dead run left)."""
    name = Path(path).name
    prefix = f".{name}."
    if len(os.fsencode(prefix)) + _RANDOM_PART <= NAME_MAX:
        return prefix
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    room = NAME_MAX - _RANDOM_PART - len(f".~{digest}.")
    start = os.fsencode(name)[:room].decode(errors="ignore")  # whole characters only
    while len(os.fsencode(start)) > room:  # surrogate-escaped bytes may count double
        start = start[:-1]
    return f".{start}~{digest}."


def is_temporary_of(candidate: Path, path: Path) -> bool:
    """True when ``candidate`` is named like a temporary of ``path`` (same folder)."""
    prefix = temporary_prefix(path)
    return candidate.name.startswith(prefix) and candidate.name.endswith(TMP_SUFFIX) and candidate.parent == path.parent


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _lock_of(tmp: Path) -> Path:
    return tmp.with_name(tmp.name[: -len(TMP_SUFFIX)] + LOCK_SUFFIX)


@contextmanager
def atomic_path(path: str | Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it to ``path``.

    The temporary name is hidden and ends in ``.tmp`` (``.x.ncdf.k3j9.tmp``), so globs for the
    real suffix never see it: writers that pick the format from the extension (Pillow,
    matplotlib) must be given the format explicitly.  The folder is created if missing.  The
    writer holds the lock of the temporary's sidecar until it is renamed or removed.  On any
    exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_fd, lock_name = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=LOCK_SUFFIX, dir=path.parent)
    lock = Path(lock_name)
    fd = -1
    tmp = lock.with_name(lock.name[: -len(LOCK_SUFFIX)] + TMP_SUFFIX)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # before the temporary exists
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        yield tmp
        os.chmod(tmp, mode)
        os.fsync(fd)  # the inode's data, whichever descriptor wrote it
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        try:
            if fd >= 0:
                os.close(fd)
            tmp.unlink(missing_ok=True)
            lock.unlink(missing_ok=True)
        finally:
            os.close(lock_fd)  # releases the lock last


def remove_if_stale(tmp: Path) -> bool:
    """Delete the temporary ``tmp`` (and its lock sidecar) unless a live process holds its
    lock; True when it was deleted.

    A temporary whose sidecar is missing or can be locked was left by a writer that died (or
    by a version without locks): it is removed.  One still being written is left alone.
    """
    lock = _lock_of(tmp)
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        fd = -1
    try:
        if fd >= 0:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # its writer is alive
        existed = tmp.exists()
        tmp.unlink(missing_ok=True)
        lock.unlink(missing_ok=True)
        return existed
    finally:
        if fd >= 0:
            os.close(fd)


def remove_stale_temporaries_of(path: str | Path) -> list[Path]:
    """Remove the stale temporaries of ``path`` (see :func:`remove_if_stale`) and orphan lock
    sidecars; returns the temporaries removed."""
    return remove_stale_temporaries_of_many([path])


def _prefix_of(name: str) -> str | None:
    """The :func:`temporary_prefix` a temporary or lock named ``name`` was made with (its name
    without the suffix and the random part, which holds no dot); None for other names."""
    for suffix in (TMP_SUFFIX, LOCK_SUFFIX):
        if name.startswith(".") and name.endswith(suffix):
            stem = name[: -len(suffix)]
            return stem[: stem.rfind(".") + 1] if stem.rfind(".") > 0 else None
    return None


def remove_stale_temporaries_of_many(paths: Iterable[str | Path]) -> list[Path]:
    """:func:`remove_stale_temporaries_of` for many paths, listing each folder once (a rerun
    over a folder of 10,000 masks); names are matched exactly, never as glob patterns."""
    by_folder: dict[Path, set[str]] = {}
    for p in map(Path, paths):
        by_folder.setdefault(p.parent, set()).add(temporary_prefix(p))
    removed = []
    for folder, prefixes in by_folder.items():
        removed += _remove_stale(folder, _made_with(prefixes))
    return removed


def _made_with(prefixes: set[str]) -> Callable[[str], bool]:
    return lambda name: _prefix_of(name) in prefixes


def _remove_stale(folder: Path, matches: Callable[[str], bool]) -> list[Path]:
    """Remove the stale temporaries (and orphan lock sidecars) in ``folder`` whose names
    ``matches`` (exact string tests: a name holding ``[`` or ``*`` is no glob pattern)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    removed = []
    for name in names:
        if matches(name) and name.endswith(TMP_SUFFIX) and remove_if_stale(folder / name):
            removed.append(folder / name)
    for name in names:
        if matches(name) and name.endswith(LOCK_SUFFIX):
            tmp = folder / (name[: -len(LOCK_SUFFIX)] + TMP_SUFFIX)
            if not tmp.exists():
                remove_if_stale(tmp)  # an orphan sidecar: removed unless its writer lives
    return removed


def remove_stale_temporaries_in(folder: str | Path, suffix: str = "") -> list[Path]:
    """Remove every stale temporary in ``folder`` of a file whose name ends in ``suffix`` (the
    run records of dead runs: ``.<run>.json.<random>.tmp``); returns the temporaries removed."""
    return _remove_stale(Path(folder), lambda name: name.startswith(".") and f"{suffix}." in name)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a text file atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path
