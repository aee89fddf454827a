"""Running a whole set of maps: read, predict, write NetCDF, with I/O overlapped with inference.

Per map (:func:`process_job`, also what a Dask worker calls): skip if the output exists
(unless ``overwrite``), read the Ls row and the JPEG (:func:`load_job`), predict
(:func:`infer_loaded`), write ``OUT/<phase>/<subphase>/cloudmasks/cloudmask_<name>.ncdf``
atomically with CF attributes (:func:`save_result`).  Any error of one map becomes a one-line
reason in its :class:`MapResult`; the run goes on.

A whole run (:func:`run_jobs`): a reader thread decodes the next maps into a small queue, the
calling thread runs the model, a writer thread compresses and writes finished masks
(onnxruntime, Numba, Pillow's decoder and zlib release the GIL), and a run record
``OUT/cm-infer-run.json`` is written at the end.

Example::

    from mars_cloudmask.infer.maps import find_maps
    from mars_cloudmask.infer.runtime import load_model
    from mars_cloudmask.infer.pipeline import InferOptions, run_jobs

    report = run_jobs(find_maps("data/P"), load_model("m.onnx"), InferOptions(out=Path("out")))
    print(report.counts())
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .atomic import atomic_path, write_text_atomic
from .geometry import DEFAULT_POLAR_OFFSET, INVALID, MAP_HEIGHT, MAP_WIDTH, Bounds, TilePlan
from .maps import LsEntry, MapError, MapJob, read_ls_table, read_map
from .predict import as_bounds, check_map, map_bounds, place_box, plan_for, predict_box, threshold_mask
from .runtime import CloudModel
from .stitch import plan_mode

RUN_RECORD = "cm-infer-run.json"

MaskHook = Callable[[MapJob, np.ndarray, np.ndarray], None]
"""``on_mask(job, rgb, mask)``: called after each mask is written (mask as written, north-up)."""


class OutputError(RuntimeError):
    """The output folder cannot be created or written; the message names it."""


@dataclass(frozen=True)
class InferOptions:
    """How to process maps (picklable: sent to Dask workers as is).

    ``bounds``: ``(xmin, xmax, ymin, ymax)`` for every map instead of Ls-derived bounds.
    ``threshold``, ``polar_offset``: None = the model's metadata (:func:`with_model_defaults`).  ``tile_out``: None = the stitch mode's default.
    """

    out: Path
    binary: bool = False
    bounds: tuple[int, int, int, int] | None = None
    polar_offset: float | None = None
    stitch: str = "seamless"
    batch_size: int = 1
    tile_out: int | None = None
    threshold: float | None = None
    overwrite: bool = False
    copy_maps: bool = False
    quicklook: bool = False

    def __post_init__(self) -> None:
        plan_mode(self.stitch)  # validates the name
        if self.bounds is not None:
            as_bounds(self.bounds)  # validates the box
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")


@dataclass
class MapResult:
    """What happened to one map: ``status`` is ``done``, ``skipped`` or ``failed``."""

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


@dataclass
class LoadedMap:
    """A decoded map ready for the model."""

    job: MapJob
    rgb: np.ndarray
    entry: LsEntry | None
    bounds: Bounds | None  # None: no data pixel at all (the mask is all -999)


# --------------------------------------------------------------------------- stages
def output_path(job: MapJob, options: InferOptions) -> Path:
    """``OUT/<phase>/<subphase>/cloudmasks/cloudmask_<name>.ncdf``."""
    return Path(options.out) / job.relative_output()


def ls_entry(job: MapJob) -> LsEntry:
    """The map's row of its subphase's ``_ls.txt``; MapError naming the file when absent."""
    if job.ls_file is None:
        raise MapError(f"{job.path}: no _ls.txt in {job.path.parent} (give --bounds to run without Ls)")
    table = read_ls_table(job.ls_file)
    if job.name not in table:
        raise MapError(f"{job.path}: no row for {job.name} in {job.ls_file}")
    return table[job.name]


def load_job(job: MapJob, options: InferOptions) -> LoadedMap:
    """Read the Ls row (unless ``options.bounds``) and decode the map; compute its box."""
    entry: LsEntry | None
    if options.bounds is None:
        entry = ls_entry(job)
    else:
        try:
            entry = ls_entry(job)
        except MapError:
            entry = None  # Ls is only an attribute when the box is given
    rgb = read_map(job.path)
    ls = entry.ls if entry is not None else None
    offset = DEFAULT_POLAR_OFFSET if options.polar_offset is None else options.polar_offset
    box = map_bounds(rgb, ls, options.bounds, offset)
    return LoadedMap(job, rgb, entry, box)


def infer_loaded(model: CloudModel, loaded: LoadedMap, options: InferOptions) -> tuple[np.ndarray, TilePlan | None]:
    """The mask to write: float32 (1801, 3600) north-up, probability or 0/1, -999 invalid;
    and the tile plan used (None for a map without data)."""
    check_map(loaded.rgb)
    if loaded.bounds is None:
        return np.full((MAP_HEIGHT, MAP_WIDTH), INVALID, np.float32), None
    plan = plan_for(model, loaded.bounds, options.stitch, options.tile_out)
    prob = place_box(loaded.rgb, predict_box(model, loaded.rgb, plan, options.stitch, options.batch_size), loaded.bounds)
    return (threshold_mask(prob, threshold_of(model, options)) if options.binary else prob), plan


def with_model_defaults(options: InferOptions, model: CloudModel) -> InferOptions:
    """``options`` with the polar offset the model was validated with when none is given."""
    if options.polar_offset is not None:
        return options
    return replace(options, polar_offset=model.info.polar_offset)


def threshold_of(model: CloudModel, options: InferOptions) -> float:
    """The cloud threshold in use: the option, else the model's metadata."""
    return options.threshold if options.threshold is not None else model.info.threshold


