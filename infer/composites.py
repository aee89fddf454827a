"""The first pass of a run whose model needs a background: one composite per subphase.

A model with a ``bdiffQ`` / ``bratioQ`` channel (:mod:`.channels`) needs, for every map, the
background composite of its subphase (:mod:`.background`).  A subphase here is the folder
holding the map: its composite is made of every map of that folder
(:func:`.background.map_files`), read one at a time, whichever of them this run predicts.
Before any map is run, :func:`prepare_composite` makes sure each subphase's composite is in
``OUT/<phase>/<subphase>/background_<subphase>.nc`` (beside ``cloudmasks/``):

* **reused** when the file is there, readable, of map size, holds the percentiles the model
  needs and was made from the same source files, unchanged (:func:`.background.sources_fingerprint`
  of their names, sizes and modification times);
* else **built** and written atomically (:mod:`.atomic`), like the masks.  Unreadable maps
  are left out (each named in the record); a folder with a single map gives a composite of
  that map (its ``bdiff`` channels then carry no contrast: said in a note);
* **failed** when none of the folder's maps can be read: every map of that folder then fails
  with one line naming the folder, and the other subphases go on.

``cm-infer --background FILE`` skips this pass: every map uses ``FILE``.

The map pass reads each composite back through :data:`CACHE` (per process, the two most
recent, so a Dask worker or the reader thread reads a subphase's composite once per run).

Memory: one composite is built at a time, its maps decoded one at a time (about 0.57 GB
peak for 35 maps, :mod:`.background`); it is freed before the next one and before the maps run.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .background import (
    Background,
    composite_of_readable,
    map_files,
    read_attrs,
    read_netcdf,
    sources_fingerprint,
    write_netcdf,
)
from .geometry import MAP_HEIGHT, MAP_WIDTH

if TYPE_CHECKING:  # pragma: no cover
    from .maps import MapJob
    from .plan import RunPlan

FINGERPRINT_ATTR = "sources_fingerprint"
FOLDER_ATTR = "source_folder"
FULL_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@dataclass(frozen=True)
class CompositeTask:
    """One subphase's composite to make sure of: ``folder`` (absolute) holds the maps, ``path``
    is the composite file in ``OUT``; ``percentiles`` the model needs; ``rebuild``: build it
    even when a valid one is there (``--overwrite``)."""

    folder: str
    path: str
    percentiles: tuple[int, ...]
    rebuild: bool = False


@dataclass
class CompositeResult:
    """What the pass did for one subphase: ``status`` ``built``, ``reused``, ``given``
    (``--background``) or ``failed`` (``reason``: one line naming the folder).

    ``source_maps``: the map files that went in; ``skipped``: one line per unreadable map left
    out; ``notes``: what a user should know (a one-map composite, a file rebuilt and why).
    """

    folder: str
    path: str
    status: str
    reason: str | None = None
    n_maps: int | None = None
    source_maps: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    full_disk: bool = False


def source_folder(job: "MapJob") -> str:
    """The subphase folder of a map for its composite: the folder holding the map file."""
    return str(Path(job.path).parent)


def composite_tasks(jobs: Sequence["MapJob"], plan: "RunPlan") -> tuple[list[CompositeTask], dict[str, str]]:
    """The composites the maps ``jobs`` need under ``plan``, one per source folder, in job order;
    and ``{folder: one-line reason}`` for folders that cannot get one: two folders whose maps
    write into the same ``OUT`` subphase would write the same composite."""
    if not plan.needs_background or plan.background is not None:
        return [], {}
    by_folder: dict[str, Path] = {}
    for job in jobs:
        path = plan.composite_path(job)
        assert path is not None  # the plan needs a background
        by_folder.setdefault(source_folder(job), path)
    by_path: dict[Path, list[str]] = {}
    for folder, path in by_folder.items():
        by_path.setdefault(path, []).append(folder)
    conflicts: dict[str, str] = {}
    for path, folders in by_path.items():
        if len(folders) > 1:
            for folder in folders:
                others = ", ".join(f for f in folders if f != folder)
                conflicts[folder] = (
                    f"its folder {folder} and {others} would both write the background composite {path}; "
                    "run them one at a time (other --out folders) or give --background FILE"
                )
    tasks = [
        CompositeTask(folder, str(path), plan.percentiles, plan.overwrite)
        for folder, path in by_folder.items()
        if folder not in conflicts
    ]
    return tasks, conflicts


def reuse_problem(path: Path, percentiles: Sequence[int], fingerprint: str) -> str | None:
    """None when the composite at ``path`` can be reused for these percentiles and sources;
    else why not (missing, unreadable, other percentiles, other or changed source files)."""
    if not path.exists():
        return "missing"
    try:
        attrs = read_attrs(path)
    except Exception as exc:  # netCDF4 raises OSError, RuntimeError... on a truncated file
        return f"unreadable ({' '.join(str(exc).split()) or type(exc).__name__})"
    missing = [q for q in percentiles if q not in attrs["percentiles"]]
    if missing:
        return f"it has percentiles {attrs['percentiles']}, the model needs {sorted(percentiles)}"
    if attrs.get(FINGERPRINT_ATTR) != fingerprint:
        return "its source maps changed"
    try:  # the planes themselves must be complete (a file cut short inside its chunks)
        bg = read_netcdf(path, percentiles)
    except Exception as exc:
        return f"unreadable ({' '.join(str(exc).split()) or type(exc).__name__})"
    if bg.count.shape != (MAP_HEIGHT, MAP_WIDTH):
        return f"its shape is {bg.count.shape}"
    return None


def one_map_note(n_maps: int) -> list[str]:
    """The note of a composite made of a single map."""
    if n_maps != 1:
        return []
    return ["composite of 1 map: every valid pixel is its own background, so the background channels carry no contrast"]


def prepare_composite(task: CompositeTask) -> CompositeResult:
    """Reuse or build (and write, atomically) one subphase's composite; never raises for bad input.

    A full disk while writing gives a failed result with ``full_disk`` set (the engine then
    stops starting maps).
    """
    from .atomic import remove_stale_temporaries_of

    t0 = time.perf_counter()
    folder, path = Path(task.folder), Path(task.path)

    def failed(reason: str, full_disk: bool = False) -> CompositeResult:
        return CompositeResult(
            task.folder, task.path, "failed", reason=reason, seconds=time.perf_counter() - t0, full_disk=full_disk
        )

    try:
        files = map_files(folder)
    except OSError as exc:
        return failed(
            f"background composite of {folder} cannot be built: cannot list the folder ({exc.strerror or exc})"
        )
    fingerprint = sources_fingerprint(files)
    notes: list[str] = []
    if not task.rebuild:
        problem = reuse_problem(path, task.percentiles, fingerprint)
        if problem is None:
            attrs = read_attrs(path)
            names = [n for n in str(attrs.get("source_maps", "")).split(",") if n]
            n_maps = int(attrs.get("n_maps", len(names)))
            return CompositeResult(
                task.folder,
                task.path,
                "reused",
                n_maps=n_maps,
                source_maps=[str(folder / n) for n in names],
                notes=one_map_note(n_maps),
                seconds=time.perf_counter() - t0,
            )
        if problem != "missing":
            notes.append(f"existing composite rebuilt ({problem})")
    try:
        made = composite_of_readable(files, task.percentiles)
    except ValueError as exc:
        return failed(f"background composite of {folder} cannot be built: {exc}")
    remove_stale_temporaries_of(path)
    try:
        write_netcdf(
            made.background,
            path,
            sources=[p.name for p in made.used],
            attrs={
                FOLDER_ATTR: str(folder),
                FINGERPRINT_ATTR: fingerprint,
                "skipped_maps": "; ".join(made.skipped),
                "history": f"cm-infer: background composite of {len(made.used)} maps of {folder}",
            },
        )
    except OSError as exc:
        return failed(
            f"background composite of {folder}: cannot write {path} ({exc.strerror or exc})",
            full_disk=exc.errno in FULL_DISK_ERRNOS,
        )
    return CompositeResult(
        task.folder,
        task.path,
        "built",
        n_maps=made.background.n_maps,
        source_maps=[str(p) for p in made.used],
        skipped=made.skipped,
        notes=notes + one_map_note(made.background.n_maps),
        seconds=time.perf_counter() - t0,
    )


class CompositeCache:
    """The composites read back for the map pass, per process: the ``size`` most recent, keyed
    by file, size, modification time and percentiles (thread-safe)."""

    def __init__(self, size: int = 2):
        self.size = size
        self._entries: OrderedDict[tuple, Background] = OrderedDict()
        self._lock = threading.Lock()
        self.reads = 0

    def get(self, path: str | Path, percentiles: Sequence[int]) -> Background:
        """The composite at ``path`` with these percentiles (read once while it stays cached).

        Raises:
            OSError, KeyError, RuntimeError: the file cannot be read (the caller names the map).
        """
        st = os.stat(path)
        key = (str(path), st.st_size, st.st_mtime_ns, tuple(percentiles))
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            bg = read_netcdf(path, percentiles)
            self.reads += 1
            if bg.count.shape != (MAP_HEIGHT, MAP_WIDTH):
                raise ValueError(f"{path}: composite is {bg.count.shape}, maps are {(MAP_HEIGHT, MAP_WIDTH)}")
            for plane in bg.percentiles.values():
                plane.setflags(write=False)
            self._entries[key] = bg
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            return bg


CACHE = CompositeCache()
"""This process's composites for the map pass (the reader thread, or a Dask worker)."""
