"""The run engine: the one place a map is run, whatever executes it.

A run (:func:`run`) is: a :class:`~mars_cloudmask.infer.plan.RunPlan` resolved once; a
triage of every map against what ``OUT`` already holds (:func:`triage`: run it, add the extras
asked for now from the existing mask, or skip it); for a model whose channels need a
background, a first pass making sure of one composite per subphase
(:meth:`Stages.composite_pass`, :mod:`mars_cloudmask.infer.composites`); the maps run through
:class:`Stages` by an executor; and, whatever happens (a bad map, a full disk, SIGINT or
SIGTERM), an accurate run record (:mod:`mars_cloudmask.infer.records`).

:class:`Stages` is the stage runner: ``load`` (the ``_ls.txt`` row, the JPEG, the box, and
for a model with extra channels its input, :func:`.channels.model_input` with the subphase's
composite), ``predict`` (tiles, model, stitching), ``save`` (quicklook, map copies, then the mask last:
the mask in ``OUT`` is the mark of a finished map, so a map whose extras fail leaves no mask
and a rerun redoes it).  Each stage is timed and turns its exception into the map's
:class:`MapResult`.

Executors decide only *how* the stages are scheduled; they share the stages, the triage, the
cleanup and the record:

* :class:`SequentialExecutor`: one map after another (cm-bench's staged timing);
* :class:`ThreadedExecutor`: decoding and writing overlapped with inference (the default);
* ``cluster.DaskExecutor``: one task per map on a Dask cluster.

Example::

    from mars_cloudmask.infer.engine import run
    from mars_cloudmask.infer.maps import find_jobs
    from mars_cloudmask.infer.plan import InferOptions
    from mars_cloudmask.infer.runtime import load_model

    jobs, errors = find_jobs(["../shared/data/mdgm/P/P01"])
    report = run(jobs, load_model(), InferOptions(out="masks"), input_errors=errors)
    print(report.counts())
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import queue
import shutil
import signal
import threading
import time
import unicodedata
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Protocol, Sequence

import numpy as np

from .atomic import atomic_path, remove_stale_temporaries_of_many, write_text_atomic
from .channels import model_input, parse_spec
from .composites import CACHE, CompositeResult, composite_tasks, prepare_composite, source_folder
from .geometry import DEFAULT_POLAR_OFFSET, INVALID, MAP_HEIGHT, MAP_WIDTH, Bounds, TilePlan
from .maps import LsEntry, MapError, MapJob, ls_entry, read_map
from .plan import InferOptions, RunPlan, as_plan, check_jobs
from .predict import check_map, map_bounds, place_box, plan_for, predict_box, threshold_mask
from .runtime import CloudModel

MaskHook = Callable[[MapJob, np.ndarray, np.ndarray], None]
"""``on_mask(job, rgb, mask)``: called after each mask is written (mask as written, north-up)."""

PredictHook = Callable[[CloudModel, "LoadedMap", RunPlan], "tuple[np.ndarray, TilePlan | None]"]
"""A replacement predict stage (cm-bench's reference stitchings): returns the mask and plan."""

FULL_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class OutputError(RuntimeError):
    """The output folder cannot be created or written; the message names it."""


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM; ``report`` is what it finished (its record written).

    ``exit_status`` is the shell's convention for a signal: 128 + the signal number.
    """

    def __init__(self, signum: int, report: "RunReport"):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.report = report

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class _Signalled(BaseException):
    """Raised in the main thread by the engine's signal handler."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# --------------------------------------------------------------------------- data
@dataclass
class MapResult:
    """What happened to one map: ``status`` is ``done``, ``skipped`` or ``failed``.

    ``reason``: one line (why it failed or was skipped); ``notes``: what else a user should know
    (an existing bad mask redone, extras made from an existing mask, Ls unknown...);
    ``background``: the composite file the map's input was made with (None: none needed);
    ``kept``: for a skipped map, how its mask was made where that differs from this run's plan.
    """

    name: str
    source: str
    output: str
    status: str
    reason: str | None = None
    ls: float | None = None
    mars_year: int | None = None
    bounds: tuple[int, int, int, int] | None = None
    tile_out: int | None = None
    n_tiles: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    background: str | None = None
    kept: str | None = None


@dataclass
class LoadedMap:
    """A decoded map ready for the model: ``rgb`` uint8 (1801, 3600, 3) north-up; ``bounds``
    None for a map without a data pixel (its mask is all -999); ``image``: the model's input,
    uint8 (1801, 3600, 3 + k) (None: the RGB itself); ``background``: the composite file it used."""

    job: MapJob
    rgb: np.ndarray
    entry: LsEntry | None
    bounds: Bounds | None
    notes: list[str] = field(default_factory=list)
    image: np.ndarray | None = None
    background: str | None = None

    @property
    def model_input(self) -> np.ndarray:
        """What the model's tiles are cut from: :attr:`image`, else the RGB."""
        return self.rgb if self.image is None else self.image


@dataclass(frozen=True)
class WorkItem:
    """One map to process: ``index`` in the run's job order, ``kind`` ``map`` (everything) or
    ``extras`` (the mask exists and is sound: only the quicklook / copies asked for now)."""

    index: int
    job: MapJob
    kind: str = "map"
    note: str | None = None
    mask: Path | None = None
    """``extras``: the existing mask they are made from (None: the plan's output path)."""


@dataclass
class RunReport:
    """Results of a run, in job order, plus the run-level facts written to the run record."""

    results: list[MapResult]
    record: dict[str, Any]
    record_path: Path | None
    input_errors: list[str] = field(default_factory=list)
    not_processed: int = 0
    halted: str | None = None
    interrupted: str | None = None
    record_error: str | None = None
    composites: list[CompositeResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Run-level lines for the summary (masks kept from another model or plan, a repaired
    contents file...)."""

    def by_status(self, status: str) -> list[MapResult]:
        return [r for r in self.results if r.status == status]

    def counts(self) -> dict[str, int]:
        return {s: len(self.by_status(s)) for s in ("done", "skipped", "failed")}

    @property
    def ok(self) -> bool:
        """True when no map failed, every input was found and the run ran to its end."""
        return (
            not self.by_status("failed") and not self.input_errors and not self.not_processed and not self.record_error
        )


# --------------------------------------------------------------------------- small pieces
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(text: str) -> str:
    """``text`` safe to print as (part of) one line: control and line-separator characters
    escaped as ``repr`` would (``\\n``, ``\\x1b``, ``\\u2028``); a name holding a newline
    cannot forge a line of the summary.  Idempotent."""
    out = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            out.append(_ESCAPES.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"))
        else:
            out.append(ch)
    return "".join(out)


def failure_reason(job: MapJob, exc: BaseException) -> str:
    """One line naming the file and the reason (names escaped by :func:`shown`)."""
    raw = str(exc)
    names = [str(job.path), str(job.ls_file or ""), job.path.name]
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        raw = raw.replace(name, shown(name))  # a newline in a name is shown, not collapsed
    msg = shown(" ".join(raw.split())) or type(exc).__name__
    if isinstance(exc, MapError) or shown(str(job.path)) in msg:
        return msg
    return f"{shown(str(job.path))}: {msg}"


def result_for(job: MapJob, plan: RunPlan, status: str, **kw: Any) -> MapResult:
    """A :class:`MapResult` of ``job`` under ``plan`` (its reason and notes one line each)."""
    if kw.get("reason"):
        kw["reason"] = shown(kw["reason"])
    if kw.get("notes"):
        kw["notes"] = [shown(n) for n in kw["notes"]]
    return MapResult(job.name, str(job.path), str(plan.output_path(job)), status, **kw)


def ensure_output_root(out: Path) -> Path:
    """Create ``out`` if needed and check it is writable.

    Raises:
        OutputError: one line naming the folder and the reason.
    """
    import tempfile

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".cm-infer-write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{out}: output folder is not writable ({exc.strerror or exc})") from None
    return out


def quicklook_path(mask_path: Path) -> Path:
    """The PNG quicklook beside a mask."""
    return mask_path.with_suffix(".png")


def copy_paths(job: MapJob, plan: RunPlan) -> list[tuple[Path, Path]]:
    """``(source, destination)`` of ``--copy-maps``: the map into ``mdgms/``, the ``_ls.txt`` beside."""
    sub = plan.output_path(job).parent.parent
    pairs = [(job.path, sub / "mdgms" / job.path.name)]
    if job.ls_file is not None:
        pairs.append((job.ls_file, sub / job.ls_file.name))
    return pairs


def values_problem(path: Path, data: np.ndarray) -> str | None:
    """None when every value of a mask is -999 (invalid) or a probability in [0, 1]; else one
    line naming the file (a mask edited to 5.0 or NaN everywhere is not sound)."""
    valid = data != INVALID
    bad_nan = int(np.count_nonzero(~np.isfinite(data)))
    if bad_nan:
        return f"{path}: {bad_nan} values are NaN or infinite"
    outside = valid & ((data < 0.0) | (data > 1.0))
    if outside.any():
        lo, hi = float(data[outside].min()), float(data[outside].max())
        return f"{path}: {int(np.count_nonzero(outside))} values outside [0, 1] and not -999 (from {lo:g} to {hi:g})"
    return None


def inspect_mask(path: Path) -> tuple[str | None, dict[str, Any]]:
    """``(problem, attributes)`` of an existing mask in one read: problem None when it is a
    complete, readable mask of the map's shape whose values are sound (:func:`values_problem`)."""
    import netCDF4

    from .netcdf import NETCDF_LOCK, check_mask_file

    try:
        with NETCDF_LOCK, netCDF4.Dataset(path) as ds:
            var = ds.variables["cloudmask"]
            if var.shape != (MAP_HEIGHT, MAP_WIDTH):
                raise ValueError(var.shape)
            var.set_auto_maskandscale(False)
            data = np.asarray(var[:, :], dtype=np.float32)
            attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
    except Exception:  # noqa: BLE001 - the check below names what is wrong
        return check_mask_file(path) or f"{path}: not a readable NetCDF mask", {}
    return values_problem(path, data), attrs


def mask_problem(path: Path) -> str | None:
    """None when ``path`` is a complete, readable mask of the map's shape with sound values; else why not."""
    return inspect_mask(path)[0]


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


def provenance_changes(attrs: dict[str, Any], plan: RunPlan) -> list[str]:
    """How the mask with global attributes ``attrs`` was made, where that differs from ``plan``:
    e.g. ``["model cloudmask-unet 2 (sha256 ab12cd34..)", "threshold 0.47", "binary output"]``;
    empty when it was made as this run would make it."""
    a = {k: _plain(v) for k, v in attrs.items()}
    changes = []
    if a.get("model_sha256") != plan.model_sha256:
        sha = a.get("model_sha256")
        name = a.get("model_name")
        made_by = f"model {name} {a.get('model_version', '?')}" if name else "an unknown model"
        changes.append(made_by + (f" (sha256 {str(sha)[:8]}..)" if sha else ""))
    threshold = a.get("threshold")
    if not isinstance(threshold, (int, float)) or abs(float(threshold) - plan.threshold) > 1e-9:
        changes.append(f"threshold {threshold if threshold is not None else 'unknown'}")
    want = "binary" if plan.binary else "probability"
    if a.get("output_type", "probability") != want:
        changes.append(f"{a.get('output_type')} output")
    if plan.bounds is not None:
        if a.get("bounds_source") != "--bounds" or list(a.get("bounds_xmin_xmax_ymin_ymax") or []) != list(plan.bounds):
            box = a.get("bounds_xmin_xmax_ymin_ymax")
            changes.append("bounds from Ls" if a.get("bounds_source") != "--bounds" else f"--bounds {box}")
    elif a.get("bounds_source", "Ls") != "Ls":
        changes.append(f"--bounds {a.get('bounds_xmin_xmax_ymin_ymax')}")
    elif a.get("polar_offset_deg") is not None and abs(float(a["polar_offset_deg"]) - plan.polar_offset) > 1e-9:
        changes.append(f"polar offset {a['polar_offset_deg']:g}")
    if a.get("stitch_mode", plan.stitch) != plan.stitch:
        changes.append(f"stitch {a['stitch_mode']}")
    if a.get("input_channels", "rgb") != plan.channels:
        changes.append(f"input channels {a.get('input_channels', 'rgb')}")
    return changes


def existing_output(job: MapJob, plan: RunPlan) -> Path | None:
    """The map's mask in ``OUT``, under this run's suffix or another (None: none)."""
    for path in [plan.output_path(job), *plan.other_output_paths(job)]:
        if path.exists() or path.is_symlink():
            return path
    return None


def triage(index: int, job: MapJob, plan: RunPlan) -> WorkItem | MapResult:
    """What to do with one map given ``OUT``: a :class:`WorkItem` or a skipped :class:`MapResult`.

    A sound mask (under this run's ``--suffix`` or the other) is skipped (unless ``overwrite``)
    or, when extras are asked for now and missing, gets them made from it; a bad one (0-byte,
    truncated, wrong shape, values neither -999 nor in [0, 1]) is redone.  A skipped mask made
    by another model or with other options says so in ``kept`` (the summary counts them).
    """
    out = existing_output(job, plan)
    if plan.overwrite or out is None:
        return WorkItem(index, job)
    problem, attrs = inspect_mask(out)
    if problem is not None:
        return WorkItem(index, job, note=f"existing output redone ({problem})")
    missing = []
    if plan.quicklook and not quicklook_path(out).exists():
        missing.append("quicklook")
    if plan.copy_maps and any(
        not (ls_copy_current(src, dst) if src == job.ls_file else dst.exists()) for src, dst in copy_paths(job, plan)
    ):
        missing.append("map copies")
    kept = provenance_changes(attrs, plan)
    if missing:
        made = f" (made with {', '.join(kept)})" if kept else ""
        return WorkItem(
            index, job, kind="extras", note=f"{' and '.join(missing)} made from the existing mask{made}", mask=out
        )
    reason = "output exists" + (f" ({out.name})" if out != plan.output_path(job) else "")
    result = result_for(job, plan, "skipped", reason=reason + (f", made with {', '.join(kept)}" if kept else ""))
    result.output, result.kept = str(out), ", ".join(kept) or None
    return result


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


def kept_lines(results: Sequence[MapResult]) -> list[str]:
    """One summary line per kind of mask kept from another model or plan (``MapResult.kept``)."""
    groups: dict[str, int] = {}
    for r in results:
        if r.status == "skipped" and r.kept:
            groups[r.kept] = groups.get(r.kept, 0) + 1
    return [f"kept {n} masks made with {kept}; use --overwrite to redo them" for kept, n in groups.items()]


def remove_stale_temporaries(job: MapJob, plan: RunPlan) -> list[Path]:
    """Delete the temporaries a dead run or worker left beside this map's outputs; returns them.

    Only those no live process is writing (their writer's lock is gone): another run on the
    same ``OUT`` keeps its files.
    """
    return remove_stale_temporaries_of_many(output_targets(job, plan))


def output_targets(job: MapJob, plan: RunPlan) -> list[Path]:
    """Every file a run may write for this map: the mask (either suffix), quicklook, copies."""
    out = plan.output_path(job)
    return [out, *plan.other_output_paths(job), quicklook_path(out)] + [dst for _, dst in copy_paths(job, plan)]


def copy_atomic(src: Path, dst: Path) -> Path:
    """Copy ``src`` to ``dst`` through a temporary file in the same folder (no partial copies)."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def quicklook_caption(name: str, entry: LsEntry | float | None, mars_year: int | None = None) -> str:
    """The quicklook legend's first line: ``"P01_day16  |  MY 28  |  Ls 133.4"`` (from a table
    row, or from ``ls`` and ``mars_year``); parts that are unknown are left out."""
    if isinstance(entry, LsEntry):
        ls: float | None = entry.ls
        mars_year = entry.mars_year
    else:
        ls = entry
    parts = ["".join(c if c.isprintable() else "?" for c in name)]
    if mars_year is not None:
        parts.append(f"MY {mars_year}")
    if ls is not None:
        parts.append(f"Ls {ls:.1f}")
    return "  |  ".join(parts)


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


def quicklook_writer() -> Callable[..., Path]:
    """``save_quicklook(png_path, rgb, mask, threshold)``; OutputError when unavailable."""
    try:
        from .quicklook import save_quicklook
    except ImportError as exc:
        raise OutputError(f"--quicklook needs mars_cloudmask.infer.quicklook ({exc})") from None
    return save_quicklook


def mask_attributes(loaded: LoadedMap, plan: RunPlan, model_sha256: str | None = None) -> dict[str, Any]:
    """Global attributes of a mask file (CF ``Conventions`` is added by the writer)."""
    from . import __version__

    job, entry, box = loaded.job, loaded.entry, loaded.bounds
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out_name = plan.output_path(job).name
    return {
        "title": f"Water-ice cloud {'mask' if plan.binary else 'probability'} of MARCI MDGM {job.name}",
        "source": f"U-Net cloud mask (cloudmask {__version__}) of a MARCI Mars Daily Global Map",
        "source_map": job.path.name,
        "map_name": job.name,
        "phase": job.phase,
        "subphase": job.subphase,
        "solar_longitude": entry.ls if entry else None,
        "solar_longitude_units": "degree",
        "mars_year": entry.mars_year if entry else None,
        "model_name": plan.model_name,
        "model_version": plan.model_version,
        "model_sha256": model_sha256 or plan.model_sha256,
        "threshold": plan.threshold,
        "output_type": "binary" if plan.binary else "probability",
        "stitch_mode": plan.stitch,
        "polar_offset_deg": plan.polar_offset,
        "bounds_source": "--bounds" if plan.bounds is not None else "Ls",
        "bounds_xmin_xmax_ymin_ymax": list(box.as_tuple()) if box else None,
        "bounds_convention": "north-up JPEG pixel indices, exclusive max",
        "history": f"{now} cm-infer {__version__} run {plan.run_id}: {job.path.name} -> {out_name}",
        "run_id": plan.run_id,
        # models with extra channels only: RGB masks keep the attributes they always had
        **({"input_channels": plan.channels} if plan.channels != "rgb" else {}),
        **({"background_composite": loaded.background} if loaded.background else {}),
    }


def load_map(
    job: MapJob, *, bounds: tuple[int, int, int, int] | None = None, polar_offset: float = DEFAULT_POLAR_OFFSET
) -> LoadedMap:
    """The load stage: the map's ``_ls.txt`` row (optional when ``bounds`` is given), the decoded
    JPEG (north-up) and its box (``bounds``, else from Ls and ``polar_offset`` in degrees).

    Raises:
        MapError: the row or the JPEG cannot be used (the message names the file).
    """
    notes = []
    entry: LsEntry | None
    try:
        entry = ls_entry(job)
    except MapError as exc:
        if bounds is None:
            raise
        entry = None  # with --bounds the Ls is only an attribute
        if job.ls_file is not None:
            notes.append(f"Ls unknown, not written ({exc})")
    rgb = read_map(job.path)
    box = map_bounds(rgb, entry.ls if entry else None, bounds, polar_offset)
    return LoadedMap(job, rgb, entry, box, notes)


# --------------------------------------------------------------------------- the stage runner
class RunState:
    """What the stages and executors share during one run: a stop flag and why it was set."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.halted: str | None = None
        # executors wrap "a mask is published and counted" in this, so that a signal waits for
        # the count; the run sets it to its signal guard's ``held`` (a no-op outside a run)
        self.critical: Callable[[], ContextManager[None]] = contextlib.nullcontext

    def halt(self, reason: str) -> None:
        """Stop starting new maps (a full disk...); ``reason`` goes into the summary."""
        if self.halted is None:
            self.halted = reason
        self.stop.set()


class Stages:
    """load, predict, save for one map under one plan; each timed (``<stage>_s``).

    ``predict_fn`` replaces the predict stage (cm-bench's reference stitchings); ``on_mask`` is
    called after each mask is written.
    """

    def __init__(
        self,
        model: CloudModel,
        plan: RunPlan,
        *,
        on_mask: MaskHook | None = None,
        predict_fn: PredictHook | None = None,
        state: RunState | None = None,
    ):
        self.model = model
        self.plan = plan
        self.on_mask = on_mask
        self.predict_fn = predict_fn
        self.state = state or RunState()
        self.spec = parse_spec(plan.channels)
        self.composites: list[CompositeResult] = []

    # -- the first pass (models whose channels need a background)
    def composite_pass(
        self,
        items: Sequence[WorkItem],
        finish: "Finish",
        build: Callable[[list], list[CompositeResult]] | None = None,
    ) -> list[WorkItem]:
        """Make sure of one composite per subphase the ``items`` to predict need (none for a
        model without background channels, or with ``--background FILE``); returns the items
        left to run.  A map whose subphase has no composite is finished here as failed, with
        one line naming the folder.  ``build(tasks)`` runs the tasks (default: here, one after
        another, stopping early when the run stops); it must return one result per task, in
        order, or fewer when it stopped.
        """
        if not self.plan.needs_background:
            return list(items)
        to_predict = [it for it in items if it.kind == "map"]
        if self.plan.background is not None:
            folders = sorted({source_folder(it.job) for it in to_predict})
            self.composites = [CompositeResult(", ".join(folders), self.plan.background, "given")] if folders else []
            return list(items)
        tasks, conflicts = composite_tasks([it.job for it in to_predict], self.plan)
        if build is None:
            results = []
            for task in tasks:
                if self.state.stop.is_set():
                    break
                results.append(prepare_composite(task))
        else:
            results = list(build(tasks))
        self.composites = results
        reasons = dict(conflicts)
        for r in results:
            if r.full_disk:
                self.state.halt(f"{self.plan.out}: {r.reason}: the run stopped; free space and run again")
            if r.status == "failed":
                reasons[r.folder] = r.reason or f"background composite of {r.folder} failed"
        ready = {r.folder for r in results if r.status != "failed"}
        left = []
        for it in items:
            folder = source_folder(it.job)
            if it.kind == "map" and folder in reasons:
                finish(it.index, result_for(it.job, self.plan, "failed", reason=f"{it.job.path}: {reasons[folder]}"))
            elif it.kind != "map" or folder in ready:
                left.append(it)
            # else: the run stopped before this folder's composite: not processed
        return left

    # -- the three stages (each raises on failure)
    def load(self, job: MapJob) -> LoadedMap:
        """The Ls row (optional with ``bounds``), the decoded map and its box; for a model with
        extra channels, its input (:func:`.channels.model_input`, with the subphase's composite)."""
        loaded = load_map(job, bounds=self.plan.bounds, polar_offset=self.plan.polar_offset)
        if self.spec.extras:
            background = None
            path = self.plan.composite_path(job)
            if path is not None:
                try:
                    background = CACHE.get(path, self.plan.percentiles)
                except Exception as exc:  # netCDF4 raises OSError, RuntimeError... on a bad file
                    msg = " ".join(str(exc).split()) or type(exc).__name__
                    raise MapError(f"{job.path}: cannot read its background composite {path} ({msg})") from None
                loaded.background = str(path)
            ls = loaded.entry.ls if loaded.entry else None
            loaded.image = model_input(loaded.rgb, self.spec, background, ls)
        return loaded

    def predict(self, loaded: LoadedMap) -> tuple[np.ndarray, TilePlan | None]:
        """The mask to write: float32 (1801, 3600) north-up, probability in [0, 1] or 0/1,
        -999 invalid; and the tile plan (None for a map without data)."""
        if self.predict_fn is not None:
            mask, tiles = self.predict_fn(self.model, loaded, self.plan)
        else:
            check_map(loaded.rgb)
            if loaded.bounds is None:
                return np.full((MAP_HEIGHT, MAP_WIDTH), INVALID, np.float32), None
            tiles = plan_for(self.model, loaded.bounds, self.plan.stitch, self.plan.tile_out)
            box = predict_box(self.model, loaded.model_input, tiles, self.plan.stitch, self.plan.batch_size)
            mask = place_box(loaded.rgb, box, loaded.bounds)
        valid = mask > INVALID + 0.5
        np.clip(mask, 0.0, 1.0, out=mask, where=valid)  # float rounding may give 1.0000001
        if self.plan.binary:
            mask = threshold_mask(mask, self.plan.threshold)
        return mask, tiles

    def save(self, loaded: LoadedMap, mask: np.ndarray) -> Path:
        """Quicklook and copies first, the mask last; on failure nothing of this map is left."""
        from .netcdf import write_mask

        plan, job = self.plan, loaded.job
        out = plan.output_path(job)
        written: list[Path] = []
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            written += self._extras(
                job, loaded.rgb, mask, out, notes=loaded.notes, caption=quicklook_caption(job.name, loaded.entry)
            )
            write_mask(out, mask, mask_attributes(loaded, plan, self.model.sha256), binary=plan.binary)
        except BaseException as exc:
            for path in written:
                path.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno in FULL_DISK_ERRNOS:
                self.state.halt(f"{plan.out}: {os.strerror(exc.errno)}: the run stopped; free space and run again")
            raise
        for other in plan.other_output_paths(job):  # one mask per map, whatever the suffix
            try:
                if other.exists():
                    other.unlink()
                    loaded.notes.append(f"replaced {other.name}, its mask under the other suffix")
            except OSError as exc:
                loaded.notes.append(f"{other}: cannot remove this older mask ({exc.strerror or exc})")
        return out

    def saved(self, loaded: LoadedMap, mask: np.ndarray) -> None:
        """Called by the executors in the calling thread once a map's result is reported."""
        if self.on_mask is not None:
            self.on_mask(loaded.job, loaded.rgb, mask)

    def _extras(
        self,
        job: MapJob,
        rgb: np.ndarray | None,
        mask: np.ndarray,
        out: Path,
        only_missing: bool = False,
        caption: str | None = None,
        notes: list[str] | None = None,
    ) -> list[Path]:
        """The quicklook and copies; returns the files made for this map alone (removed again
        if the map fails: a merged ``_ls.txt`` is shared by its subphase and stays)."""
        written: list[Path] = []
        if self.plan.quicklook and not (only_missing and quicklook_path(out).exists()):
            written.append(quicklook_writer()(quicklook_path(out), rgb, mask, self.plan.threshold, caption))
        if self.plan.copy_maps:
            for src, dst in copy_paths(job, self.plan):
                if src == job.ls_file:
                    if copy_ls_table(src, dst, notes if notes is not None else []):
                        written.append(dst)
                elif not (only_missing and dst.exists()):
                    written.append(copy_atomic(src, dst))
        return written

    def extras(self, job: MapJob, mask_path: Path | None = None, notes: list[str] | None = None) -> list[Path]:
        """The quicklook / copies asked for now, from the existing mask (no prediction):
        ``mask_path``, else the plan's output path."""
        from .netcdf import read_mask, read_time_coords

        out = mask_path or self.plan.output_path(job)
        mask = read_mask(out)
        rgb = read_map(job.path) if self.plan.quicklook else None
        coords = read_time_coords(out)
        caption = quicklook_caption(job.name, coords.ls, coords.mars_year)
        return self._extras(job, rgb, mask, out, only_missing=True, notes=notes, caption=caption)

    # -- results
    def done(self, item: WorkItem, loaded: LoadedMap, tiles: TilePlan | None, timings: dict[str, float]) -> MapResult:
        e, b = loaded.entry, loaded.bounds
        notes = ([item.note] if item.note else []) + loaded.notes
        return result_for(
            item.job,
            self.plan,
            "done",
            ls=e.ls if e else None,
            mars_year=e.mars_year if e else None,
            bounds=b.as_tuple() if b else None,
            tile_out=tiles.tile_out if tiles else None,
            n_tiles=tiles.n_tiles if tiles else None,
            timings=timings,
            notes=notes,
            background=loaded.background,
        )

    def failed(self, item: WorkItem, exc: BaseException, timings: dict[str, float]) -> MapResult:
        return result_for(item.job, self.plan, "failed", reason=failure_reason(item.job, exc), timings=timings)

    def run_extras(self, item: WorkItem) -> MapResult:
        t = time.perf_counter()
        notes = [item.note] if item.note else []
        try:
            self.extras(item.job, item.mask, notes)
        except Exception as exc:
            return self.failed(item, exc, {"extras_s": time.perf_counter() - t})
        return result_for(item.job, self.plan, "done", timings={"extras_s": time.perf_counter() - t}, notes=notes)

    def run_item(self, item: WorkItem) -> MapResult:
        """Everything for one item, in this thread; never raises for a bad map."""
        return self.run_item_with_mask(item)[0]

    def run_item_with_mask(self, item: WorkItem) -> tuple[MapResult, tuple[LoadedMap, np.ndarray] | None]:
        """:meth:`run_item`, and the map and mask written (for :meth:`saved`), if any."""
        if item.kind == "extras":
            return self.run_extras(item), None
        timings: dict[str, float] = {}
        try:
            t0 = time.perf_counter()
            loaded = self.load(item.job)
            t1 = time.perf_counter()
            timings["read_s"] = t1 - t0
            mask, tiles = self.predict(loaded)
            t2 = time.perf_counter()
            timings["predict_s"] = t2 - t1
            self.save(loaded, mask)
            timings["write_s"] = time.perf_counter() - t2
        except Exception as exc:  # one bad map never stops a run
            return self.failed(item, exc, timings), None
        return self.done(item, loaded, tiles, timings), (loaded, mask)


# --------------------------------------------------------------------------- executors
Finish = Callable[[int, MapResult], None]


class Executor(Protocol):
    """Runs work items through the stages, calling ``finish(index, result)`` in the calling
    thread as each ends; stops starting new items once ``stages.state.stop`` is set."""

    name: str

    def run(self, stages: Stages, items: Sequence[WorkItem], finish: Finish) -> None: ...


class SequentialExecutor:
    """One map after another in the calling thread (cm-bench's staged timings)."""

    name = "sequential"

    def run(self, stages: Stages, items: Sequence[WorkItem], finish: Finish) -> None:
        for item in stages.composite_pass(items, finish):
            if stages.state.stop.is_set():
                return
            with stages.state.critical():  # a signal stops the run after the map in hand is counted
                result, written = stages.run_item_with_mask(item)
                finish(item.index, result)
            if written is not None:
                stages.saved(*written)


class ThreadedExecutor:
    """A reader thread decodes the next maps, the calling thread runs the model, a writer thread
    saves (onnxruntime, Numba, the JPEG decoder and zlib release the GIL).

    ``prefetch``: maps decoded ahead and masks waiting to be written.  On an interrupt the
    masks already predicted are still written and reported (the writes are short).
    """

    name = "threads"

    def __init__(self, prefetch: int = 1):
        self.prefetch = max(1, prefetch)

    def run(self, stages: Stages, items: Sequence[WorkItem], finish: Finish) -> None:
        stop = stages.state.stop
        items = stages.composite_pass(items, finish)  # the composites first, one at a time
        loaded_q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        quit_reader = threading.Event()

        def reader() -> None:
            for item in items:
                if stop.is_set() or quit_reader.is_set():
                    break
                t = time.perf_counter()
                payload: Any
                try:
                    payload = stages.load(item.job) if item.kind == "map" else None
                except Exception as exc:
                    payload = exc
                loaded_q.put((item, payload, time.perf_counter() - t))
            loaded_q.put(None)

        read_thread = threading.Thread(target=reader, name="cm-infer-reader", daemon=True)
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cm-infer-writer")
        pending: deque[tuple[WorkItem, Any, Any, Future, dict[str, float], Any]] = deque()

        def settle(block: bool) -> None:
            while pending and (block or pending[0][3].done() or len(pending) > self.prefetch):
                wait(pending[0][3:4])  # a signal here leaves the item pending for the final settle
                with stages.state.critical():  # taken off the queue and counted, or neither
                    item, loaded, tiles, fut, timings, mask = pending.popleft()
                    try:
                        out = fut.result()
                    except Exception as exc:
                        finish(item.index, stages.failed(item, exc, timings))
                    else:
                        if isinstance(out, MapResult):
                            finish(item.index, out)
                        else:
                            timings["write_s"] = out
                            finish(item.index, stages.done(item, loaded, tiles, timings))
                            stages.saved(loaded, mask)

        def timed_save(loaded: LoadedMap, mask: np.ndarray) -> float:
            t = time.perf_counter()
            stages.save(loaded, mask)
            return time.perf_counter() - t

        read_thread.start()
        try:
            while (got := loaded_q.get()) is not None:
                item, payload, read_s = got
                if stop.is_set():
                    break
                if item.kind == "extras":
                    pending.append((item, None, None, writer.submit(stages.run_extras, item), {}, None))
                    settle(block=False)
                    continue
                if isinstance(payload, BaseException):
                    finish(item.index, stages.failed(item, payload, {"read_s": read_s}))
                    continue
                t = time.perf_counter()
                try:
                    mask, tiles = stages.predict(payload)
                except Exception as exc:
                    finish(item.index, stages.failed(item, exc, {"read_s": read_s}))
                    continue
                timings = {"read_s": read_s, "predict_s": time.perf_counter() - t}
                pending.append((item, payload, tiles, writer.submit(timed_save, payload, mask), timings, mask))
                settle(block=False)
        finally:
            quit_reader.set()
            while read_thread.is_alive():  # unblock the reader so it sees the flag
                try:
                    loaded_q.get(timeout=0.05)
                except queue.Empty:
                    pass
            try:
                settle(block=True)  # masks already predicted are written and reported
            finally:
                writer.shutdown(wait=True)


EXECUTORS: dict[str, Callable[[], Executor]] = {"sequential": SequentialExecutor, "threads": ThreadedExecutor}


# --------------------------------------------------------------------------- signals
class _SignalGuard:
    """Turns SIGINT and SIGTERM into :class:`_Signalled` in the main thread while a run is on
    (nothing is installed outside the main thread)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.received: int | None = None
        self.holding = 0
        self.deferred: int | None = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.received is None:
            self.received = signum
            if self.holding:
                self.deferred = signum  # raised when the held section ends
            else:
                raise _Signalled(signum)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Defer a signal that arrives inside this section to its end (sections are short)."""
        self.holding += 1
        try:
            yield
        finally:
            self.holding -= 1
            if not self.holding and self.deferred is not None:
                signum, self.deferred = self.deferred, None
                raise _Signalled(signum)

    def __enter__(self) -> "_SignalGuard":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handler)
        return self

    def mask(self) -> None:
        """Ignore further signals while the record is written."""
        for sig in self.previous:
            signal.signal(sig, signal.SIG_IGN)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# --------------------------------------------------------------------------- a whole run
