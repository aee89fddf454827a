"""Per-pixel baselines that a context-seeing U-Net must beat (docs/spec.md §7).

Both are fitted on training days only, from ``samples_per_day`` valid label pixels drawn
per day (the labels' valid pixels, cloud where label > 0):

* ``blue``: cloud where the blue channel is ``>= t``; ``t`` maximises F1 on the sample.
* ``gbt``: scikit-learn ``HistGradientBoostingClassifier`` on R, G, B, B-R, B/R,
  (B-R)/(B+R); cloud where its probability is ``>= t``, ``t`` maximising F1 on the
  training sample (in-sample: 3 M pixels, 100 boosting rounds, little room to overfit).

They predict whole maps, masked with ``cm-infer``'s valid pixels (geometry.valid_pixels inside
the Ls box), and write NetCDF masks in ``cm-infer``'s layout
(``OUT/<name>/<phase>/<subphase>/cloudmasks/cloudmask_<day>.ncdf``), so ``cm-eval`` scores
them like any model.  ``python -m mars_cloudmask.train_kit.baselines --labels ... --maps ...
--out ...`` fits, predicts, scores and writes a JSON summary.

Not imported by ``mars_cloudmask.infer`` (it needs scikit-learn).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from mars_cloudmask.infer.geometry import bounds_from_ls, valid_pixels
from mars_cloudmask.infer.maps import read_ls_table, read_map
from mars_cloudmask.infer.netcdf import write_mask
from mars_cloudmask.infer.science.masks import find_map_files, find_masks, load_binary, select_days

FEATURES = ("R", "G", "B", "B-R", "B/R", "(B-R)/(B+R)")
SAMPLES_PER_DAY = 200_000


def colour_features(rgb: np.ndarray) -> np.ndarray:
    """float32 ``(..., 6)`` per-pixel features R, G, B, B-R, B/R, (B-R)/(B+R) of uint8 RGB pixels ``(..., 3)``."""
    c = rgb.astype(np.float32)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    return np.stack([r, g, b, b - r, b / np.maximum(r, 1.0), (b - r) / np.maximum(b + r, 1.0)], axis=-1)


def sample_pixels(
    rgb: np.ndarray, cloud: np.ndarray, valid: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random valid pixels (all if fewer), without replacement: ``(uint8 (n, 3) RGB, bool (n,) cloud)``."""
    idx = np.flatnonzero(valid)
    if idx.size > n:
        idx = np.sort(rng.choice(idx, size=n, replace=False))
    flat = rgb.reshape(-1, 3)
    return flat[idx], cloud.ravel()[idx]


def best_level(levels: np.ndarray, cloud: np.ndarray, n_levels: int) -> tuple[int, float]:
    """The integer ``t`` in ``0..n_levels-1`` maximising F1 of ``levels >= t`` against ``cloud``.

    ``levels``: non-negative integers below ``n_levels`` (blue values, quantised probabilities).
    Returns ``(t, F1)``; one pass over two histograms.
    """
    levels = levels.astype(np.int64)
    n_cloud = np.bincount(levels[cloud], minlength=n_levels)
    n_clear = np.bincount(levels[~cloud], minlength=n_levels)
    tp = np.cumsum(n_cloud[::-1])[::-1]  # predicted cloud for t: every level >= t
    fp = np.cumsum(n_clear[::-1])[::-1]
    fn = n_cloud.sum() - tp
    f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    t = int(np.argmax(f1))
    return t, float(f1[t])


def fit_blue_threshold(blue: np.ndarray, cloud: np.ndarray) -> tuple[int, float]:
    """The blue value ``t`` maximising F1 of ``blue >= t`` against ``cloud``; returns ``(t, F1)``."""
    return best_level(blue, cloud, 256)


def fit_probability_threshold(prob: np.ndarray, cloud: np.ndarray, steps: int = 1000) -> tuple[float, float]:
    """The threshold (a multiple of ``1/steps``) maximising F1 of ``prob >= t``; returns ``(t, F1)``."""
    t, f1 = best_level(np.floor(np.clip(prob, 0, 1) * steps), cloud, steps + 1)
    return t / steps, f1


