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
cleanup and the record (:mod:`.executors`):

* :class:`SequentialExecutor`: one map after another (cm-bench's staged timing);
* :class:`ThreadedExecutor`: decoding and writing overlapped with inference (the default);
* ``cluster.DaskExecutor``: one task per map on a Dask cluster.

This module only orchestrates; the pieces live in their own modules: :mod:`.results` (result
types), :mod:`.layout` (every path of ``OUT``), :mod:`.copies` (``--copy-maps``),
:mod:`.provenance` (existing masks, mask attributes), :mod:`.triage`, :mod:`.stages`,
:mod:`.executors` and :mod:`.signals`.  Their public names are re-exported here.

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

import dataclasses
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from .atomic import remove_stale_temporaries_of_many
from .copies import copy_atomic, copy_ls_table, ls_copy_current, merge_ls_rows, shared_ls_tables
from .executors import EXECUTORS, Executor, SequentialExecutor, ThreadedExecutor
from .layout import (
    copy_paths,
    ensure_output_root,
    existing_output,
    find_run_jobs,
    output_targets,
    quicklook_path,
    remove_stale_temporaries,
    roots_outside,
)
from .maps import MapJob
from .plan import InferOptions, RunPlan, as_plan, check_jobs
from .provenance import inspect_mask, mask_attributes, mask_problem, provenance_changes, values_problem
from .results import LoadedMap, MapResult, OutputError, RunReport, WorkItem, failure_reason, result_for, shown
from .runtime import CloudModel
from .signals import RunInterrupted, _SignalGuard, _Signalled
from .stages import (
    FULL_DISK_ERRNOS,
    Finish,
    MaskHook,
    PredictHook,
    RunState,
    Stages,
    load_map,
    quicklook_caption,
    quicklook_writer,
)
from .triage import kept_lines, triage

__all__ = [
    "EXECUTORS",
    "FULL_DISK_ERRNOS",
    "Executor",
    "Finish",
    "InferOptions",
    "LoadedMap",
    "MapResult",
    "MaskHook",
    "OutputError",
    "PredictHook",
    "RunInterrupted",
    "RunReport",
    "RunState",
    "SequentialExecutor",
    "Stages",
    "ThreadedExecutor",
    "WorkItem",
    "copy_atomic",
    "copy_ls_table",
    "copy_paths",
    "ensure_output_root",
    "existing_output",
    "failure_reason",
    "find_run_jobs",
    "inspect_mask",
    "kept_lines",
    "load_map",
    "ls_copy_current",
    "mask_attributes",
    "mask_problem",
    "merge_ls_rows",
    "output_targets",
    "provenance_changes",
    "quicklook_caption",
    "quicklook_path",
    "quicklook_writer",
    "remove_stale_temporaries",
    "result_for",
    "roots_outside",
    "run",
    "run_folder",
    "shared_ls_tables",
    "shown",
    "triage",
    "values_problem",
]
"""Re-exported: every name this module held before its split (issue 33), so imports keep working."""


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