def run(
    jobs: Sequence[MapJob],
    model: CloudModel,
    options: InferOptions | RunPlan,
    *,
    executor: Executor | None = None,
    on_result: Callable[[MapResult], None] | None = None,
    on_mask: MaskHook | None = None,
    predict_fn: PredictHook | None = None,
    roots: Sequence[str | Path] = (),
    input_errors: Sequence[str] = (),
    write_record: bool = True,
    record_extra: Callable[[dict[str, Any]], None] | None = None,
) -> RunReport:
    """Process every job; the one entry point every executor goes through.

    ``on_result`` is called in the calling thread as each map finishes (skipped ones first).
    ``input_errors``: one-line errors met while finding the maps, recorded as failures.
    ``record_extra(record)`` may add executor facts to the record before it is written.

    Returns a :class:`RunReport` (results in job order).

    Raises:
        PlanError: a bad option (or ``--background`` with maps of several folders).  OutputError:
        ``OUT`` not writable, or ``--quicklook`` without its module.  RunInterrupted: SIGINT or
        SIGTERM; its ``report`` holds what was finished, and the run record was written.
    """
    from . import records, stitch

    plan = as_plan(options, model)
    check_jobs(plan, jobs)
    executor = executor or ThreadedExecutor()
    started = datetime.now(timezone.utc)
    if plan.run_id is None:
        plan = dataclasses.replace(plan, run_id=records.new_run_id(started))
    t_start = time.perf_counter()
    ensure_output_root(plan.out)
    if plan.quicklook:
        quicklook_writer()
    t0 = time.perf_counter()
    stitch.warm_up([plan.stitch])  # JIT (or cache load) once, outside per-map timings; seamless needs none
    warmup_s = time.perf_counter() - t0

    state = RunState()
    stages = Stages(model, plan, on_mask=on_mask, predict_fn=predict_fn, state=state)
    results: dict[int, MapResult] = {}

    def finish(i: int, r: MapResult) -> None:
        results[i] = r
        if on_result is not None:
            on_result(r)

    items: list[WorkItem] = []
    interrupted: int | None = None
    with _SignalGuard() as guard:
        state.critical = guard.held
        try:
            records.remove_stale_record_temporaries(plan.out)
            # every map's, skipped ones' too; each folder listed once
            remove_stale_temporaries_of_many(t for job in jobs for t in output_targets(job, plan))
            for i, job in enumerate(jobs):
                got = triage(i, job, plan)
                if isinstance(got, MapResult):
                    finish(i, got)
                else:
                    items.append(got)
            executor.run(stages, items, finish)
        except (_Signalled, KeyboardInterrupt) as exc:
            interrupted = exc.signum if isinstance(exc, _Signalled) else signal.SIGINT
            state.stop.set()
        finally:
            guard.mask()
            ordered = [results[i] for i in sorted(results)]
            not_processed = sum(1 for it in items if it.index not in results)
            report = RunReport(
                ordered,
                {},
                None,
                [shown(e) for e in input_errors],
                notes=[shown(n) for n in shared_ls_tables(jobs, plan) + kept_lines(ordered)],
                not_processed=not_processed,
                halted=state.halted,
                interrupted=signal.Signals(interrupted).name if interrupted else None,
                composites=list(stages.composites),
            )
            report.record = records.run_record(
                report,
                jobs,
                model,
                plan,
                executor=executor.name,
                started=started,
                wall_s=time.perf_counter() - t_start,
                warmup_s=warmup_s,
                roots=roots,
            )
            if record_extra is not None:
                record_extra(report.record)
            if write_record:
                try:
                    repaired: list[str] = []
                    report.record_path = records.write_records(plan.out, report.record, notes=repaired)
                    report.notes += [shown(n) for n in repaired]
                except OSError as exc:
                    report.record_error = f"{plan.out}: cannot write the run record ({exc.strerror or exc})"
    if interrupted:
        raise RunInterrupted(interrupted, report)
    return report


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def roots_outside(roots: Sequence[str | Path], out: str | Path) -> list[str | Path]:
    """``roots`` with ``out`` left out of the scan: a root holding ``out`` is replaced by its
    entries other than the branch of ``out`` (down to ``out`` itself), so a run whose ``OUT`` is
    inside its input tree never reads its own map copies back as input.  The entries are
    those the folder walk of :func:`.maps.find_jobs` would visit (not hidden, not ``list/`` or
    ``cloudmasks/``, ``mdgms/`` only without maps or ``cloudmasks/`` beside it)."""
    from .maps import COPY_FOLDER, MAP_SUFFIXES, SKIPPED_FOLDERS

    target = Path(os.path.realpath(out))
    result: list[str | Path] = []
    for root in roots:
        real = Path(os.path.realpath(root))
        if real == target:
            continue  # OUT itself given as input: nothing of it is input
        if not (real.is_dir() and _inside(target, real)):
            result.append(root)
            continue
        folder = Path(os.path.abspath(root))
        while True:
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                result.append(folder)  # find_jobs names the unreadable folder
                break
            maps_beside = any(e.suffix.lower() in MAP_SUFFIXES and e.is_file() for e in entries)
            copies_skipped = maps_beside or any(e.name == "cloudmasks" and e.is_dir() for e in entries)
            branch = None
            for e in entries:
                if e.name.startswith(".") or (e.is_dir() and e.name in SKIPPED_FOLDERS):
                    continue
                if e.is_dir() and e.name == COPY_FOLDER and copies_skipped:
                    continue
                if e.is_dir() and _inside(target, Path(os.path.realpath(e))):
                    branch = e
                elif e.is_dir() or e.suffix.lower() in MAP_SUFFIXES:
                    result.append(e)
            if branch is None or Path(os.path.realpath(branch)) == target:
                break
            folder = branch
    return result


def find_run_jobs(roots: Sequence[str | Path], out: str | Path) -> tuple[list[MapJob], list[str]]:
    """:func:`.maps.find_jobs` of ``roots`` with ``out`` left out of the scan (:func:`roots_outside`)."""
    from .maps import find_jobs

    return find_jobs(roots_outside(roots, out))


def run_folder(
    *roots: str | Path,
    out: str | Path,
    model: CloudModel | str | Path | None = None,
    provider: str = "auto",
    threads: int | None = None,
    **options: Any,
) -> RunReport:
    """Find every map under ``roots`` and process it: the Python twin of ``cm-infer``.

    ``model``: a loaded model, a path, or None for the shipped default; ``options``: fields
    of :class:`~mars_cloudmask.infer.plan.InferOptions` (``stitch="center"``, ``binary=True`` ...).
    """
    from .runtime import load_model

    if not isinstance(model, CloudModel):
        model = load_model(model, provider=provider, threads=threads)
    jobs, errors = find_run_jobs(roots, out)
    return run(jobs, model, InferOptions(out=Path(out), **options), roots=roots, input_errors=errors)