def fit_gbt(x: np.ndarray, y: np.ndarray, seed: int = 0, max_iter: int = 100) -> Any:
    """A ``HistGradientBoostingClassifier`` (default settings but ``max_iter``, fixed seed) fitted on ``x``.

    Prediction cost grows with ``max_iter`` (boosting rounds): 100 (sklearn's default) takes
    about 6 s per map on an idle 2-core machine.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(random_state=seed, max_iter=max_iter)
    model.fit(x, y)
    return model


def predict_map(
    rgb: np.ndarray, valid: np.ndarray, kind: str, blue_t: int | None = None, model: Any = None
) -> np.ndarray:
    """float32 (1801, 3600) north-up mask of one map: -999 outside ``valid``; ``blue``: 0/1,
    ``gbt``: cloud probability."""
    out = np.full(valid.shape, -999.0, dtype=np.float32)
    pixels = rgb[valid]
    if kind == "blue":
        out[valid] = (pixels[:, 2] >= blue_t).astype(np.float32)
    elif kind == "gbt":
        out[valid] = model.predict_proba(colour_features(pixels))[:, 1].astype(np.float32)
    else:
        raise ValueError(f"unknown baseline {kind!r}")
    return out


@dataclass(frozen=True)
class Day:
    """A labelled day: its name, label file, map and Ls."""

    name: str
    label: Path
    map: Path
    mars_year: int
    ls: float


def labelled_days(labels: Path, maps: Path) -> list[Day]:
    """Days that have a label under ``labels`` and a map under ``maps``, with Ls from any
    ``*_ls.txt`` under either folder."""
    from mars_cloudmask.infer.science.masks import day_name

    table: dict[str, tuple[int, float]] = {}
    for root in (labels, maps):
        for f in sorted(root.rglob("*_ls.txt")):
            for e in read_ls_table(f).values():
                table.setdefault(day_name(e.name) or e.name, (e.mars_year, e.ls))
    label_files, map_files = find_masks(labels), find_map_files(maps)
    days = []
    for name, label in label_files.items():
        if name in map_files and name in table:
            days.append(Day(name, label, map_files[name], *table[name]))
    return days


def run(
    labels: Path,
    maps: Path,
    out: Path,
    train: str = "1-15",
    test_windows: dict[str, str] | None = None,
    samples_per_day: int = SAMPLES_PER_DAY,
    seed: int = 0,
    original: Path | None = None,
    max_iter: int = 100,
) -> dict:
    """Fit both baselines on the ``train`` days, predict the days of the test windows, score with cm-eval's
    :func:`~mars_cloudmask.infer.science.evaluate.evaluate`; returns the JSON summary."""
    from rich.progress import track

    from mars_cloudmask.infer.science.evaluate import evaluate

    test_windows = test_windows or {"days_16_20": "16-20", "days_18_20": "18-20"}
    days = labelled_days(labels, maps)
    by_name = {d.name: d for d in days}
    train_names = select_days(train, by_name)
    if not train_names:
        raise SystemExit(f"{labels}: no labelled day with a map matches --train {train!r}")
    windows = {w: select_days(spec, by_name) for w, spec in test_windows.items()}
    leaked = sorted({n for names in windows.values() for n in names} & set(train_names))
    if leaked:
        raise SystemExit(f"test days {', '.join(leaked)} are also training days: choose disjoint --train")
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    t0 = time.perf_counter()
    for name in track(train_names, description="sampling training days"):
        d = by_name[name]
        rgb = read_map(d.map)
        lab = load_binary(d.label, label=True)
        px, cl = sample_pixels(rgb, lab.cloud, lab.valid & valid_pixels(rgb), samples_per_day, rng)
        xs.append(px)
        ys.append(cl)
    pixels, cloud = np.concatenate(xs), np.concatenate(ys)
    blue_t, blue_f1_train = fit_blue_threshold(pixels[:, 2], cloud)
    t1 = time.perf_counter()
    features = colour_features(pixels)
    model = fit_gbt(features, cloud, seed, max_iter)
    fit_s = time.perf_counter() - t1
    gbt_t, gbt_f1_train = fit_probability_threshold(model.predict_proba(features)[:, 1], cloud)
    predict_names = sorted({n for names in windows.values() for n in names})
    for name in track(predict_names, description="predicting maps"):
        d = by_name[name]
        rgb = read_map(d.map)
        valid = valid_pixels(rgb, bounds_from_ls(rgb, d.ls))
        for kind in ("blue", "gbt"):
            mask = predict_map(rgb, valid, kind, blue_t, model)
            folder = out / kind / d.map.parent.parent.name / d.map.parent.name / "cloudmasks"
            write_mask(
                folder / f"cloudmask_{name}.ncdf",
                mask,
                {
                    "source_map": d.map.name,
                    "solar_longitude": d.ls,
                    "mars_year": d.mars_year,
                    "model": f"baseline-{kind}",
                    "threshold": 0.5 if kind == "blue" else gbt_t,
                    "title": f"Per-pixel {kind} baseline cloud mask (not a U-Net)",
                },
                binary=kind == "blue",
            )
    summary: dict[str, Any] = {
        "what": "per-pixel baselines vs labels, scored with cm-eval (pixels valid in both, pooled)",
        "labels": str(labels),
        "maps": str(maps),
        "train_days": train_names,
        "samples_per_day": samples_per_day,
        "seed": seed,
        "n_train_pixels": int(cloud.size),
        "train_cloud_fraction": round(float(cloud.mean()), 5),
        "blue": {"threshold": blue_t, "rule": f"cloud where B >= {blue_t}", "train_f1": round(blue_f1_train, 4)},
        "gbt": {
            "model": f"sklearn HistGradientBoostingClassifier(random_state=seed, max_iter={max_iter}), "
            "other settings default",
            "features": list(FEATURES),
            "threshold": gbt_t,
            "threshold_rule": "maximises F1 on the training sample",
            "train_f1": round(gbt_f1_train, 4),
            "fit_seconds": round(fit_s, 1),
        },
        "wall_seconds": None,
        "scores": {},
    }
    sources = {"blue": out / "blue", "gbt": out / "gbt"}
    if original is not None:
        sources["original_model"] = original
    for window, wanted in windows.items():
        summary["scores"][window] = {}
        for kind, root in sources.items():
            res = evaluate(root, labels, days=wanted)
            summary["scores"][window][kind] = {
                "days": [d.day for d in res.days],
                **{k: (round(v, 4) if not np.isnan(v) else None) for k, v in res.pooled_metrics().items()},
                "per_day_f1": {d.day: round(d.metrics["f1"], 4) for d in res.days},
            }
    summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
    return summary


def main(
    labels: Path = typer.Option(..., help="Labelled layout, e.g. ../shared/data/labels/P01."),
    maps: Path = typer.Option(..., help="Folder with the maps, e.g. ../shared/data/mdgm/P/P01 (or labels/P01/mdgms)."),
    out: Path = typer.Option(..., help="Where the baseline masks go (<out>/blue, <out>/gbt)."),
    train: str = typer.Option("1-15", help="Training days (numbers, ranges or names)."),
    samples_per_day: int = typer.Option(SAMPLES_PER_DAY, help="Valid pixels sampled per training day."),
    seed: int = typer.Option(0),
    max_iter: int = typer.Option(100, help="Boosting rounds of the GBT (sklearn's default: 100)."),
    original: Optional[Path] = typer.Option(
        None, help="The original model's masks, scored alongside (e.g. ../shared/data/reference/P/P01)."
    ),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the summary JSON here."),
) -> None:
    """Fit the blue-threshold and gradient-boosted baselines on the training days and score them."""
    from mars_cloudmask.infer.atomic import write_text_atomic

    summary = run(
        labels, maps, out, train, samples_per_day=samples_per_day, seed=seed, original=original, max_iter=max_iter
    )
    text = json.dumps(summary, indent=1) + "\n"
    if json_out is not None:
        write_text_atomic(json_out, text)
    for window, scores in summary["scores"].items():
        for kind, s in scores.items():
            print(
                f"{window:12s} {kind:15s} F1 {s['f1']:.4f}  precision {s['precision']:.4f}  "
                f"recall {s['recall']:.4f}  IoU {s['iou']:.4f}  coverage {s['coverage']:.4f}"
            )


if __name__ == "__main__":
    typer.run(main)
