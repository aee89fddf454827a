"""Averaging a run's kept epoch weights (stochastic weight averaging), optionally with
BatchNorm statistics recomputed over fresh training batches (Keras imported on use)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .batches import TileBatches
from .checkpoint import LAST, average_weights, epoch_weights, load_model, save_model, write_json
from .config import run_config
from .samples import collect_samples, load_all, run_inputs
from .validation import validation_scores


def average_name(epochs: Sequence[int], bn_batches: int = 0) -> str:
    """File stem of the average of ``epochs``: ``average-018-025`` for a range, else
    ``average-018+020``; ``-bn`` at the end when its BatchNorm statistics were recomputed."""
    ep = sorted(set(epochs))
    if ep == list(range(ep[0], ep[-1] + 1)):
        stem = f"average-{ep[0]:03d}-{ep[-1]:03d}"
    else:
        stem = "average-" + "+".join(f"{e:03d}" for e in ep)
    return stem + ("-bn" if bn_batches else "")


PRECISE_BN_EPOCH = 1_000_000
"""The epoch index whose batches :func:`training_images` draws: one no run reaches, so the
tiles that recompute BatchNorm statistics are fresh draws, reproducible from the run's seed."""


def training_images(run: str | Path, n: int) -> Iterator[np.ndarray]:
    """``n`` augmented training batches (uint8 images only) of the run in ``run``, drawn as its
    training draws them (same maps, reference share, flips, brightness)."""
    cfg = run_config(run)
    train_s, _, _, ref_s = collect_samples(cfg)
    inputs = run_inputs(cfg)
    batches = TileBatches(
        load_all(train_s, cfg.tile_out, cfg.depth, inputs=inputs),
        load_all(ref_s, cfg.tile_out, cfg.depth, inputs=inputs),
        cfg.batch_size,
        n,
        cfg.seed,
        cfg.brightness,
        cfg.reference_weight,
        cfg.reference_fraction,
    )
    return (batches.batch(PRECISE_BN_EPOCH, i)[0] for i in range(n))


def average_epochs(run: str | Path, epochs: Sequence[int], bn_batches: int = 0) -> dict[str, Any]:
    """Average the weights a run kept at the end of ``epochs``; score the mean on its validation days.

    Writes ``RUN/average-A-B.keras`` (the averaged model, exportable like ``best.keras``) and
    ``RUN/average-A-B.json`` (``{"epochs", "best_val", "threshold", "bn_batches"}``, the shape
    of ``metrics.json``, read by ``cm-export``).  Uniform mean of every variable, BatchNorm moving
    statistics included (stochastic weight averaging over a run's last epochs); with
    ``bn_batches`` > 0 the statistics are then recomputed over that many fresh training batches
    (:func:`model.recompute_batchnorm`; the name ends in ``-bn``).  One epoch "averaged" with
    ``bn_batches`` is that epoch's weights with precise statistics.  Returns the JSON.
    """
    from .model import recompute_batchnorm

    run = Path(run)
    if not epochs:
        raise ValueError("no epoch to average")
    model = load_model(run / LAST)
    average_weights(model, [epoch_weights(run, e) for e in sorted(set(epochs))])
    if bn_batches:
        recompute_batchnorm(model, training_images(run, bn_batches))
    best_val = validation_scores(run, model)
    stem = run / average_name(epochs, bn_batches)
    save_model(model, stem.with_suffix(".keras"))
    result = {
        "epochs": sorted(set(epochs)),
        "best_val": best_val,
        "threshold": best_val["best_threshold"],
        "bn_batches": bn_batches,
    }
    write_json(stem.with_suffix(".json"), result)
    return result
