"""The stage runner (:class:`Stages`): for one map, ``load`` (the ``_ls.txt`` row, the JPEG, the
box, and for a model with extra channels its input), ``predict`` (tiles, model, stitching) and
``save`` (quicklook, map copies, then the mask last); and the composite pass of a model whose
channels need a background.  Each stage is timed and turns its exception into the map's result.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from pathlib import Path
from typing import Callable, ContextManager, Sequence

import numpy as np

from .channels import model_input, parse_spec
from .composites import CACHE, CompositeResult, composite_tasks, prepare_composite, source_folder
from .copies import copy_atomic, copy_ls_table
from .geometry import DEFAULT_POLAR_OFFSET, INVALID, MAP_HEIGHT, MAP_WIDTH, TilePlan
from .layout import copy_paths, quicklook_path
from .maps import LsEntry, MapError, MapJob, ls_entry, read_map
from .plan import RunPlan
from .predict import check_map, map_bounds, place_box, plan_for, predict_box, threshold_mask
from .provenance import mask_attributes
from .results import LoadedMap, MapResult, OutputError, WorkItem, failure_reason, result_for
from .runtime import CloudModel

MaskHook = Callable[[MapJob, np.ndarray, np.ndarray], None]
"""``on_mask(job, rgb, mask)``: called after each mask is written (mask as written, north-up)."""

PredictHook = Callable[[CloudModel, "LoadedMap", RunPlan], "tuple[np.ndarray, TilePlan | None]"]
"""A replacement predict stage (cm-bench's reference stitchings): returns the mask and plan."""

FULL_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


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


def quicklook_writer() -> Callable[..., Path]:
    """``save_quicklook(png_path, rgb, mask, threshold)``; OutputError when unavailable."""
    try:
        from .quicklook import save_quicklook
    except ImportError as exc:
        raise OutputError(f"--quicklook needs mars_cloudmask.infer.quicklook ({exc})") from None
    return save_quicklook


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
    notes += content_notes(rgb, box is None or bounds is not None)
    return LoadedMap(job, rgb, entry, box, notes)


NO_DATA_NOTE = "no data pixel (an all-black map): its mask is all invalid (-999)"
SATURATED_NOTE = "every pixel is white (a saturated or blank map): its mask is cloud wherever valid; check the map"


def content_notes(rgb: np.ndarray, check_data: bool) -> list[str]:
    """Notes on a map whose content makes its mask meaningless: no data pixel at all (with
    ``check_data``: the Ls box was not found, or ``--bounds`` skipped the search), or every
    pixel white (uint8 RGB, north-up)."""
    from .geometry import data_columns

    if check_data and data_columns(rgb) is None:
        return [NO_DATA_NOTE]
    if int(rgb.min()) >= 250:
        return [SATURATED_NOTE]
    return []


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


Finish = Callable[[int, MapResult], None]
