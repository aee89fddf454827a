"""Run records: what each run did, and what ``OUT`` holds.

Every run writes three JSON files into ``OUT``:

* ``cm-infer-runs/<started>-<pid>.json``: this run's record, kept for good (a one-map rerun no
  longer erases the record of the 25-map run before it);
* ``cm-infer-run.json``: a copy of the latest run's record (what existing scripts read);
* ``cm-infer-contents.json``: what ``OUT`` holds: one entry per mask on disk (source map, Ls,
  model, options, the background composite its input used, the run that wrote it), taken from
  each mask's own attributes and reconciled with the disk at every run (a killed run's masks,
  a concurrent run's, a removed mask, a truncated contents file: the summary says what was
  repaired), and the maps whose latest attempt failed (with the reason), dropped once a later
  run writes them.  Updates are serialised with a lock on the ``OUT`` folder, so concurrent
  runs on one ``OUT`` do not lose each other's entries.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import math
import os
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .atomic import remove_stale_temporaries_in, remove_stale_temporaries_of, write_text_atomic

if TYPE_CHECKING:  # pragma: no cover
    from .maps import MapJob
    from .plan import RunPlan
    from .results import RunReport
    from .runtime import CloudModel

RUN_RECORD = "cm-infer-run.json"
RUNS_FOLDER = "cm-infer-runs"
CONTENTS = "cm-infer-contents.json"


_RUNS_IN_PROCESS = itertools.count(1)


def new_run_id(started: datetime) -> str:
    """A run's id: its start (UTC, to the second) and process id, ``20261204T195546Z-1234``;
    a later run of the same process gets ``.2``, ``.3``... (two runs in one second differ)."""
    n = next(_RUNS_IN_PROCESS)
    return f"{started.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}" + (f".{n}" if n > 1 else "")


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
        "run_id": plan.run_id or new_run_id(started),
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


def remove_stale_record_temporaries(out: Path) -> list[Path]:
    """Remove the temporaries of run records and contents files that dead runs left in ``OUT``
    (a live run's are kept); returns them."""
    out = Path(out)
    removed = remove_stale_temporaries_of(out / RUN_RECORD) + remove_stale_temporaries_of(out / CONTENTS)
    return removed + remove_stale_temporaries_in(out / RUNS_FOLDER, ".json")


def load_contents(out: Path) -> tuple[dict[str, Any], str | None]:
    """``OUT/cm-infer-contents.json`` and what is wrong with it: ``(contents, None)``; an empty
    one and None when absent; an empty one and the reason when unreadable (truncated...)."""
    path = Path(out) / CONTENTS
    empty: dict[str, Any] = {"tool": "cm-infer", "masks": {}, "failed": {}}
    try:
        text = path.read_text()
    except FileNotFoundError:
        return empty, None
    except (OSError, UnicodeDecodeError) as exc:
        return empty, f"unreadable ({getattr(exc, 'strerror', None) or exc})"
    try:
        data = json.loads(text)
    except ValueError as exc:
        return empty, f"not valid JSON, truncated? ({exc})"
    if not (isinstance(data, dict) and isinstance(data.get("masks"), dict)):
        return empty, "not a contents file (no 'masks' table)"
    if not isinstance(data.get("failed"), dict):
        data["failed"] = {}
    return data, None


def read_contents(out: Path) -> dict[str, Any]:
    """``OUT/cm-infer-contents.json`` (an empty one when absent or unreadable)."""
    return load_contents(out)[0]


def masks_on_disk(out: Path) -> dict[str, Path]:
    """The masks ``OUT`` holds, by path relative to ``OUT``:
    ``<phase>/<subphase>/cloudmasks/cloudmask_<name><suffix>`` (temporaries are hidden)."""
    from .netcdf import MASK_PREFIX, MASK_SUFFIXES

    out = Path(out)
    found: dict[str, Path] = {}
    for folder in out.glob("*/*/cloudmasks"):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            path = folder / name
            if name.startswith(MASK_PREFIX) and path.suffix in MASK_SUFFIXES and path.is_file():
                found[os.path.relpath(path, out)] = path
    return found


def fingerprint(path: Path) -> list[int]:
    """``[size, mtime_ns, inode]`` of a file: a mask rewritten by any run changes it."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _plain(value: Any) -> Any:
    """A NetCDF attribute as a JSON-ready value (numpy scalars and arrays as Python ones)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def entry_from_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """The contents entry of a mask from its own global attributes (what wrote it, and how)."""
    a = {k: _plain(v) for k, v in attrs.items()}
    output_type = a.get("output_type")
    return {
        "source": a.get("source_map"),
        "run_id": a.get("run_id"),
        "ls": a.get("solar_longitude"),
        "mars_year": a.get("mars_year"),
        "model_name": a.get("model_name"),
        "model_sha256": a.get("model_sha256"),
        "model_version": a.get("model_version"),
        "binary": None if output_type is None else output_type == "binary",
        "threshold": a.get("threshold"),
        **({"background": a["background_composite"]} if a.get("background_composite") else {}),
    }


PROVENANCE_KEYS = ("run_id", "model_sha256", "binary", "threshold", "background")
"""Entry fields that say which run, model and options wrote a mask (compared when reconciling)."""


def reconcile_contents(
    contents: dict[str, Any],
    record: dict[str, Any],
    disk: dict[str, Path],
    read_attrs: Callable[[Path], dict[str, Any]],
    runs: Sequence[str] = (),
) -> tuple[dict[str, Any], dict[str, int]]:
    """``contents`` rebuilt against the masks on ``disk`` and one run's ``record`` (returns a new
    dict, and the counts of repairs: ``added`` masks it did not list that no run of this record
    wrote, ``corrected`` entries that named another writer, ``removed`` entries whose mask is gone).

    Each mask's entry comes from its own attributes (:func:`entry_from_attrs`), unless the old
    entry carries the file's unchanged :func:`fingerprint`: a ``--quicklook`` or ``--copy-maps``
    rerun leaves the writer of the mask as it was.  ``runs``: the run ids of ``OUT``'s records.
    """
    old = contents.get("masks", {})
    run_id = record["run_id"]
    this_run = {os.path.relpath(m["output"], record["out"]): m for m in record["maps"]}
    masks: dict[str, Any] = {}
    repairs = {"added": 0, "corrected": 0, "removed": 0}
    for key, path in sorted(disk.items()):
        try:
            fp = fingerprint(path)
        except OSError:
            continue  # removed meanwhile
        before = old.get(key)
        if isinstance(before, dict) and before.get("fingerprint") == fp:
            masks[key] = before
            continue
        try:
            entry = entry_from_attrs(read_attrs(path))
        except Exception:  # noqa: BLE001 - a mask that cannot be read is not held (a rerun redoes it)
            continue
        name = entry["source"]
        known = [this_run.get(key, {}).get("source"), before.get("source") if isinstance(before, dict) else None]
        entry["source"] = next((s for s in known if s and (name is None or Path(s).name == name)), name)
        if entry["run_id"] is None and isinstance(before, dict):
            entry["run_id"] = before.get("run_id")  # a mask older than the run_id attribute
        if entry["run_id"] == run_id:
            entry["finished"] = record["finished"]
        elif isinstance(before, dict) and before.get("run_id") == entry["run_id"] and "finished" in before:
            entry["finished"] = before["finished"]
        entry["fingerprint"] = fp
        if entry["run_id"] != run_id:
            if not isinstance(before, dict):
                repairs["added"] += 1
            elif any(before.get(k) != entry.get(k) for k in PROVENANCE_KEYS if before.get(k) is not None):
                repairs["corrected"] += 1
        masks[key] = entry
    repairs["removed"] = sum(1 for key in old if key not in masks and key not in disk)
    failed = dict(contents.get("failed", {}))
    for key, m in this_run.items():
        if m["status"] == "done":
            failed.pop(key, None)
        elif m["status"] == "failed":
            failed[key] = {"source": m["source"], "reason": m["reason"], "run_id": run_id}
    run_ids = set(contents.get("runs", [])) | set(runs) | {run_id}
    run_ids |= {e["run_id"] for e in masks.values() if e.get("run_id")}
    return {
        "tool": "cm-infer",
        "updated": record["finished"],
        "masks": masks,
        "failed": dict(sorted(failed.items())),
        "runs": sorted(run_ids),
    }, repairs


def repair_lines(path: Path, problem: str | None, repairs: dict[str, int], n_masks: int) -> list[str]:
    """What a reconcile changed that the contents file had wrong (empty: nothing)."""
    if problem is not None:
        return [f"{path}: {problem}; rebuilt from the {n_masks} masks on disk"]
    what = {
        "added": ("mask on disk it did not list", "masks on disk it did not list"),
        "corrected": ("entry naming the wrong writer", "entries naming the wrong writer"),
        "removed": ("entry whose mask is gone", "entries whose mask is gone"),
    }
    said = [f"{repairs[k]} {text[repairs[k] != 1]}" for k, text in what.items() if repairs[k]]
    return [f"{path}: repaired from the masks on disk ({', '.join(said)})"] if said else []


def write_records(out: Path, record: dict[str, Any], notes: list[str] | None = None) -> Path:
    """Write this run's record, the latest-run copy and the contents, reconciled with the masks
    on disk (:func:`reconcile_contents`); returns the run's file.  ``notes`` gets one line when
    the contents file had to be repaired.

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
        contents, problem = load_contents(out)
        disk = masks_on_disk(out)
        runs = [p.stem for p in (out / RUNS_FOLDER).glob("*.json")]
        merged, repairs = reconcile_contents(contents, record, disk, _read_attrs, runs)
        write_text_atomic(out / CONTENTS, _dump(_clean(merged)))
    finally:
        os.close(fd)
    if notes is not None:
        notes += repair_lines(out / CONTENTS, problem, repairs, len(merged["masks"]))
    return path


def _read_attrs(path: Path) -> dict[str, Any]:
    from .netcdf import read_attrs

    return read_attrs(path)