def mask_attributes(loaded: LoadedMap, model: CloudModel, options: InferOptions) -> dict[str, Any]:
    """Global attributes of a mask file (CF ``Conventions`` is added by the writer)."""
    from . import __version__

    job, entry, box = loaded.job, loaded.entry, loaded.bounds
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "title": f"Water-ice cloud {'mask' if options.binary else 'probability'} of MARCI MDGM {job.name}",
        "source": f"U-Net cloud mask (cloudmask {__version__}) of a MARCI Mars Daily Global Map",
        "source_map": job.path.name,
        "map_name": job.name,
        "phase": job.phase,
        "subphase": job.subphase,
        "solar_longitude": entry.ls if entry else None,
        "solar_longitude_units": "degree",
        "mars_year": entry.mars_year if entry else None,
        "model_name": model.info.name,
        "model_version": model.info.version,
        "model_sha256": model.sha256,
        "threshold": threshold_of(model, options),
        "output_type": "binary" if options.binary else "probability",
        "stitch_mode": options.stitch,
        "polar_offset_deg": options.polar_offset,
        "bounds_source": "--bounds" if options.bounds is not None else "Ls",
        "bounds_xmin_xmax_ymin_ymax": list(box.as_tuple()) if box else None,
        "bounds_convention": "north-up JPEG pixel indices, exclusive max",
        "history": f"{now} cm-infer {__version__}: {job.path.name} -> cloudmask_{job.name}.ncdf",
    }


