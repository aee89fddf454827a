"""The triage of a map against what ``OUT`` already holds: run it, make only the extras asked
for now from its existing mask, or skip it (:func:`triage`); and the summary lines of masks kept."""

from __future__ import annotations

from typing import Sequence

from .copies import ls_copy_current
from .layout import copy_paths, existing_output, quicklook_path
from .maps import MapJob
from .plan import RunPlan
from .provenance import inspect_mask, provenance_changes
from .results import MapResult, WorkItem, result_for


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


def kept_lines(results: Sequence[MapResult]) -> list[str]:
    """One summary line per kind of mask kept from another model or plan (``MapResult.kept``)."""
    groups: dict[str, int] = {}
    for r in results:
        if r.status == "skipped" and r.kept:
            groups[r.kept] = groups.get(r.kept, 0) + 1
    return [f"kept {n} masks made with {kept}; use --overwrite to redo them" for kept, n in groups.items()]
