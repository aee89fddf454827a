"""Scoring predicted cloud masks against reference masks (``cm-eval``).

Pixels count only where both files are valid.  Per day and pooled over all days (sums of
the pixel counts, not a mean of daily scores): F1, precision, recall, accuracy, IoU, and
coverage, the share of the reference's valid pixels that the prediction also holds as
valid.  Days are matched by name (``cloudmask_P01_day01.ncdf`` <-> ``cloudmask_P01day01.ncdf``).

Predictions are thresholded at their file's ``threshold`` attribute (or an override, or
0.912); reference files are cloud where value > 0 (labels hold blue-channel numbers, the
original's masks 0/1) and probability references (another run's masks) at their own
``threshold`` attribute; a reference whose kind cannot be told is refused
(:func:`.masks.reference_kind`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .masks import BinaryMask, MaskShapeError, MaskValueError, find_map_files, find_masks, load_binary, load_reference
from .split import SEEN_ROLES, ModelSplit

TP_COLOUR = (40, 220, 60)
"""True positives in ``--png`` pictures (green)."""
FP_COLOUR = (255, 40, 200)
"""False positives (magenta)."""
FN_COLOUR = (30, 140, 255)
"""False negatives (blue)."""


@dataclass
class Counts:
    """Pixel counts of one comparison (or a sum of several)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    ref_valid: int = 0
    """Pixels valid in the reference."""

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    @property
    def both_valid(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def metrics(self) -> dict[str, float]:
        """F1, precision, recall, accuracy, IoU, coverage (NaN where undefined, e.g. no cloud)."""

        def ratio(a: int, b: int) -> float:
            return a / b if b else float("nan")

        return {
            "f1": ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn),
            "precision": ratio(self.tp, self.tp + self.fp),
            "recall": ratio(self.tp, self.tp + self.fn),
            "accuracy": ratio(self.tp + self.tn, self.both_valid),
            "iou": ratio(self.tp, self.tp + self.fp + self.fn),
            "coverage": ratio(self.both_valid, self.ref_valid),
        }


def confusion(pred: BinaryMask, ref: BinaryMask) -> Counts:
    """Pixel counts of ``pred`` against ``ref`` over the pixels valid in both."""
    both = pred.valid & ref.valid
    p = pred.cloud & both
    r = ref.cloud & both
    tp = int(np.count_nonzero(p & r))
    fp = int(np.count_nonzero(p)) - tp
    fn = int(np.count_nonzero(r)) - tp
    n = int(np.count_nonzero(both))
    return Counts(tp, fp, fn, n - tp - fp - fn, int(np.count_nonzero(ref.valid)))


@dataclass
class DayResult:
    """One matched day: names of both files, counts and metrics."""

    day: str
    pred: str
    ref: str
    counts: Counts
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class EvalResult:
    """Everything ``cm-eval`` reports."""

    days: list[DayResult]
    pooled: Counts
    missing_pred: list[str]
    """Reference days with no prediction."""
    errors: list[str]
    """One line per file that could not be read."""
    threshold: float | None

    def pooled_metrics(self) -> dict[str, float]:
        return self.pooled.metrics()

    def unseen_pooled(self, split: ModelSplit) -> Counts:
        """Pixel counts summed over the days that ``split``'s model neither trained nor was validated on."""
        total = Counts()
        for d in self.days:
            if split.role(d.day) not in SEEN_ROLES:
                total = total + d.counts
        return total

    def to_json(self, split: ModelSplit | None = None) -> dict[str, Any]:
        """Per-day and pooled figures; with ``split``, each day's role in the model's split
        (``used_in``: train/val/test/"") and the figures pooled over the unseen days."""

        def clean(d: dict[str, float]) -> dict[str, float | None]:
            return {k: (None if np.isnan(v) else round(v, 6)) for k, v in d.items()}

        out: dict[str, Any] = {
            "threshold_override": self.threshold,
            "n_days": len(self.days),
            "pooled": {**clean(self.pooled_metrics()), **asdict(self.pooled)},
            "days": [
                {
                    "day": d.day,
                    "pred": d.pred,
                    "ref": d.ref,
                    **clean(d.metrics),
                    **asdict(d.counts),
                    **({"used_in": split.role(d.day)} if split is not None else {}),
                }
                for d in self.days
            ],
            "missing_pred": self.missing_pred,
            "errors": self.errors,
        }
        if split is not None:
            unseen = self.unseen_pooled(split)
            out["split_model"] = split.model
            out["days_seen_by_model"] = split.seen(d.day for d in self.days)
            out["pooled_unseen"] = {**clean(unseen.metrics()), **asdict(unseen)}
        return out