def copy_atomic(src: Path, dst: Path) -> Path:
    """Copy ``src`` to ``dst`` through a temporary file in the same folder (no partial copies)."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def quicklook_writer() -> Callable[..., Path]:
    """``save_quicklook(png_path, rgb, mask, threshold)`` from ``infer/quicklook.py``.

    Raises:
        OutputError: the quicklook module is not installed.
    """
    try:
        from .quicklook import save_quicklook
    except ImportError as exc:
        raise OutputError(f"--quicklook needs mars_cloudmask.infer.quicklook ({exc})") from None
    return save_quicklook


def save_result(
    loaded: LoadedMap, mask: np.ndarray, model: CloudModel, options: InferOptions, on_mask: MaskHook | None = None
) -> Path:
    """Write the mask NetCDF (atomic), and the map copies and quicklook when asked; returns the .ncdf."""
    from .netcdf import write_mask

    job = loaded.job
    path = write_mask(output_path(job, options), mask, mask_attributes(loaded, model, options), binary=options.binary)
    if options.copy_maps:
        sub = Path(options.out) / job.phase / job.subphase
        copy_atomic(job.path, sub / "mdgms" / job.path.name)
        if job.ls_file is not None:
            copy_atomic(job.ls_file, sub / job.ls_file.name)
    if options.quicklook:
        quicklook_writer()(path.with_suffix(".png"), loaded.rgb, mask, threshold_of(model, options))
    if on_mask is not None:
        on_mask(job, loaded.rgb, mask)
    return path


def failure_reason(job: MapJob, exc: BaseException) -> str:
    """One line naming the file and the reason."""
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, MapError) or str(job.path) in msg:
        return msg
    return f"{job.path}: {msg}"


def _result(job: MapJob, options: InferOptions, status: str, **kw: Any) -> MapResult:
    return MapResult(job.name, str(job.path), str(output_path(job, options)), status, **kw)


def _done(loaded: LoadedMap, options: InferOptions, timings: dict[str, float], plan: TilePlan | None) -> MapResult:
    e, b = loaded.entry, loaded.bounds
    return _result(
        loaded.job, options, "done", ls=e.ls if e else None, mars_year=e.mars_year if e else None,
        bounds=b.as_tuple() if b else None, tile_out=plan.tile_out if plan else None,
        n_tiles=plan.n_tiles if plan else None, timings=timings,
    )


def remove_stale_temporaries(job: MapJob, options: InferOptions) -> list[Path]:
    """Delete temporary files a killed run or worker left beside this map's outputs; returns them.

    Atomic writes use hidden names ``.<final name>.<random>.tmp*`` in the output's folder:
    ``.cloudmask_<name>.ncdf.*`` and ``.cloudmask_<name>.png.*`` (and ``.<map file>.*`` in
    ``mdgms/`` with ``copy_maps``).  Only the run processing this map writes them, so any
    found before it starts are left over from a dead attempt.
    """
    out = output_path(job, options)
    spots = [(out.parent, f".{out.stem}.")]
    if options.copy_maps:
        spots.append((out.parent.parent / "mdgms", f".{job.path.name}."))
    removed = []
    for folder, prefix in spots:
        if folder.is_dir():
            for tmp in folder.glob(prefix + "*"):
                if ".tmp" in tmp.name[len(prefix) :]:
                    tmp.unlink(missing_ok=True)
                    removed.append(tmp)
    return removed


def process_job(job: MapJob, model: CloudModel, options: InferOptions, on_mask: MaskHook | None = None) -> MapResult:
    """Everything for one map, sequentially; never raises for a bad map (status ``failed``)."""
    options = with_model_defaults(options, model)
    if not options.overwrite and output_path(job, options).exists():
        return _result(job, options, "skipped", reason="output exists")
    remove_stale_temporaries(job, options)
    timings: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        loaded = load_job(job, options)
        t1 = time.perf_counter()
        mask, plan = infer_loaded(model, loaded, options)
        t2 = time.perf_counter()
        save_result(loaded, mask, model, options, on_mask)
        timings = {"read_s": t1 - t0, "predict_s": t2 - t1, "write_s": time.perf_counter() - t2}
    except Exception as exc:  # one bad map never stops a run
        return _result(job, options, "failed", reason=failure_reason(job, exc), timings=timings)
    return _done(loaded, options, timings, plan)


# --------------------------------------------------------------------------- a whole run
@dataclass
class RunReport:
    """Results of a run, in job order, plus the run-level facts written to the run record."""

    results: list[MapResult]
    record: dict[str, Any]
    record_path: Path | None
    input_errors: list[str] = field(default_factory=list)

    def by_status(self, status: str) -> list[MapResult]:
        return [r for r in self.results if r.status == status]

    def counts(self) -> dict[str, int]:
        return {s: len(self.by_status(s)) for s in ("done", "skipped", "failed")}

    @property
    def ok(self) -> bool:
        """True when no map failed and every input was found."""
        return not self.by_status("failed") and not self.input_errors


def ensure_output_root(out: Path) -> Path:
    """Create ``out`` if needed and check it is writable.

    Raises:
        OutputError: one line naming the folder and the reason.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".cm-infer-write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{out}: output folder is not writable ({exc.strerror or exc})") from None
    return out


