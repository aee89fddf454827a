"""Run records: what each run did, and what ``OUT`` holds.

Every run writes three JSON files into ``OUT``:

* ``cm-infer-runs/<started>-<pid>.json``: this run's record, kept for good (a one-map rerun no
  longer erases the record of the 25-map run before it);
* ``cm-infer-run.json``: a copy of the latest run's record (what existing scripts read);
* ``cm-infer-contents.json``: what ``OUT`` holds, merged over every run: one entry per mask
  written (source map, Ls, model, the background composite its input used, the run that
  wrote it) and the maps whose latest attempt failed (with the reason), dropped once a later
  run writes them.  Updates are serialised with a lock on the ``OUT`` folder, so concurrent
  runs on one ``OUT`` do not lose each other's entries.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .atomic import write_text_atomic

if TYPE_CHECKING:  # pragma: no cover
    from .engine import RunReport
    from .maps import MapJob
    from .plan import RunPlan
    from .runtime import CloudModel

RUN_RECORD = "cm-infer-run.json"
RUNS_FOLDER = "cm-infer-runs"
CONTENTS = "cm-infer-contents.json"


def _stage_totals(results: Sequence[Any]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for r in results:
        for k, v in r.timings.items():
            totals[k] = totals.get(k, 0.0) + v
    return totals


def run_record(
    report: "RunReport",
    jobs: Sequence["MapJob"],
    model: "CloudModel",
    plan: "RunPlan",
    *,
    executor: str,
    started: datetime,
    wall_s: float,
    warmup_s: float,
    roots: Sequence[str | Path] = (),
) -> dict[str, Any]:
    """The record of one run (JSON-ready): plan, model, versions, per-map results (each with the
    background composite it used, if any), the background composites of the run's first pass
    (``backgrounds``: built, reused, given or failed, per subphase), timings."""
    from .doctor import versions

    ordered = report.results
    done = sum(r.status == "done" for r in ordered)
    return {
        "tool": "cm-infer",
        "run_id": f"{started.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}",
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "interrupted": report.interrupted,
        "halted": report.halted,
        "command": sys.argv,
        "inputs": [str(r) for r in roots] or sorted({str(j.path.parent) for j in jobs}),
        "out": str(plan.out),
        "plan": plan.to_record(),
        "executor": executor,
        "threshold": plan.threshold,
        "model": model.describe()
        if hasattr(model, "describe")
        else {"path": str(getattr(model, "path", "")), "sha256": model.sha256, "version": model.info.version},
        "provider": model.provider,
        "precision": getattr(model, "precision", None),
        "versions": versions(),
        "counts": {s: sum(r.status == s for r in ordered) for s in ("done", "skipped", "failed")},
        "not_processed": report.not_processed,
        "outputs": [r.output for r in ordered if r.status == "done"],
        "skipped": [
            {"source": r.source, "output": r.output, "reason": r.reason} for r in ordered if r.status == "skipped"
        ],
        "backgrounds": [asdict(c) for c in report.composites],
        "failures": [{"source": None, "reason": e} for e in report.input_errors]
        + [{"source": r.source, "reason": r.reason} for r in ordered if r.status == "failed"],
        "timings": {
            "wall_s": wall_s,
            "jit_warmup_s": warmup_s,
            "stage_totals_s": _stage_totals(ordered),
            "maps_per_s": (done / wall_s) if wall_s > 0 else None,
        },
        "maps": [asdict(r) for r in ordered],
    }


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, default=str, allow_nan=False)


def _clean(value: Any) -> Any:
    """NaN and infinities as None (JSON has no NaN; ``allow_nan=False`` would refuse them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def read_contents(out: Path) -> dict[str, Any]:
    """``OUT/cm-infer-contents.json`` (an empty one when absent or unreadable)."""
    try:
        data = json.loads((Path(out) / CONTENTS).read_text())
        if isinstance(data, dict) and isinstance(data.get("masks"), dict):
            data.setdefault("failed", {})
            return data
    except (OSError, ValueError):
        pass
    return {"tool": "cm-infer", "masks": {}, "failed": {}}


def merge_contents(contents: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """``contents`` updated with one run's record (pure: returns a new dict)."""
    out = Path(record["out"])
    masks = dict(contents.get("masks", {}))
    failed = dict(contents.get("failed", {}))
    for m in record["maps"]:
        key = os.path.relpath(m["output"], out)
        if m["status"] == "done":
            failed.pop(key, None)
            entry = dict(masks.get(key, {}))
            entry.update(source=m["source"], run_id=record["run_id"], finished=record["finished"])
            if m.get("timings", {}).get("write_s") is not None or key not in masks:
                entry.update(
                    ls=m["ls"],
                    mars_year=m["mars_year"],
                    model_sha256=record["model"]["sha256"],
                    model_version=record["model"]["version"],
                    binary=record["plan"]["binary"],
                )
                if m.get("background"):
                    entry["background"] = m["background"]
                else:
                    entry.pop("background", None)
            masks[key] = entry
        elif m["status"] == "failed":
            failed[key] = {"source": m["source"], "reason": m["reason"], "run_id": record["run_id"]}
            if not (out / key).exists():
                masks.pop(key, None)
    return {
        "tool": "cm-infer",
        "updated": record["finished"],
        "masks": dict(sorted(masks.items())),
        "failed": dict(sorted(failed.items())),
        "runs": sorted(set(contents.get("runs", [])) | {record["run_id"]}),
    }


def write_records(out: Path, record: dict[str, Any]) -> Path:
    """Write this run's record, the latest-run copy and the merged contents; returns the run's file.

    Raises:
        OSError: a record cannot be written (full or read-only disk): the caller reports it.
    """
    out = Path(out)
    record = _clean(record)
    text = _dump(record)
    path = write_text_atomic(out / RUNS_FOLDER / f"{record['run_id']}.json", text)
    write_text_atomic(out / RUN_RECORD, text)
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)  # the lock is on OUT itself: no lock file left
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        write_text_atomic(out / CONTENTS, _dump(_clean(merge_contents(read_contents(out), record))))
    finally:
        os.close(fd)
    return path
