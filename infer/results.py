"""What a run reports: the result of each map (:class:`MapResult`), the decoded map the stages
pass along (:class:`LoadedMap`), the work items (:class:`WorkItem`), the whole run
(:class:`RunReport`), and one-line messages safe to print (:func:`shown`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .composites import CompositeResult
from .geometry import Bounds
from .maps import LsEntry, MapError, MapJob
from .plan import RunPlan


class OutputError(RuntimeError):
    """The output folder cannot be created or written; the message names it."""


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


# --------------------------------------------------------------------------- one-line messages
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