def write_json_atomic(path: Path, data: dict[str, Any]) -> Path:
    """Write JSON through a temporary file in the same folder, then rename."""
    return write_text_atomic(path, json.dumps(data, indent=2, default=str))


def _stage_totals(results: Sequence[MapResult]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for r in results:
        for k, v in r.timings.items():
            totals[k] = totals.get(k, 0.0) + v
    return totals


def split_existing(
    jobs: Sequence[MapJob], options: InferOptions, skip: Callable[[int, MapResult], None]
) -> list[tuple[int, MapJob]]:
    """``(index, job)`` of the jobs to run; ``skip(index, result)`` is called for the others
    (their output exists and ``options.overwrite`` is off): how a rerun resumes."""
    todo: list[tuple[int, MapJob]] = []
    for i, job in enumerate(jobs):
        if not options.overwrite and output_path(job, options).exists():
            skip(i, _result(job, options, "skipped", reason="output exists"))
        else:
            todo.append((i, job))
    return todo


def run_record(
    ordered: Sequence[MapResult],
    jobs: Sequence[MapJob],
    model: CloudModel,
    options: InferOptions,
    *,
    started: datetime,
    wall_s: float,
    warmup_s: float,
    interrupted: bool = False,
    roots: Sequence[str | Path] = (),
    input_errors: Sequence[str] = (),
) -> dict[str, Any]:
    """The run record (``OUT/cm-infer-run.json``) of finished results in job order.

    Shared by :func:`run_jobs` and the Dask runner (``cluster.run_on_dask``).
    """
    from .doctor import versions

    return {
        "tool": "cm-infer",
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "interrupted": interrupted,
        "command": sys.argv,
        "inputs": [str(r) for r in roots] or sorted({str(j.path.parent) for j in jobs}),
        "out": str(options.out),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "threshold": threshold_of(model, options),
        "model": model.describe(),
        "provider": model.provider,
        "versions": versions(),
        "counts": {s: sum(r.status == s for r in ordered) for s in ("done", "skipped", "failed")},
        "outputs": [r.output for r in ordered if r.status == "done"],
        "skipped": [{"source": r.source, "output": r.output, "reason": r.reason} for r in ordered if r.status == "skipped"],
        "failures": [{"source": None, "reason": e} for e in input_errors]
        + [{"source": r.source, "reason": r.reason} for r in ordered if r.status == "failed"],
        "timings": {
            "wall_s": wall_s,
            "jit_warmup_s": warmup_s,
            "stage_totals_s": _stage_totals(ordered),
            "maps_per_s": (sum(r.status == "done" for r in ordered) / wall_s) if wall_s > 0 else None,
        },
        "maps": [asdict(r) for r in ordered],
    }


def run_jobs(
    jobs: Sequence[MapJob],
    model: CloudModel,
    options: InferOptions,
    *,
    on_result: Callable[[MapResult], None] | None = None,
    on_mask: MaskHook | None = None,
    prefetch: int = 1,
    roots: Sequence[str | Path] = (),
    input_errors: Sequence[str] = (),
    write_record: bool = True,
) -> RunReport:
    """Process every job with decoding and writing overlapped with inference.

    ``on_result`` is called (in the calling thread) as each map finishes, in no fixed order.
    ``input_errors``: one-line errors met while finding the maps (missing roots...), recorded
    as failures of the run.  Returns a :class:`RunReport`; results are in job order.

    Raises:
        OutputError: ``options.out`` is not writable, or ``--quicklook`` without its module.
    """
    from . import stitch

    options = with_model_defaults(options, model)
    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    ensure_output_root(options.out)
    if options.quicklook:
        quicklook_writer()
    t0 = time.perf_counter()
    stitch.warm_up()  # JIT (or cache load) once, outside per-map timings
    warmup_s = time.perf_counter() - t0

    results: dict[int, MapResult] = {}

    def finish(i: int, r: MapResult) -> None:
        results[i] = r
        if on_result is not None:
            on_result(r)

    todo = split_existing(jobs, options, finish)
    for _, job in todo:
        remove_stale_temporaries(job, options)

    loaded_q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()

    def reader() -> None:
        for i, job in todo:
            if stop.is_set():
                break
            t = time.perf_counter()
            try:
                item: Any = load_job(job, options)
            except Exception as exc:
                item = exc
            loaded_q.put((i, job, item, time.perf_counter() - t))
        loaded_q.put(None)

    read_thread = threading.Thread(target=reader, name="cm-infer-reader", daemon=True)
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cm-infer-writer")
    pending: deque[tuple[int, MapJob, LoadedMap, TilePlan | None, Future, dict[str, float]]] = deque()

    def settle(block: bool) -> None:
        while pending and (block or pending[0][4].done() or len(pending) > prefetch):
            i, job, loaded, plan, fut, timings = pending.popleft()
            try:
                timings["write_s"] = fut.result()
            except Exception as exc:
                finish(i, _result(job, options, "failed", reason=failure_reason(job, exc), timings=timings))
            else:
                finish(i, _done(loaded, options, timings, plan))

    def timed_save(loaded: LoadedMap, mask: np.ndarray) -> float:
        t = time.perf_counter()
        save_result(loaded, mask, model, options, on_mask)
        return time.perf_counter() - t

    interrupted = False
    read_thread.start()
    try:
        while (got := loaded_q.get()) is not None:
            i, job, item, read_s = got
            if isinstance(item, BaseException):
                finish(i, _result(job, options, "failed", reason=failure_reason(job, item), timings={"read_s": read_s}))
                continue
            t = time.perf_counter()
            try:
                mask, plan = infer_loaded(model, item, options)
            except Exception as exc:
                finish(i, _result(job, options, "failed", reason=failure_reason(job, exc), timings={"read_s": read_s}))
                continue
            timings = {"read_s": read_s, "predict_s": time.perf_counter() - t}
            pending.append((i, job, item, plan, writer.submit(timed_save, item, mask), timings))
            settle(block=False)
        settle(block=True)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        stop.set()
        while read_thread.is_alive():  # unblock the reader so it can see `stop`
            try:
                loaded_q.get(timeout=0.1)
            except queue.Empty:
                pass
        writer.shutdown(wait=True)
        ordered = [results[i] for i in sorted(results)]
        record = run_record(
            ordered, jobs, model, options, started=started, wall_s=time.perf_counter() - t_start,
            warmup_s=warmup_s, interrupted=interrupted, roots=roots, input_errors=input_errors,
        )
        record_path = write_json_atomic(Path(options.out) / RUN_RECORD, record) if write_record else None
    return RunReport(ordered, record, record_path, list(input_errors))


def find_jobs(roots: Sequence[str | Path]) -> tuple[list[MapJob], list[str]]:
    """Maps under every root, and one-line errors for roots that cannot be searched."""
    from .maps import find_maps

    jobs: dict[Path, MapJob] = {}
    errors: list[str] = []
    for root in roots:
        try:
            for job in find_maps(root):
                jobs[job.path] = job
        except MapError as exc:
            errors.append(str(exc))
    ordered = sorted(jobs.values(), key=lambda j: (j.phase, j.subphase, j.name, str(j.path)))
    return ordered, errors


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
    of :class:`InferOptions` (``stitch="center"``, ``binary=True`` ...).
    """
    from .runtime import load_model

    if not isinstance(model, CloudModel):
        model = load_model(model, provider=provider, threads=threads)
    jobs, errors = find_jobs(roots)
    opts = InferOptions(out=Path(out), **options)
    return run_jobs(jobs, model, opts, roots=roots, input_errors=errors)
