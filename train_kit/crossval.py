"""Cross-validation over labelled days: the rule that picks the default model (issue 31).

- The labelled days are split into ``k`` folds spread across the subphase (:func:`fold_days`:
  day ``i`` of the sorted list goes to fold ``i mod k``, so every fold spans the season).
- Every candidate recipe (a set of :class:`~.config.TrainConfig` fields) is trained once per
  fold on the other folds' days, with the held-out fold as its validation days.  The recipes
  fix their schedule in advance (cosine, patience >= epochs) and the last epoch is scored, so
  the held-out days choose nothing.
- The held-out days are scored whole-map, as ``cm-infer`` predicts them
  (:func:`.evaluate.predict_map` on the maps of ``mdgm/P/P01`` against ``labels/P01``).
  Each day's out-of-fold probabilities are kept twice: as 1/1000 histograms of cloud and clear
  pixels in the results file (small, committed, enough for any threshold, per-day pairs and a
  reliability plot), and as a quantised map in the run folder (``oof/<day>.npz``, for later
  calibration or refiners).
- :func:`summarise` picks each candidate's threshold on its pooled out-of-fold histograms and
  reports per-fold F1, their mean and spread, and the paired per-day differences.

The results file is the resume point: a (candidate, fold) already in it is not trained again,
and a fold whose training was interrupted resumes from its run folder's ``last.keras``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from mars_cloudmask.infer.atomic import write_text_atomic

from .config import TrainConfig
from .evaluate import BINS, DEFAULT_POLAR_OFFSET, THRESHOLDS, Histograms

RESULTS_VERSION = 1


def fold_days(days: Sequence[int], k: int) -> list[list[int]]:
    """Split ``days`` into ``k`` folds spread across the season: the i-th smallest day goes to fold ``i mod k``.

    >>> fold_days(range(1, 21), 4)[0]
    [1, 5, 9, 13, 17]
    """
    ordered = sorted(set(int(d) for d in days))
    if k < 2 or k > len(ordered):
        raise ValueError(f"--folds {k}: needs 2 <= folds <= the number of days ({len(ordered)})")
    return [ordered[i::k] for i in range(k)]


@dataclass
class Recipes:
    """Candidate recipes: ``base`` TrainConfig fields shared by all, and each candidate's own fields on top."""

    base: dict[str, Any]
    candidates: dict[str, dict[str, Any]]

    @classmethod
    def read(cls, path: str | Path) -> "Recipes":
        """Read ``{"base": {...}, "candidates": {"name": {...}, ...}}``; unknown TrainConfig fields are refused."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            base, candidates = dict(data.get("base", {})), {str(k): dict(v) for k, v in data["candidates"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: not a recipes file ({exc})") from None
        known = {f.name for f in fields(TrainConfig)} - {"data", "out", "val_days", "test_days"}
        for name, fields_ in [("base", base), *candidates.items()]:
            unknown = sorted(set(fields_) - known)
            if unknown:
                raise ValueError(f"{path}: {name}: not recipe fields: {', '.join(unknown)}")
        if not candidates:
            raise ValueError(f"{path}: no candidates")
        return cls(base, candidates)

    def config(
        self, name: str, data: str | Path, val_days: Sequence[int], out: str | Path, unused: Sequence[int] = ()
    ) -> TrainConfig:
        """Candidate ``name``'s TrainConfig for one fold: validates on ``val_days`` (the held-out fold),
        sets ``unused`` aside (labelled days outside the cross-validation) and trains on the rest."""
        merged = {**self.base, **self.candidates[name]}
        return TrainConfig(
            data=[str(data)], out=str(out), val_days=list(val_days), test_days=sorted(unused), **merged
        )


@dataclass
class FoldResult:
    """One candidate's held-out scores on one fold: per-day histograms of its out-of-fold probabilities."""

    candidate: str
    fold: int
    days: list[int]
    per_day: dict[str, Histograms]
    seconds: float = math.nan

    def pooled(self) -> Histograms:
        total = Histograms.empty()
        for h in self.per_day.values():
            total.cloud += h.cloud
            total.clear += h.clear
        return total

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "fold": self.fold,
            "days": self.days,
            "seconds": None if math.isnan(self.seconds) else round(self.seconds, 1),
            "per_day": {k: {"cloud": h.cloud.tolist(), "clear": h.clear.tolist()} for k, h in self.per_day.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "FoldResult":
        per_day = {
            k: Histograms(np.asarray(v["cloud"], np.int64), np.asarray(v["clear"], np.int64))
            for k, v in data["per_day"].items()
        }
        for k, h in per_day.items():
            if h.cloud.shape != (BINS + 1,) or h.clear.shape != (BINS + 1,):
                raise ValueError(f"day {k}: histograms of {h.cloud.shape} bins, expected {BINS + 1}")
        secs = data.get("seconds")
        return cls(str(data["candidate"]), int(data["fold"]), [int(d) for d in data["days"]], per_day,
                   math.nan if secs is None else float(secs))


def read_results(path: str | Path) -> dict[tuple[str, int], FoldResult]:
    """The results file's folds by (candidate, fold); {} when it does not exist yet."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        folds = [FoldResult.from_json(f) for f in data["folds"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a cross-validation results file ({exc})") from None
    return {(f.candidate, f.fold): f for f in folds}


def write_results(path: str | Path, results: Mapping[tuple[str, int], FoldResult], meta: Mapping[str, Any]) -> None:
    """Write every fold result (sorted by fold, then candidate) atomically, with ``meta`` beside them."""
    ordered = sorted(results.values(), key=lambda f: (f.fold, f.candidate))
    body = {"version": RESULTS_VERSION, **meta, "folds": [f.to_json() for f in ordered]}
    write_text_atomic(Path(path), json.dumps(body, separators=(",", ":")) + "\n")


def save_oof_map(path: Path, prob: np.ndarray) -> None:
    """A probability map (-999 invalid) as uint16 thousandths (65535 invalid), compressed, atomically."""
    from mars_cloudmask.infer.geometry import INVALID

    q = np.where(prob > INVALID + 0.5, np.clip(np.rint(prob * BINS), 0, BINS), 65535).astype(np.uint16)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, prob_thousandths=q)
    tmp.replace(path)


def score_fold(
    model_path: Path,
    run: Path,
    data: Path,
    days: Sequence[int],
    oof_dir: Path | None,
    polar_offset: float = DEFAULT_POLAR_OFFSET,
    log: Callable[[str], None] = print,
) -> dict[str, Histograms]:
    """Per-day histograms of one fold model's whole-map probabilities on its held-out ``days``."""
    from mars_cloudmask.infer.maps import read_map

    from .evaluate import keras_scorer, p01_days, predict_map, read_truth

    scorer = keras_scorer(model_path, run)
    per_day: dict[str, Histograms] = {}
    for img, truth_path, ls in p01_days(data, days):
        rgb = read_map(img)
        prob = predict_map(scorer.inputs(img, rgb, "label", ls), ls, scorer.run_tiles, scorer.margin,
                           scorer.align, polar_offset)
        h = Histograms.empty()
        h.add(prob, read_truth(truth_path))
        name = img.name[: -len("_zequat.jpg")]
        per_day[name] = h
        if oof_dir is not None:
            oof_dir.mkdir(parents=True, exist_ok=True)
            save_oof_map(oof_dir / f"{name}.npz", prob)
        log(f"  {name}: F1 {h.scores(0.5)['f1']:.4f} at 0.50")
    return per_day


def run_cv(
    recipes: Recipes,
    data: str | Path,
    runs: str | Path,
    results_path: str | Path,
    k: int = 4,
    days: Sequence[int] = tuple(range(1, 21)),
    only: Sequence[str] | None = None,
    folds: Sequence[int] | None = None,
    log: Callable[[str], None] = print,
) -> dict[tuple[str, int], FoldResult]:
    """Train and score every (fold, candidate) not yet in ``results_path``, fold by fold so that the
    candidates' paired comparison grows evenly; each finished fold is written at once.

    ``data``: the shared data root (``labels/P01`` trains, ``mdgm/P/P01`` maps are scored);
    ``runs``: where the fold run folders go (``<runs>/<candidate>/fold<k>``).
    """
    import time

    from .data import day_number, scan_labelled
    from .train import train

    data, runs = Path(data), Path(runs)
    splits = fold_days(days, k)
    names = list(only) if only else list(recipes.candidates)
    for n in names:
        if n not in recipes.candidates:
            raise ValueError(f"--only {n}: not a candidate ({', '.join(recipes.candidates)})")
    labelled = sorted({day_number(s.name) for s in scan_labelled(data / "labels" / "P01")})
    unused = [d for d in labelled if d not in set(days)]
    results = read_results(results_path)
    meta = {"k": k, "days": sorted(days), "folds_days": splits, "recipes": asdict(recipes)}
    for fold, held in enumerate(splits):
        if folds is not None and fold not in folds:
            continue
        for name in names:
            if (name, fold) in results:
                continue
            run = runs / name / f"fold{fold}"
            cfg = recipes.config(name, data / "labels" / "P01", held, run, unused)
            n_train = len(set(labelled) - set(held) - set(unused))
            log(f"{name} fold {fold}: training on {n_train} days, holding out {held}")
            t0 = time.monotonic()
            train(cfg, log=log)
            seconds = time.monotonic() - t0
            log(f"{name} fold {fold}: scoring the held-out days")
            per_day = score_fold(run / "last.keras", run, data, held, run / "oof", log=log)
            results[(name, fold)] = FoldResult(name, fold, list(held), per_day, seconds)
            write_results(results_path, results, meta)
            log(f"{name} fold {fold}: written to {results_path}")
    return results


def _f1(h: Histograms, t: float) -> float:
    return float(h.scores(t)["f1"])


def summarise(results: Mapping[tuple[str, int], FoldResult]) -> dict[str, Any]:
    """Per candidate, over the folds that every candidate has finished (so that the comparison is paired):

    - ``threshold``: F1-best on the candidate's pooled out-of-fold histograms (0.01 grid);
    - ``folds``: F1 of each fold at that threshold, with their ``mean``, ``std`` (ddof 1) and range;
    - ``pooled_f1``: F1 of all out-of-fold pixels at that threshold;
    - ``per_day``: each held-out day's F1.
    ``pairs`` compares each candidate with the first, day by day: the differences, their mean and
    how many days each side wins.
    """
    names = sorted({c for c, _ in results})
    common = sorted(set.intersection(*({f for c, f in results if c == n} for n in names))) if names else []
    out: dict[str, Any] = {"folds_compared": common, "candidates": {}, "pairs": {}}
    for n in names:
        frs = [results[(n, f)] for f in common]
        pooled = Histograms.empty()
        for fr in frs:
            p = fr.pooled()
            pooled.cloud += p.cloud
            pooled.clear += p.clear
        t = pooled.best_threshold() if frs else 0.5
        fold_f1 = [_f1(fr.pooled(), t) for fr in frs]
        per_day = {d: _f1(h, t) for fr in frs for d, h in sorted(fr.per_day.items())}
        out["candidates"][n] = {
            "threshold": t,
            "folds": fold_f1,
            "mean": round(float(np.mean(fold_f1)), 4) if fold_f1 else math.nan,
            "std": round(float(np.std(fold_f1, ddof=1)), 4) if len(fold_f1) > 1 else math.nan,
            "min": min(fold_f1, default=math.nan),
            "max": max(fold_f1, default=math.nan),
            "pooled_f1": _f1(pooled, t),
            "per_day": per_day,
            "train_seconds": [None if math.isnan(fr.seconds) else round(fr.seconds) for fr in frs],
        }
    if names:
        ref = names[0]
        for n in names[1:]:
            a, b = out["candidates"][ref]["per_day"], out["candidates"][n]["per_day"]
            diffs = {d: round(b[d] - a[d], 4) for d in a if d in b}
            vals = list(diffs.values())
            out["pairs"][f"{n} - {ref}"] = {
                "per_day": diffs,
                "mean": round(float(np.mean(vals)), 4) if vals else math.nan,
                "wins": sum(v > 0 for v in vals),
                "losses": sum(v < 0 for v in vals),
            }
    return out


def reliability(results: Mapping[tuple[str, int], FoldResult], candidate: str, bins: int = 20) -> dict[str, list]:
    """Calibration of a candidate's pooled out-of-fold probabilities: per probability bin of width
    ``1/bins``, the mean predicted probability, the observed cloud frequency and the pixel count."""
    pooled = Histograms.empty()
    for (c, _), fr in results.items():
        if c == candidate:
            p = fr.pooled()
            pooled.cloud += p.cloud
            pooled.clear += p.clear
    centres = (np.arange(BINS + 1) + 0.5) / BINS
    group = np.minimum((np.arange(BINS + 1) * bins) // BINS, bins - 1)
    n = np.bincount(group, weights=pooled.cloud + pooled.clear, minlength=bins)
    cloud = np.bincount(group, weights=pooled.cloud, minlength=bins)
    mean_p = np.bincount(group, weights=centres * (pooled.cloud + pooled.clear), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "predicted": np.round(mean_p / n, 4).tolist(),
            "observed": np.round(cloud / n, 4).tolist(),
            "pixels": n.astype(np.int64).tolist(),
        }


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary as the model card's Markdown tables."""
    cands = summary["candidates"]
    folds = summary["folds_compared"]
    lines = [
        "| candidate | threshold (pooled OOF) | " + " | ".join(f"fold {f}" for f in folds) + " | mean | std | pooled |",
        "| --- | --- | " + " | ".join("---" for _ in folds) + " | --- | --- | --- |",
    ]
    for n, c in cands.items():
        lines.append(
            f"| {n} | {c['threshold']:.2f} | " + " | ".join(f"{v:.4f}" for v in c["folds"])
            + f" | {c['mean']:.4f} | {c['std']:.4f} | {c['pooled_f1']:.4f} |"
        )
    for pair, p in summary["pairs"].items():
        lines += ["", f"Per-day F1, {pair}: mean {p['mean']:+.4f}, {p['wins']} days up, {p['losses']} down", ""]
        days = list(p["per_day"])
        lines.append("| day | " + " | ".join(d.replace("P01_", "") for d in days) + " |")
        lines.append("| --- | " + " | ".join("---" for _ in days) + " |")
        lines.append("| diff | " + " | ".join(f"{p['per_day'][d]:+.3f}" for d in days) + " |")
    return "\n".join(lines)


def plot_reliability(results: Mapping[tuple[str, int], FoldResult], path: str | Path) -> Path:
    """Reliability diagram of every candidate's out-of-fold probabilities (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfectly calibrated")
    for n in sorted({c for c, _ in results}):
        r = reliability(results, n)
        ok = np.asarray(r["pixels"]) > 0
        ax.plot(np.asarray(r["predicted"])[ok], np.asarray(r["observed"])[ok], marker="o", ms=3, label=n)
    ax.set_xlabel("predicted cloud probability (out-of-fold)")
    ax.set_ylabel("observed cloud frequency (labels)")
    ax.set_title("Reliability, P01 days held out by cross-validation")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


__all__ = [
    "THRESHOLDS",
    "FoldResult",
    "Recipes",
    "fold_days",
    "format_summary",
    "plot_reliability",
    "read_results",
    "reliability",
    "run_cv",
    "score_fold",
    "summarise",
    "write_results",
]