def match_days(
    pred: dict[str, Path], ref: dict[str, Path], days: Iterable[str] | None = None
) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """Pair files by day name; returns ``([(day, pred, ref)], [reference days without prediction])``.

    ``days`` restricts the comparison to those day names (others are ignored entirely).
    """
    wanted = set(days) if days is not None else None
    pairs, missing = [], []
    for day, ref_path in ref.items():
        if wanted is not None and day not in wanted:
            continue
        if day in pred:
            pairs.append((day, pred[day], ref_path))
        else:
            missing.append(day)
    return pairs, missing


def evaluate(
    pred_root: str | Path,
    ref_root: str | Path,
    *,
    threshold: float | None = None,
    days: Iterable[str] | None = None,
    png_dir: str | Path | None = None,
    map_roots: Iterable[str | Path] = (),
    progress: Callable[[str], None] | None = None,
) -> EvalResult:
    """Score every prediction under ``pred_root`` that has a reference under ``ref_root``.

    Args:
        pred_root: a mask file or a folder searched recursively (this package's output, or
            the original's masks).
        ref_root: labels (``labels/P01``) or reference masks; file or folder.
        threshold: overrides the prediction files' ``threshold`` attribute.
        days: only these day names (``P01_day18``...).
        png_dir: if given, one picture per day (``eval_<day>.png``): TP/FP/FN in three colours.
        map_roots: where to look for the maps drawn under those pictures (``mdgm/`` tree,
            ``labels/P01/mdgms``); the picture has a grey background when a map is not found.
        progress: called with each day name after it is scored.

    A file that cannot be read, or a second mask of a day (``.nc`` beside ``.ncdf``, a copy
    in another folder: the first in path order is scored), adds one line to ``errors``; the
    other days are still scored.
    """
    from ..maps import MapError, read_map

    errors: list[str] = []
    pred_masks = find_masks(pred_root, duplicates=errors)  # a day with two masks: one line, scored once
    pairs, missing = match_days(pred_masks, find_masks(ref_root, duplicates=errors), days)
    maps = find_map_files(*map_roots) if png_dir is not None else {}
    results: list[DayResult] = []
    pooled = Counts()
    for day, pred_path, ref_path in pairs:
        try:
            pred = load_binary(pred_path, threshold=threshold)
        except (MaskShapeError, MaskValueError) as exc:  # the message names the file
            errors.append(f"{exc} (prediction)")
            continue
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            errors.append(f"{pred_path}: cannot read prediction ({exc})")
            continue
        try:
            ref, _kind = load_reference(ref_path)
        except (MaskShapeError, MaskValueError) as exc:
            errors.append(f"{exc} (reference)")
            continue
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{ref_path}: cannot read reference ({exc})")
            continue
        counts = confusion(pred, ref)
        pooled = pooled + counts
        result = DayResult(day, str(pred_path), str(ref_path), counts, counts.metrics())
        results.append(result)
        if png_dir is not None:
            rgb = None
            if day in maps:
                try:
                    rgb = read_map(maps[day])
                except MapError as exc:
                    errors.append(str(exc))
            draw_day(Path(png_dir) / f"eval_{day}.png", rgb, pred, ref, result)
        if progress is not None:
            progress(day)
    return EvalResult(results, pooled, missing, errors, threshold)


def draw_day(out_png: Path, rgb: np.ndarray | None, pred: BinaryMask, ref: BinaryMask, result: DayResult) -> Path:
    """The map with true positives, false positives and false negatives in three colours."""
    from .view import render_view

    both = pred.valid & ref.valid
    m = result.metrics
    title = (
        f"{result.day}: F1 {m['f1']:.3f}  precision {m['precision']:.3f}  recall {m['recall']:.3f}  "
        f"IoU {m['iou']:.3f}  coverage {m['coverage']:.3f}"
    )
    layers = [
        (pred.cloud & ref.cloud & both, TP_COLOUR, "cloud in both (TP)"),
        (pred.cloud & ~ref.cloud & both, FP_COLOUR, "predicted only (FP)"),
        (~pred.cloud & ref.cloud & both, FN_COLOUR, "reference only (FN)"),
    ]
    return render_view(out_png, rgb, both, layers, title)


def write_json(result: EvalResult, path: str | Path, split: ModelSplit | None = None) -> Path:
    """Write :meth:`EvalResult.to_json` atomically."""
    from ..atomic import write_text_atomic

    return write_text_atomic(path, json.dumps(result.to_json(split), indent=1) + "\n")
