"""Validation: loss and scores of a model on a run's validation tiles, with the F1-best
threshold on a 0.01 grid, and re-scoring a run's best checkpoint (Keras imported on use)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .checkpoint import BEST, METRICS, RUN, load_model, read_json, write_json
from .config import run_config, run_loss
from .data import grid_tiles
from .samples import collect_samples, load_all, run_inputs

if TYPE_CHECKING:
    from .loss import MaskedWeightedBCE

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.01), 2)
"""Thresholds searched for the F1-best one: 0.05 to 0.95 in steps of 0.01."""


def evaluate_tiles(
    model, images: np.ndarray, targets: np.ndarray, loss: MaskedWeightedBCE, threshold: float, batch_size: int = 4
) -> dict[str, Any]:
    """Loss, metrics at ``threshold``, and the F1-best threshold on the given tiles.

    Returns ``{"loss", "accuracy", "iou", "precision", "recall", "f1", "best_threshold",
    "best_threshold_f1", "at_best_threshold": {the five scores there}}``; pixels with target
    -999 count nowhere.
    """
    from keras import ops

    from .metrics import confusion_counts, scores_from_counts

    losses, counts = [], np.zeros((len(THRESHOLD_GRID), 4), dtype=np.int64)
    at = np.zeros(4, dtype=np.int64)
    for i in range(0, len(images), batch_size):
        p = np.asarray(model.predict(images[i : i + batch_size], verbose=0), dtype=np.float32)
        t = targets[i : i + batch_size]
        losses.append(ops.convert_to_numpy(loss.call(t, p)))
        at += confusion_counts(t, p, threshold)
        valid = t >= 0
        truth, prob = t[valid] > 0.5, p[valid]
        for k, thr in enumerate(THRESHOLD_GRID):
            counts[k] += confusion_counts(truth.astype(np.float32), prob, float(thr))
    f1s = [scores_from_counts(*c)["f1"] for c in counts]
    k = int(np.argmax(f1s))
    return {
        "loss": float(np.concatenate(losses).mean()),
        **scores_from_counts(*at),
        "best_threshold": float(THRESHOLD_GRID[k]),
        "best_threshold_f1": float(f1s[k]),
        "at_best_threshold": scores_from_counts(*counts[k]),
    }


def best_val_record(val: dict[str, Any], threshold: float) -> dict[str, Any]:
    """The ``best_val`` entry of ``state.json`` / ``metrics.json`` from :func:`evaluate_tiles`'s
    result ``val`` at the run's fixed ``threshold``."""
    return {
        "loss": val["loss"],
        "threshold": threshold,
        **{k: val[k] for k in ("accuracy", "iou", "precision", "recall", "f1")},
        "best_threshold": val["best_threshold"],
        "best_threshold_f1": val["best_threshold_f1"],
        "at_best_threshold": val["at_best_threshold"],
    }


def validation_scores(run: Path, model) -> dict[str, Any]:
    """``model`` scored on the validation days of the run in ``run`` (its own ``run.json``), as ``best_val``."""
    cfg = run_config(run)
    _, val_s, _, _ = collect_samples(cfg)
    val_x, val_y = grid_tiles(load_all(val_s, cfg.tile_out, cfg.depth, inputs=run_inputs(cfg)))
    w0 = read_json(run / RUN)["w0"]
    val = evaluate_tiles(model, val_x, val_y, run_loss(cfg, w0), cfg.threshold)
    return best_val_record(val, cfg.threshold)


def revalidate(run: str | Path) -> dict[str, Any]:
    """Re-score a run's ``best.keras`` on its validation days and store the result in ``metrics.json``.

    For runs whose ``metrics.json`` predates the ``at_best_threshold`` scores; uses the run's
    own configuration (``run.json``).  Returns the new ``best_val``.
    """
    run = Path(run)
    metrics = read_json(run / METRICS)
    metrics["best_val"] = validation_scores(run, load_model(run / BEST))
    metrics["threshold"] = metrics["best_val"]["best_threshold"]
    write_json(run / METRICS, metrics)
    return metrics["best_val"]
