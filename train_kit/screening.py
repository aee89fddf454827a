"""Screening candidate inputs with per-pixel boosted trees before a U-Net arm (issue 21).

The trees see one pixel, so they show what an input adds beyond colour, and whether that
transfers to other seasons, in minutes instead of an hour of U-Net training:

- fit a ``HistGradientBoostingClassifier`` on ``samples_per_day`` valid label pixels of each
  training day (P01 days 01-15; the maps of ``mdgm/P/P01``), threshold F1-best on that sample;
- score P01's test days (18-20) against the labels and each listed subphase's maps against
  the original's masks (agreement), pooled over pixels valid in both, as the evaluator does
  (:class:`~mars_cloudmask.train_kit.evaluate.Histograms`).

Feature sets (all per pixel, north-up maps):

- ``colour``: R, G, B, B-R, B/R, (B-R)/(B+R) (:func:`~.baselines.colour_features`);
- ``zonal``: colour + each channel minus the median of its map row (a latitude line, every
  longitude with data) and B over that median: contrast against the same day's ground at
  the same latitude, no composite and no position;
- ``local``: the same against the median of the row's :data:`LOCAL_BLOCK` columns around it
  (a 30 degree stretch of the latitude line);
- ``blocal``: colour + the U-Net's ``blocal`` channel itself (blue minus the smooth local
  median of :func:`~mars_cloudmask.infer.channels.local_median_blue`, built by
  :func:`~mars_cloudmask.infer.channels.extra_channels`): what the trees say of the input the
  arm ``v3-blocal`` trains on, with no second definition of local contrast;
- ``lat``: colour + latitude (position: what the issue measured not to transfer);
- ``cosi``: colour + cos of the solar incidence at MARCI's 15:00 for the map's Ls.

``python -m mars_cloudmask.train_kit.screening --data ../shared/data --sets colour,zonal,local``
prints one JSON line per set and writes them all with ``--out``.  Needs scikit-learn.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import typer

from mars_cloudmask.infer.atomic import write_text_atomic
from mars_cloudmask.infer.channels import cos_incidence, extra_channels, parse_spec
from mars_cloudmask.infer.geometry import INVALID, bounds_from_ls, row_to_lat, valid_pixels
from mars_cloudmask.infer.maps import read_map

from .baselines import colour_features, fit_gbt, fit_probability_threshold
from .evaluate import Histograms, p01_days, read_truth, subphase_maps

FEATURE_SETS = ("colour", "zonal", "local", "blocal", "lat", "cosi")
LOCAL_BLOCK = 300  # columns: 30 degrees of longitude at 0.1 degree per column
SUBPHASES = ("P05", "P09", "P10", "P14", "P17")  # the agreement table


def row_medians(values: np.ndarray, valid: np.ndarray, block: int | None = None) -> np.ndarray:
    """float32 ``(H, W, C)``: for each pixel, the median of ``values`` ``(H, W, C)`` over the
    ``valid`` pixels of its row, over the whole row (``block`` None) or over its block of
    ``block`` consecutive columns (blocks start at column 0; the last may be shorter).  A block
    with no valid pixel takes its row's median; a row with none, 0."""
    v = values.astype(np.float32)
    v[~valid] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows and blocks are handled below
        row = np.nanmedian(v, axis=1, keepdims=True)  # (H, 1, C)
        row = np.nan_to_num(row, nan=0.0)
        if block is None:
            return np.broadcast_to(row, v.shape).copy()
        out = np.empty_like(v)
        for c0 in range(0, v.shape[1], block):
            m = np.nanmedian(v[:, c0 : c0 + block], axis=1, keepdims=True)
            out[:, c0 : c0 + block] = np.where(np.isnan(m), row, m)
    return out


def contrast_features(rgb: np.ndarray, valid: np.ndarray, block: int | None = None) -> np.ndarray:
    """float32 ``(H, W, 4)``: R, G, B minus their :func:`row_medians`, and B over its median (median floored at 1)."""
    med = row_medians(rgb, valid, block)
    c = rgb.astype(np.float32)
    return np.concatenate([c - med, (c[..., 2] / np.maximum(med[..., 2], 1.0))[..., None]], axis=-1)


