"""Whole-map scores of a trained model, for comparing training arms (issue 21).

For one model (a run's Keras checkpoint, with the run's input channels; or an RGB ONNX file):

- validation F1 on P01 days 16-17 (maps of ``mdgm/P/P01``, labels of ``labels/P01``) and the
  F1-best threshold there (0.01 grid, 0.05-0.95),
- test F1 on days 18-20 at that threshold (the test days choose nothing),
- agreement F1 with the original model's masks (``reference/``) on the maps of every unseen
  subphase in ``mdgm/``, with both sides' cloud fractions.

Maps are predicted like ``cm-infer`` does (the shared seamless tile plan of
:mod:`mars_cloudmask.infer.geometry`, box from Ls with the polar offset, invalid pixels out),
but the net runs in Keras so that models with extra channels can be scored before the runtime
feeds them.  Scores pool the pixels of the days, valid in both masks, like ``cm-eval``.
Probabilities are binned to 1/1000 for the threshold search (a pixel within 0.001 of the
threshold may fall on the other side).  All arrays north-up.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import typer

from mars_cloudmask.infer.atomic import write_text_atomic
from mars_cloudmask.infer.contract import DEFAULT_TILE_OUT
from mars_cloudmask.infer.geometry import (
    INVALID,
    bounds_from_ls,
    build_canvas,
    data_columns,
    plan_tiles,
    tile_input,
    valid_pixels,
)
from mars_cloudmask.infer.maps import read_ls_table, read_map

from .tf_logs import start_tensorflow

BINS = 1000
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 2)
DEFAULT_POLAR_OFFSET = -3.0  # the shipped models' offset (models/README.md, "Polar offset")
TILE_OUT = DEFAULT_TILE_OUT


@dataclass
class Histograms:
    """Pooled counts of probabilities (1/1000 bins) over pixels that the truth calls cloud / clear."""

    cloud: np.ndarray
    clear: np.ndarray

    @classmethod
    def empty(cls) -> "Histograms":
        return cls(np.zeros(BINS + 1, np.int64), np.zeros(BINS + 1, np.int64))

    def add(self, prob: np.ndarray, truth: np.ndarray) -> None:
        """Add the pixels where both ``prob`` (-999 invalid) and ``truth`` (< 0 invalid, > 0 cloud) are valid."""
        ok = (prob > INVALID + 0.5) & (truth >= 0)
        q = np.clip(np.floor(prob[ok] * BINS + 1e-6), 0, BINS).astype(np.int64)
        cloudy = truth[ok] > 0
        self.cloud += np.bincount(q[cloudy], minlength=BINS + 1)
        self.clear += np.bincount(q[~cloudy], minlength=BINS + 1)

    def scores(self, threshold: float) -> dict[str, float]:
        """F1, precision, recall and both cloud fractions when ``prob >= threshold`` is cloud."""
        k = int(round(threshold * BINS))
        tp, fp = int(self.cloud[k:].sum()), int(self.clear[k:].sum())
        fn, tn = int(self.cloud[:k].sum()), int(self.clear[:k].sum())
        n = tp + fp + fn + tn
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        return {
            "f1": round(f1, 4),
            "precision": round(prec, 4),
            "recall": round(rec, 4),
            "pred_cloud_fraction": round((tp + fp) / n, 5) if n else 0.0,
            "truth_cloud_fraction": round((tp + fn) / n, 5) if n else 0.0,
            "pixels": n,
        }

    def best_threshold(self, grid: Sequence[float] = THRESHOLDS) -> float:
        f1s = [self.scores(float(t))["f1"] for t in grid]
        return float(grid[int(np.argmax(f1s))])


TileFn = Callable[[np.ndarray], np.ndarray]
"""uint8 ``(N, tile_in, tile_in, C)`` -> float32 ``(N, tile_out, tile_out)`` or ``(..., 1)``."""


def predict_map(
    image: np.ndarray,
    ls: float,
    run_tiles: TileFn,
    margin: int,
    align: int,
    polar_offset: float = DEFAULT_POLAR_OFFSET,
    tile_out: int = TILE_OUT,
) -> np.ndarray:
    """Cloud probability of one map: float32 (1801, 3600) north-up, -999 outside the Ls box and
    on invalid pixels.  ``image``: uint8 (1801, 3600, C), RGB first (validity from the RGB)."""
    rgb = image[..., :3]
    out = np.full(rgb.shape[:2], INVALID, np.float32)
    if data_columns(rgb) is None:
        return out
    bounds = bounds_from_ls(rgb, ls, polar_offset)
    plan = plan_tiles(bounds, "seamless", tile_out, margin, align)
    canvas = build_canvas(image, plan)
    box = np.full((bounds.height, bounds.width), INVALID, np.float32)
    for y, x in plan.origins():
        pred = np.asarray(run_tiles(tile_input(canvas, plan, int(y), int(x))[None]), np.float32)
        pred = pred.reshape(tile_out, tile_out)
        r1, c1 = min(int(y) + tile_out, bounds.height), min(int(x) + tile_out, bounds.width)
        box[int(y) : r1, int(x) : c1] = pred[: r1 - int(y), : c1 - int(x)]
    out[bounds.ymin : bounds.ymax, bounds.xmin : bounds.xmax] = box
    out[~valid_pixels(rgb, bounds)] = INVALID
    return out


def read_truth(path: Path) -> np.ndarray:
    """A label or reference mask as float32 north-up: -999 invalid, 0 clear, > 0 cloud."""
    from mars_cloudmask.infer.netcdf import read_mask

    return np.asarray(read_mask(path), np.float32)


@dataclass
class Scorer:
    """A model as the evaluation needs it: tiles in, probabilities out, plus its input builder.

    ``inputs(path, rgb, kind, ls)`` turns a map into the model's input (``kind``: ``"label"`` for
    a P01 labelled day, ``"mdgm"`` for a map of a subphase folder, whose maps a background
    channel then uses; ``ls``: the map's solar longitude, deg).
    """

    run_tiles: TileFn
    margin: int
    align: int
    inputs: Callable[[Path, np.ndarray, str, float], np.ndarray]
    name: str


def keras_scorer(model_path: str | Path, run: str | Path | None = None, background_subset: int = 0) -> Scorer:
    """A Keras checkpoint, with the channel spec and background maps of its run (``run.json``;
    RGB alone for a file outside a run folder).

    P01 days take the composite of all the run's background maps (``background_subset`` 0,
    whatever the run trained with), or of a random ``background_subset`` of them per day.
    """
    from .checkpoint import load_model
    from .config import run_config
    from .data import Sample
    from .inputs import ChannelInputs
    from .model import alignment, architecture_of, margin

    model = load_model(model_path)
    _, depth = architecture_of(model)
    run = Path(run) if run is not None else Path(model_path).parent
    if (run / "run.json").is_file():
        cfg = run_config(run)
        builder = ChannelInputs(cfg.channels, cfg.background_maps, background_subset, cfg.seed)
    else:  # a model outside a run folder (models/cloudmask-unet.keras): RGB only
        builder = ChannelInputs("rgb")

    def inputs(path: Path, rgb: np.ndarray, kind: str, ls: float) -> np.ndarray:
        sample = Sample(path.stem, path, path, ls, "label" if kind == "label" else "reference")
        return builder(sample, rgb)

    return Scorer(
        lambda t: model.predict(t, verbose=0),
        margin(depth),
        alignment(depth),
        inputs,
        f"{model_path} ({builder.spec.text})",
    )


def onnx_scorer(path: str | Path, threads: int = 2) -> Scorer:
    """An RGB ONNX model of ``cm-export`` (e.g. models/cloudmask-unet-w8.onnx), through the runtime."""
    from mars_cloudmask.infer.runtime import load_model

    model = load_model(path, threads=threads)
    return Scorer(model.run, model.info.margin, model.info.align, lambda p, rgb, k, ls: rgb, str(path))


def p01_days(data: Path, days: Sequence[int]) -> list[tuple[Path, Path, float]]:
    """``(map, label, Ls)`` of P01 days: the maps of ``mdgm/P/P01`` (what ``cm-infer`` is run on
    for the model card), the labels of ``labels/P01``."""
    maps, labels = data / "mdgm" / "P" / "P01", data / "labels" / "P01"
    table = read_ls_table(maps / "P01_ls.txt")
    out = []
    for d in days:
        name = f"P01_day{d:02d}"
        truth = labels / "cloudmask" / f"cloudmask_P01day{d:02d}.ncdf"
        out.append((maps / f"{name}_zequat.jpg", truth, table[name].ls))
    return out


def subphase_maps(data: Path, sub: str) -> list[tuple[Path, Path, float]]:
    """``(map, original's mask, Ls)`` of each map of ``mdgm/P/<sub>`` that has a mask in ``reference/P/<sub>``."""
    folder = data / "mdgm" / "P" / sub
    table = read_ls_table(folder / f"{sub}_ls.txt")
    out = []
    for img in sorted(folder.glob("*_zequat.jpg")):
        name = img.name[: -len("_zequat.jpg")]
        ref = data / "reference" / "P" / sub / f"cloudmask_{name}.ncdf"
        if ref.is_file() and name in table:
            out.append((img, ref, table[name].ls))
    return out


def _histograms(
    scorer: Scorer,
    items: Sequence[tuple[Path, Path, float]],
    kind: str,
    polar_offset: float,
    per_day: dict[str, Histograms] | None = None,
) -> Histograms:
    hist = Histograms.empty()
    for img, truth_path, ls in items:
        rgb = read_map(img)
        image = scorer.inputs(img, rgb, kind, ls)
        prob = predict_map(image, ls, scorer.run_tiles, scorer.margin, scorer.align, polar_offset)
        truth = read_truth(truth_path)
        hist.add(prob, truth)
        if per_day is not None:
            h = Histograms.empty()
            h.add(prob, truth)
            per_day[img.stem] = h
    return hist


def evaluate_model(
    scorer: Scorer,
    data: str | Path,
    val_days: Sequence[int] = (16, 17),
    test_days: Sequence[int] = (18, 19, 20),
    subphases: Sequence[str] | None = None,
    polar_offset: float = DEFAULT_POLAR_OFFSET,
    threshold: float | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Validation F1 and threshold, test F1 at it, agreement per unseen subphase (see the module doc).

    ``threshold``: score everything at this one instead of the validation days' F1-best.
    """
    data = Path(data)
    val = _histograms(scorer, p01_days(data, val_days), "label", polar_offset)
    chosen = val.best_threshold()
    threshold = chosen if threshold is None else threshold
    per_day: dict[str, Histograms] = {}
    test = _histograms(scorer, p01_days(data, test_days), "label", polar_offset, per_day)
    result: dict[str, Any] = {
        "model": scorer.name,
        "threshold": threshold,
        "val_best_threshold": chosen,
        "polar_offset": polar_offset,
        "val": {"days": list(val_days), **val.scores(threshold)},
        "test": {
            "days": list(test_days),
            **test.scores(threshold),
            "per_day": {k: h.scores(threshold)["f1"] for k, h in per_day.items()},
        },
        "agreement": {},
    }
    log(f"val F1 {result['val']['f1']:.4f} at {threshold:.2f}; test F1 {result['test']['f1']:.4f}")
    if subphases is None:
        subphases = sorted(p.name for p in (data / "mdgm" / "P").iterdir() if p.is_dir() and p.name != "P01")
    for sub in subphases:
        items = subphase_maps(data, sub)
        if not items:
            continue
        s = _histograms(scorer, items, "mdgm", polar_offset).scores(threshold)
        result["agreement"][sub] = {"maps": len(items), **s}
        log(
            f"{sub}: agreement F1 {s['f1']:.3f}, cloud fraction {s['pred_cloud_fraction']:.4f} "
            f"(original {s['truth_cloud_fraction']:.4f})"
        )
    f1s = [a["f1"] for a in result["agreement"].values()]
    result["agreement_median"] = round(float(np.median(f1s)), 4) if f1s else math.nan
    return result


def write_result(result: dict[str, Any], path: str | Path) -> Path:
    """Write an :func:`evaluate_model` result as JSON (atomically)."""
    return write_text_atomic(Path(path), json.dumps(result, indent=2) + "\n")


# --------------------------------------------------------------------------- command line
evaluate_app = typer.Typer(
    add_completion=False, help=("Score a model on whole maps: validation, test, agreement per subphase.")
)


@evaluate_app.command()
def evaluate_command(
    model: Path = typer.Argument(
        ..., help=("A run folder (its last.keras), a .keras checkpoint inside a run folder, or an RGB .onnx file.")
    ),
    data: Path = typer.Option(..., "--data", help="The data root (labels/P01, mdgm/P, reference/P)."),
    out: Path = typer.Option(..., "--out", help="JSON file for the scores."),
    subphases: str = typer.Option(
        "", "--subphases", help=("Comma-separated subphases for agreement (default: every one in mdgm/P but P01).")
    ),
    polar_offset: float = typer.Option(
        -3.0, "--polar-offset", help=("Polar bounds offset (deg), as the shipped models.")
    ),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", help=("Score at this threshold (default: the validation days' F1-best, 0.01 grid).")
    ),
    background_subset: int = typer.Option(
        0,
        "--background-subset",
        help=(
            "P01 days' background from a random N of the run's background maps per day (0: all of them); "
            "F1 against the composite's size."
        ),
    ),
) -> None:
    """Validation F1 (days 16-17) and its best threshold, test F1 (18-20) at it, agreement with reference/."""
    start_tensorflow("python -m mars_cloudmask.train_kit.evaluate")
    from rich.console import Console

    console = Console(stderr=True, width=200)
    if model.suffix == ".onnx":
        scorer = onnx_scorer(model)
    else:
        path = model / "last.keras" if model.is_dir() else model
        scorer = keras_scorer(path, path.parent, background_subset)
    subs = [s.strip() for s in subphases.split(",") if s.strip()] or None
    result = evaluate_model(
        scorer,
        data,
        subphases=subs,
        polar_offset=polar_offset,
        threshold=threshold,
        log=lambda msg: console.print(msg, highlight=False),
    )
    write_result(result, out)
    console.print(f"{out}: agreement median {result['agreement_median']}", highlight=False)


if __name__ == "__main__":  # python -m mars_cloudmask.train_kit.evaluate --help
    evaluate_app()
