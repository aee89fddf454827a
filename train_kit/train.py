"""The training run behind ``cm-train``: :func:`train` (start or resume a run folder) and the
model it starts from.

A run folder holds the files listed in :mod:`.checkpoint`; restarting the same command on the
same folder resumes from ``last.keras`` (optimizer state included) and keeps the best validation
loss seen so far, so ``best.keras`` is never replaced by a worse model.  Validation runs in the
epoch-end callback (:mod:`.callbacks`, :mod:`.validation`).
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, Callable

from mars_cloudmask.infer.geometry import check_tile_out

from .batches import TileBatches, py_dataset
from .callbacks import progress_bar, run_callback
from .checkpoint import (
    HISTORY,
    LAST,
    METRICS,
    RUN,
    STATE,
    CheckpointError,
    load_model,
    read_json,
    resolve_weights,
    write_json,
)
from .config import LR_SCHEDULES, TrainConfig, check_resumable, run_loss
from .data import grid_tiles, split_record
from .loss import cloudy_fraction
from .metrics import pixel_metrics
from .model import alignment, architecture_of, batchnorm, build_unet, input_channels
from .run_state import RunState, read_state
from .samples import collect_samples, load_all, run_inputs


def initial_model(cfg: TrainConfig):
    """A fresh U-Net of ``cfg``'s width, depth and BatchNorm momentum; with ``cfg.init``, holding
    that model's weights (fine-tuning).  Raises CheckpointError naming the file when its
    architecture differs."""
    n_channels = run_inputs(cfg).spec.n_channels
    model = build_unet(cfg.width, cfg.depth, norm=partial(batchnorm, momentum=cfg.bn_momentum), channels=n_channels)
    if cfg.init:
        source = load_model(cfg.init)
        if architecture_of(source) != (cfg.width, cfg.depth):
            raise CheckpointError(
                f"{resolve_weights(cfg.init)}: width/depth {architecture_of(source)} "
                f"differ from the run's ({cfg.width}, {cfg.depth})"
            )
        if input_channels(source) != n_channels:
            raise CheckpointError(
                f"{resolve_weights(cfg.init)}: {input_channels(source)} input channels, "
                f"the run's --channels {cfg.channels!r} has {n_channels}"
            )
        model.set_weights(source.get_weights())
    return model


def _environment() -> dict[str, Any]:
    import keras

    info = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "command": " ".join(sys.argv),
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return info


def _configure_threads(threads: int) -> None:
    import keras

    if keras.backend.backend() == "tensorflow" and threads > 0:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised in this process
            pass


def _compile(model, cfg: TrainConfig, w0: float) -> None:
    import keras

    model.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss=run_loss(cfg, w0), metrics=pixel_metrics(cfg.threshold))


def check_unvalidated(cfg: TrainConfig) -> None:
    """A run without validation days or subphases (a refit on every labelled day) is allowed only when
    validation would choose nothing: a cosine schedule (no plateau halving) and early-stopping
    patience of at least ``epochs``, so the last epoch is the model.

    Raises:
        ValueError: no validation days, and the schedule or patience would need them.
    """
    if cfg.val_days or cfg.val_subphases:
        return
    if cfg.lr_schedule != "cosine" or cfg.patience < cfg.epochs:
        raise ValueError(
            "--val-days none: without validation days nothing can halve the learning rate or stop early; "
            f"use --lr-schedule cosine and --patience >= --epochs (got {cfg.lr_schedule}, patience "
            f"{cfg.patience}, epochs {cfg.epochs})"
        )


def set_aside(by_subphase: dict[str, dict[str, list[int]]]) -> str:
    """The test days of a :func:`.data.split_record`, for the log: ``test days [18, 19]`` with one
    subphase, ``test days P02 [18], P03 [1, 2]`` with several."""
    if len(by_subphase) == 1:
        return f"test days {next(iter(by_subphase.values()))['test']}"
    tested = [f"{sub} {roles['test']}" for sub, roles in by_subphase.items() if roles["test"]]
    return "test days " + (", ".join(tested) or "[]")


def train(cfg: TrainConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or resume) the run in ``cfg.out``; returns the final ``metrics.json`` content.

    Raises DataError / CheckpointError with the file named before any training step when the
    data or the run folder's checkpoint is unusable, and ValueError when ``cfg`` differs from
    the configuration of the run being resumed.
    """
    import keras

    out = Path(cfg.out)
    try:
        check_tile_out(cfg.tile_out, alignment(cfg.depth))
    except ValueError as exc:
        raise ValueError(f"--tile-out {cfg.tile_out} does not fit --depth {cfg.depth}: {exc}") from None
    check_unvalidated(cfg)
    train_s, val_s, test_s, ref_s = collect_samples(cfg)
    run_inputs(cfg)  # a bad --channels / --background-maps fails before anything is read
    resuming = (out / STATE).is_file()
    if resuming:
        check_resumable(read_json(out / RUN)["config"], cfg, out / RUN)
        state = read_state(out / STATE, cfg.lr)
        if not (out / LAST).is_file():
            raise CheckpointError(f"{out / LAST}: missing, cannot resume the run in {out}")
    else:
        state = RunState(lr=cfg.lr)

    by_subphase = split_record(train_s, val_s, test_s)
    log(
        f"loading {len(train_s)} training, {len(val_s)} validation, {len(ref_s)} reference maps "
        f"({set_aside(by_subphase)} set aside)"
    )
    inputs = run_inputs(cfg)
    train_maps = load_all(train_s, cfg.tile_out, cfg.depth, inputs=inputs)
    val_maps = load_all(val_s, cfg.tile_out, cfg.depth, inputs=inputs)
    ref_maps = load_all(ref_s, cfg.tile_out, cfg.depth, inputs=inputs)
    w0 = cfg.w0 if cfg.w0 is not None else cloudy_fraction(tm.target for tm in train_maps)
    val_x, val_y = grid_tiles(val_maps) if val_maps else (None, None)
    n_grid = sum(len(tm.origins) for tm in train_maps)
    steps = cfg.steps_per_epoch or max(1, math.ceil(n_grid / cfg.batch_size))

    _configure_threads(cfg.threads)
    keras.utils.set_random_seed(cfg.seed)
    if resuming:
        model = load_model(out / LAST, compile=True)
        best = "no validation"
        if val_x is not None:
            best = f"best val loss {state.best_val_loss:.5f} at epoch {state.best_epoch}"
        log(f"resuming {out} after epoch {state.epoch} ({best})")
    else:
        if cfg.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"--lr-schedule {cfg.lr_schedule!r}: expected one of {', '.join(LR_SCHEDULES)}")
        model = initial_model(cfg)
        out.mkdir(parents=True, exist_ok=True)
        _compile(model, cfg, w0)
        write_json(
            out / RUN,
            {
                "config": asdict(cfg),
                "w0": w0,
                "environment": _environment(),
                "data": cfg.data,
                "reference": cfg.reference,
                "reference_weight": cfg.reference_weight if cfg.reference else None,
                "split": {
                    "train": [s.name for s in train_s],
                    "val": [s.name for s in val_s],
                    "test": [s.name for s in test_s],
                    "reference": [s.name for s in ref_s],
                    "subphases": by_subphase,
                },
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
    history = read_json(out / HISTORY) if (out / HISTORY).is_file() and resuming else []
    loss_fn = run_loss(cfg, w0)
    batches = TileBatches(
        train_maps,
        ref_maps,
        cfg.batch_size,
        steps,
        cfg.seed,
        cfg.brightness,
        cfg.reference_weight,
        cfg.reference_fraction,
    )
    log(
        f"w0 {w0:.4f}, {steps} steps of {cfg.batch_size} tiles per epoch, "
        f"{0 if val_x is None else len(val_x)} validation tiles, "
        f"{model.count_params()} parameters, backend {keras.backend.backend()}"
    )

    callback = run_callback(cfg, out, state, history, val_x, val_y, loss_fn, log)
    if state.epoch >= cfg.epochs or state.stopped:
        log(f"{out}: nothing to do (epoch {state.epoch} of {cfg.epochs}, stopped={state.stopped})")
    else:
        model.optimizer.learning_rate.assign(state.lr)
        model.fit(
            py_dataset(batches, state.epoch),
            epochs=cfg.epochs,
            initial_epoch=state.epoch,
            callbacks=[progress_bar(steps), callback],
            verbose=0,
            shuffle=False,
        )
    return read_json(out / METRICS) if (out / METRICS).is_file() else {}