def pixel_features(rgb: np.ndarray, valid: np.ndarray, ls: float, name: str) -> np.ndarray:
    """float32 ``(H, W, F)`` features of feature set ``name`` (module doc) for one north-up map of Ls ``ls`` (deg);
    ``valid``: the pixels the row medians are taken over."""
    colour = colour_features(rgb)
    h, w = rgb.shape[:2]
    if name == "colour":
        return colour
    if name in ("zonal", "local"):
        extra = contrast_features(rgb, valid, None if name == "zonal" else LOCAL_BLOCK)
    elif name == "blocal":
        extra = extra_channels(rgb, parse_spec("rgb,blocal")).astype(np.float32)
    elif name in ("lat", "cosi"):
        lat = row_to_lat(np.arange(h, dtype=np.float64))
        col = lat if name == "lat" else cos_incidence(lat, ls)
        extra = np.broadcast_to(col.astype(np.float32)[:, None, None], (h, w, 1))
    else:
        raise ValueError(f"unknown feature set {name!r} (known: {', '.join(FEATURE_SETS)})")
    return np.concatenate([colour, extra], axis=-1)


def _map_inputs(img: Path, ls: float, name: str) -> tuple[np.ndarray, np.ndarray]:
    rgb = read_map(img)
    valid = valid_pixels(rgb, bounds_from_ls(rgb, ls))
    return pixel_features(rgb, valid, ls, name), valid


def screen_set(
    data: Path,
    name: str,
    train_days: Sequence[int] = tuple(range(1, 16)),
    test_days: Sequence[int] = (18, 19, 20),
    subphases: Sequence[str] = SUBPHASES,
    samples_per_day: int = 60_000,
    max_iter: int = 120,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit and score one feature set (module doc); returns its threshold, test F1 and agreement per subphase."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for img, label, ls in p01_days(data, train_days):
        f, valid = _map_inputs(img, ls, name)
        truth = read_truth(label)
        idx = np.flatnonzero(valid & (truth >= 0))
        if idx.size > samples_per_day:
            idx = np.sort(rng.choice(idx, size=samples_per_day, replace=False))
        xs.append(f.reshape(-1, f.shape[-1])[idx])
        ys.append(truth.ravel()[idx] > 0)
    x, y = np.concatenate(xs), np.concatenate(ys)
    model = fit_gbt(x, y, seed, max_iter)
    threshold, _ = fit_probability_threshold(model.predict_proba(x)[:, 1], y)
    threshold = round(float(threshold), 3)  # the scorer's bins are 1/1000

    def scores(items: Sequence[tuple[Path, Path, float]]) -> dict[str, float]:
        hist = Histograms.empty()
        for img, truth_path, ls in items:
            f, valid = _map_inputs(img, ls, name)
            prob = np.full(valid.shape, INVALID, np.float32)
            prob[valid] = model.predict_proba(f[valid])[:, 1]
            hist.add(prob, read_truth(truth_path))
        return hist.scores(threshold)

    result: dict[str, Any] = {"set": name, "threshold": threshold, "n_train_pixels": int(y.size)}
    result["test"] = scores(p01_days(data, test_days))
    result["agreement"] = {}
    for sub in subphases:
        items = subphase_maps(data, sub) if (data / "mdgm" / "P" / sub).is_dir() else []
        if items:  # a subphase without maps is left out, not scored as 0
            result["agreement"][sub] = scores(items)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def summary_line(result: dict[str, Any]) -> str:
    """``colour: test F1 0.8209 | agreement P05 0.819 P09 0.250 ...`` for one :func:`screen_set` result."""
    agree = " ".join(f"{s} {a['f1']:.3f}" for s, a in result["agreement"].items())
    return f"{result['set']}: test F1 {result['test']['f1']:.4f} | agreement {agree}"


def main(
    data: Path = typer.Option(..., "--data", help="The data root (labels/P01, mdgm/P, reference/P)."),
    sets: str = typer.Option("colour,zonal,local", "--sets", help=f"Comma-separated, of {', '.join(FEATURE_SETS)}."),
    subphases: str = typer.Option(",".join(SUBPHASES), "--subphases", help="Subphases for agreement."),
    samples_per_day: int = typer.Option(60_000, help="Training pixels per labelled day."),
    max_iter: int = typer.Option(120, help="Boosting rounds."),
    seed: int = typer.Option(0),
    out: Optional[Path] = typer.Option(None, "--out", help="Write all results as JSON here."),
) -> None:
    """Fit and score each feature set; one summary line per set."""
    names = [s.strip() for s in sets.split(",") if s.strip()]
    unknown = [n for n in names if n not in FEATURE_SETS]
    if unknown:
        raise typer.BadParameter(f"unknown feature set(s) {', '.join(unknown)}; known: {', '.join(FEATURE_SETS)}")
    subs = tuple(s.strip() for s in subphases.split(",") if s.strip())
    results = []
    for name in names:
        results.append(
            screen_set(data, name, subphases=subs, samples_per_day=samples_per_day, max_iter=max_iter, seed=seed)
        )
        typer.echo(summary_line(results[-1]))
    if out is not None:
        write_text_atomic(out, json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    typer.run(main)
