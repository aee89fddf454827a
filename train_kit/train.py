"""Training a cloud-mask U-Net: data split by day, checkpoints, early stopping, resume.

:func:`train` is the library entry point behind ``cm-train``.  A run folder holds the files
listed in :mod:`.checkpoint`; restarting the same command on the same folder resumes from
``last.keras`` (optimizer state included) and keeps the best validation loss seen so far, so
``best.keras`` is never replaced by a worse model.  Validation runs in the epoch-end callback
(one prediction pass over the validation days' seamless tiles, each box pixel once): loss,
metrics at the threshold, and the threshold maximising F1 on those days.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from mars_cloudmask.infer.atomic import atomic_path
from mars_cloudmask.infer.contract import DEFAULT_TILE_OUT
from mars_cloudmask.infer.geometry import check_tile_out

from .checkpoint import (
    BEST,
    CURVES,
    HISTORY,
    LAST,
    METRICS,
    RUN,
    STATE,
    CheckpointError,
    average_weights,
    epoch_weights,
    load_model,
    read_json,
    resolve_weights,
    save_model,
    save_weights,
    write_json,
)
from .data import (
    DataError,
    InputFn,
    Sample,
    TiledMap,
    augment,
    day_number,
    grid_tiles,
    load_sample,
    random_tile,
    scan_labelled,
    scan_reference,
    split_by_day,
)
from .inputs import ChannelInputs
from .loss import MaskedWeightedBCE, cloudy_fraction
from .metrics import DEFAULT_THRESHOLD, confusion_counts, pixel_metrics, scores_from_counts
from .model import (DEFAULT_BN_MOMENTUM, alignment, architecture_of, batchnorm, build_unet, input_channels, margin,
                    recompute_batchnorm)

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.01), 2)


@dataclass
class TrainConfig:
    """Everything that defines a run (stored in ``run.json``; a resumed run must match it)."""

    data: list[str]
    out: str
    val_days: list[int]
    test_days: list[int] = field(default_factory=list)
    epochs: int = 50
    batch_size: int = 8
    steps_per_epoch: int | None = None
    seed: int = 0
    width: int = 8
    depth: int = 4
    lr: float = 1e-3
    lr_patience: int = 2
    w0: float | None = None
    dice_weight: float = 0.0
    focal_gamma: float = 0.0
    """Focal factor ``(1 - p_t) ** focal_gamma`` on each pixel's BCE (0: plain BCE)."""
    edge_weight: float = 1.0
    """BCE weight multiplier of pixels within ``edge_radius`` px of a labelled cloud edge."""
    edge_radius: int = 1
    patience: int = 5
    tile_out: int = DEFAULT_TILE_OUT
    brightness: float = 0.0
    reference: list[str] = field(default_factory=list)
    mdgm: str | None = None
    reference_weight: float = 0.3
    reference_fraction: float = 0.25
    threshold: float = DEFAULT_THRESHOLD
    threads: int = 2
    bn_momentum: float = DEFAULT_BN_MOMENTUM
    keep_epochs: bool = True
    init: str | None = None
    """Start from this model's weights (a ``.keras`` file or a run folder) instead of random ones."""
    lr_schedule: str = "plateau"
    """``plateau``: halve the LR after ``lr_patience`` flat epochs; ``cosine``: ``lr`` decays to 0
    along half a cosine over ``epochs`` (set per epoch, so ``epochs`` is part of the run)."""
    channels: str = "rgb"
    """Input channel spec (:mod:`mars_cloudmask.infer.channels`): ``rgb`` or e.g. ``rgb,bdiff10,bdiff50``."""
    background_maps: list[str] = field(default_factory=list)
    """Maps (files or folders) whose composite is the labelled days' background (channels that need one)."""
    background_subset: int = 0
    """0: every labelled day takes the composite of all ``background_maps``; N: of its own random N of them."""


LR_SCHEDULES = ("plateau", "cosine")


def scheduled_lr(cfg: TrainConfig, epoch: int, current: float) -> float:
    """Learning rate for ``epoch`` (0-based): the cosine schedule's, or ``current`` (plateau halving
    happens at the end of an epoch, in the run's callback)."""
    if cfg.lr_schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / cfg.epochs))
    return current


def run_loss(cfg: TrainConfig, w0: float) -> MaskedWeightedBCE:
    """The loss a run of ``cfg`` trains and validates with (``w0``: its clear-pixel weight)."""
    return MaskedWeightedBCE(w0, cfg.dice_weight, focal_gamma=cfg.focal_gamma,
                             edge_weight=cfg.edge_weight, edge_radius=cfg.edge_radius)


def initial_model(cfg: TrainConfig):
    """A fresh U-Net of ``cfg``'s width, depth and BatchNorm momentum; with ``cfg.init``, holding
    that model's weights (fine-tuning).  Raises CheckpointError naming the file when its
    architecture differs."""
    n_channels = run_inputs(cfg).spec.n_channels
    model = build_unet(cfg.width, cfg.depth, norm=partial(batchnorm, momentum=cfg.bn_momentum), channels=n_channels)
    if cfg.init:
        source = load_model(cfg.init)
        if architecture_of(source) != (cfg.width, cfg.depth):
            raise CheckpointError(f"{resolve_weights(cfg.init)}: width/depth {architecture_of(source)} "
                                  f"differ from the run's ({cfg.width}, {cfg.depth})")
        if input_channels(source) != n_channels:
            raise CheckpointError(f"{resolve_weights(cfg.init)}: {input_channels(source)} input channels, "
                                  f"the run's --channels {cfg.channels!r} has {n_channels}")
        model.set_weights(source.get_weights())
    return model


# --------------------------------------------------------------------------- data
def run_inputs(cfg: TrainConfig) -> ChannelInputs:
    """The model-input builder of ``cfg`` (its channel spec and background maps); DataError if unusable."""
    return ChannelInputs(cfg.channels, cfg.background_maps, cfg.background_subset, cfg.seed)


def collect_samples(cfg: TrainConfig) -> tuple[list[Sample], list[Sample], list[Sample], list[Sample]]:
    """``(train, val, test, reference)`` samples; test days are set aside and never loaded.

    Raises DataError (naming the file) for any inconsistent folder before anything is read.
    """
    labelled: list[Sample] = []
    for folder in cfg.data:
        labelled.extend(scan_labelled(folder))
    if not labelled:
        raise DataError(f"{', '.join(cfg.data)}: no labelled day found")
    rest, test = split_by_day(labelled, cfg.test_days)
    train, val = split_by_day(rest, cfg.val_days)
    if not val:
        raise DataError(f"none of the validation days {cfg.val_days} is in {', '.join(cfg.data)}")
    if not train:
        raise DataError(f"no training day left in {', '.join(cfg.data)} after taking out validation/test days")
    reference: list[Sample] = []
    for folder in cfg.reference:
        if cfg.mdgm is None:
            raise DataError("--reference needs --mdgm (the root of the maps the reference masks were made from)")
        reference.extend(scan_reference(cfg.mdgm, folder))
    return train, val, test, reference


def load_all(samples: Sequence[Sample], tile_out: int, depth: int = 4,
             progress: Callable[[str], None] | None = None, inputs: InputFn | None = None) -> list[TiledMap]:
    """Read and tile every sample for a net of this depth (checks every file: errors name it);
    ``inputs`` adds the run's extra channels (RGB alone when None)."""
    maps = []
    for s in samples:
        if progress:
            progress(s.name)
        maps.append(load_sample(s, tile_out, margin(depth), alignment(depth), inputs))
    return maps


class TileBatches:
    """Random augmented training batches: ``(images uint8, targets float32, sample weights)``.

    Each batch draws maps uniformly, a random tile origin in each, one of the four flips and
    (optionally) a brightness factor in ``1 +- brightness``; a ``reference_fraction`` of the
    batch comes from reference maps (weight ``reference_weight``) when there are any.  Batch
    ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)`` and ``fit`` takes them in order
    (``shuffle=False``; Keras' own shuffling draws from a global RNG whose state a resumed run
    does not have): a resumed run is the same run, step for step.
    """

    def __init__(self, maps: Sequence[TiledMap], reference: Sequence[TiledMap], batch_size: int, steps: int,
                 seed: int, brightness: float = 0.0, reference_weight: float = 0.3, reference_fraction: float = 0.25):
        self.maps, self.reference = list(maps), list(reference)
        self.batch_size, self.steps, self.seed = batch_size, steps, seed
        self.brightness = brightness
        self.reference_weight, self.reference_fraction = reference_weight, reference_fraction
        self.epoch = 0

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch, index])
        n_ref = int(round(self.batch_size * self.reference_fraction)) if self.reference else 0
        images, targets, weights = [], [], []
        for k in range(self.batch_size):
            ref = k < n_ref
            pool = self.reference if ref else self.maps
            tm = pool[int(rng.integers(len(pool)))]
            img, t = random_tile(tm, rng)
            b = 1.0 + rng.uniform(-self.brightness, self.brightness) if self.brightness else 1.0
            img, t = augment(img, t, int(rng.integers(4)), b)
            images.append(img)
            targets.append(t)
            weights.append(self.reference_weight if ref else 1.0)
        return np.stack(images), np.stack(targets)[..., None], np.asarray(weights, dtype=np.float32)


def _py_dataset(batches: TileBatches, start_epoch: int):
    """Wrap :class:`TileBatches` as a keras PyDataset (works with every backend)."""
    import keras

    class _Dataset(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = start_epoch

        def __len__(self) -> int:
            return batches.steps

        def __getitem__(self, index: int):
            return batches.batch(self.epoch, index)

        def on_epoch_end(self) -> None:
            self.epoch += 1

    return _Dataset()


# --------------------------------------------------------------------------- validation
def evaluate_tiles(model, images: np.ndarray, targets: np.ndarray, loss: MaskedWeightedBCE,
                   threshold: float, batch_size: int = 4) -> dict[str, Any]:
    """Loss, metrics at ``threshold``, and the F1-best threshold on the given tiles.

    Returns ``{"loss", "accuracy", "iou", "precision", "recall", "f1", "best_threshold",
    "best_threshold_f1", "at_best_threshold": {the five scores there}}``; pixels with target
    -999 count nowhere.
    """
    from keras import ops

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
    return {"loss": float(np.concatenate(losses).mean()), **scores_from_counts(*at),
            "best_threshold": float(THRESHOLD_GRID[k]), "best_threshold_f1": float(f1s[k]),
            "at_best_threshold": scores_from_counts(*counts[k])}


def run_config(run: str | Path) -> TrainConfig:
    """The configuration a run was made with (its ``run.json``)."""
    return TrainConfig(**read_json(Path(run) / RUN)["config"])


def _validation_scores(run: Path, model) -> dict[str, Any]:
    """``model`` scored on the validation days of the run in ``run`` (its own ``run.json``), as ``best_val``."""
    cfg = run_config(run)
    _, val_s, _, _ = collect_samples(cfg)
    val_x, val_y = grid_tiles(load_all(val_s, cfg.tile_out, cfg.depth, inputs=run_inputs(cfg)))
    w0 = read_json(run / RUN)["w0"]
    val = evaluate_tiles(model, val_x, val_y, run_loss(cfg, w0), cfg.threshold)
    return {"loss": val["loss"], "threshold": cfg.threshold,
            **{k: val[k] for k in ("accuracy", "iou", "precision", "recall", "f1")},
            "best_threshold": val["best_threshold"], "best_threshold_f1": val["best_threshold_f1"],
            "at_best_threshold": val["at_best_threshold"]}


def revalidate(run: str | Path) -> dict[str, Any]:
    """Re-score a run's ``best.keras`` on its validation days and store the result in ``metrics.json``.

    For runs whose ``metrics.json`` predates the ``at_best_threshold`` scores; uses the run's
    own configuration (``run.json``).  Returns the new ``best_val``.
    """
    run = Path(run)
    metrics = read_json(run / METRICS)
    metrics["best_val"] = _validation_scores(run, load_model(run / BEST))
    metrics["threshold"] = metrics["best_val"]["best_threshold"]
    write_json(run / METRICS, metrics)
    return metrics["best_val"]


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
    batches = TileBatches(load_all(train_s, cfg.tile_out, cfg.depth, inputs=inputs),
                          load_all(ref_s, cfg.tile_out, cfg.depth, inputs=inputs), cfg.batch_size, n,
                          cfg.seed, cfg.brightness, cfg.reference_weight, cfg.reference_fraction)
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
    run = Path(run)
    if not epochs:
        raise ValueError("no epoch to average")
    model = load_model(run / LAST)
    average_weights(model, [epoch_weights(run, e) for e in sorted(set(epochs))])
    if bn_batches:
        recompute_batchnorm(model, training_images(run, bn_batches))
    best_val = _validation_scores(run, model)
    stem = run / average_name(epochs, bn_batches)
    save_model(model, stem.with_suffix(".keras"))
    result = {"epochs": sorted(set(epochs)), "best_val": best_val, "threshold": best_val["best_threshold"],
              "bn_batches": bn_batches}
    write_json(stem.with_suffix(".json"), result)
    return result


# --------------------------------------------------------------------------- the run
def _plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [h["loss"] for h in history], label="train loss")
    a.plot(epochs, [h["val_loss"] for h in history], label="val loss")
    a.set_xlabel("epoch"); a.set_ylabel("loss (masked weighted BCE + Dice term)"); a.legend(); a.grid(alpha=0.3)
    for key, style, label in (("val_f1", "-", "val F1 at the fixed threshold"),
                              ("val_best_threshold_f1", "--", "val F1 at its best threshold"),
                              ("val_iou", ":", "val IoU at the fixed threshold")):
        b.plot(epochs, [h[key] for h in history], style, label=label)
    b.set_xlabel("epoch"); b.set_ylabel("validation score"); b.legend(); b.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _environment() -> dict[str, Any]:
    import keras

    info = {"python": platform.python_version(), "keras": keras.__version__, "backend": keras.backend.backend(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "command": " ".join(sys.argv)}
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

    model.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss=run_loss(cfg, w0),
                  metrics=pixel_metrics(cfg.threshold))


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
    train_s, val_s, test_s, ref_s = collect_samples(cfg)
    run_inputs(cfg)  # a bad --channels / --background-maps fails before anything is read
    resuming = (out / STATE).is_file()
    if resuming:
        # settings an older run did not record take their defaults
        previous = {**asdict(TrainConfig(data=[], out="", val_days=[])), **read_json(out / RUN)["config"]}
        free = ("out", "threads", "keep_epochs") + (("epochs",) if cfg.lr_schedule != "cosine" else ())
        changed = {k: (previous[k], v) for k, v in asdict(cfg).items() if k not in free and previous[k] != v}
        if changed:
            raise ValueError(f"{out / RUN}: the run was started with other settings: "
                             + ", ".join(f"{k}={a!r} (now {b!r})" for k, (a, b) in changed.items()))
        state = read_json(out / STATE)
        if not (out / LAST).is_file():
            raise CheckpointError(f"{out / LAST}: missing, cannot resume the run in {out}")
    else:
        state = {"epoch": 0, "best_val_loss": math.inf, "best_epoch": 0, "wait": 0, "lr_wait": 0,
                 "lr": cfg.lr, "wall_seconds": 0.0}

    log(f"loading {len(train_s)} training, {len(val_s)} validation, {len(ref_s)} reference maps "
        f"(test days {sorted(day_number(s.name) for s in test_s)} set aside)")
    inputs = run_inputs(cfg)
    train_maps = load_all(train_s, cfg.tile_out, cfg.depth, inputs=inputs)
    val_maps = load_all(val_s, cfg.tile_out, cfg.depth, inputs=inputs)
    ref_maps = load_all(ref_s, cfg.tile_out, cfg.depth, inputs=inputs)
    w0 = cfg.w0 if cfg.w0 is not None else cloudy_fraction(tm.target for tm in train_maps)
    val_x, val_y = grid_tiles(val_maps)
    n_grid = sum(len(tm.origins) for tm in train_maps)
    steps = cfg.steps_per_epoch or max(1, math.ceil(n_grid / cfg.batch_size))

    _configure_threads(cfg.threads)
    keras.utils.set_random_seed(cfg.seed)
    if resuming:
        model = load_model(out / LAST, compile=True)
        log(f"resuming {out} after epoch {state['epoch']} (best val loss {state['best_val_loss']:.5f} "
            f"at epoch {state['best_epoch']})")
    else:
        if cfg.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"--lr-schedule {cfg.lr_schedule!r}: expected one of {', '.join(LR_SCHEDULES)}")
        model = initial_model(cfg)
        out.mkdir(parents=True, exist_ok=True)
        _compile(model, cfg, w0)
        write_json(out / RUN, {"config": asdict(cfg), "w0": w0, "environment": _environment(),
                               "data": cfg.data, "reference": cfg.reference,
                               "reference_weight": cfg.reference_weight if cfg.reference else None,
                               "split": {"train": [s.name for s in train_s], "val": [s.name for s in val_s],
                                         "test": [s.name for s in test_s],
                                         "reference": [s.name for s in ref_s]},
                               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    history = read_json(out / HISTORY) if (out / HISTORY).is_file() and resuming else []
    loss_fn = run_loss(cfg, w0)
    batches = TileBatches(train_maps, ref_maps, cfg.batch_size, steps, cfg.seed, cfg.brightness,
                          cfg.reference_weight, cfg.reference_fraction)
    log(f"w0 {w0:.4f}, {steps} steps of {cfg.batch_size} tiles per epoch, {len(val_x)} validation tiles, "
        f"{model.count_params()} parameters, backend {keras.backend.backend()}")

    callback = _RunCallback(cfg, out, state, history, val_x, val_y, loss_fn, log)
    if state["epoch"] >= cfg.epochs or state.get("stopped"):
        log(f"{out}: nothing to do (epoch {state['epoch']} of {cfg.epochs}, stopped={bool(state.get('stopped'))})")
    else:
        model.optimizer.learning_rate.assign(state["lr"])
        model.fit(_py_dataset(batches, state["epoch"]), epochs=cfg.epochs, initial_epoch=state["epoch"],
                  callbacks=[_RichProgress(steps), callback], verbose=0, shuffle=False)
    return read_json(out / METRICS) if (out / METRICS).is_file() else {}


def _callback_base():
    import keras

    return keras.callbacks.Callback


class _RunCallback(_callback_base()):
    """End of epoch: validate, checkpoint (last always, best only if better), early stop, LR halving."""

    def __init__(self, cfg, out, state, history, val_x, val_y, loss_fn, log):
        super().__init__()
        self.cfg, self.out, self.state, self.history = cfg, out, state, history
        self.val_x, self.val_y, self.loss_fn, self.log = val_x, val_y, loss_fn, log
        self.t0 = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.time()
        self.state["lr"] = scheduled_lr(self.cfg, epoch, float(self.state["lr"]))
        self.model.optimizer.learning_rate.assign(self.state["lr"])

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        val = evaluate_tiles(self.model, self.val_x, self.val_y, self.loss_fn, self.cfg.threshold)
        st = self.state
        seconds = time.time() - self.t0
        st["wall_seconds"] = st.get("wall_seconds", 0.0) + seconds
        record = {"epoch": epoch + 1, "seconds": round(seconds, 1), "lr": float(st["lr"]),
                  **{k: float(v) for k, v in logs.items()},
                  **{f"val_{k}": v for k, v in val.items() if k != "at_best_threshold"}}
        improved = val["loss"] < st["best_val_loss"]
        save_model(self.model, self.out / LAST)
        if self.cfg.keep_epochs:
            save_weights(self.model, epoch_weights(self.out, epoch + 1))
        if improved:
            save_model(self.model, self.out / BEST)
            st.update(best_val_loss=val["loss"], best_epoch=epoch + 1, wait=0, lr_wait=0,
                      best_val={"loss": val["loss"], "threshold": self.cfg.threshold,
                                **{k: val[k] for k in ("accuracy", "iou", "precision", "recall", "f1")},
                                "best_threshold": val["best_threshold"], "best_threshold_f1": val["best_threshold_f1"],
                                "at_best_threshold": val["at_best_threshold"]})
        else:
            st["wait"] += 1
            st["lr_wait"] += 1
            if self.cfg.lr_schedule == "plateau" and self.cfg.lr_patience and st["lr_wait"] >= self.cfg.lr_patience:
                st["lr"] = float(st["lr"]) / 2
                st["lr_wait"] = 0
                self.model.optimizer.learning_rate.assign(st["lr"])
        st["epoch"] = epoch + 1
        if st["wait"] >= self.cfg.patience:
            st["stopped"] = True
            self.model.stop_training = True
        self.history.append(record)
        write_json(self.out / HISTORY, self.history)
        write_json(self.out / STATE, st)
        best = st.get("best_val", {})
        write_json(self.out / METRICS, {
            "best_epoch": st["best_epoch"], "epochs_run": st["epoch"], "stopped_early": bool(st.get("stopped")),
            "threshold": best.get("best_threshold"), "best_val": best, "wall_seconds": round(st["wall_seconds"], 1),
            "last": record})
        _plot_curves(self.history, self.out / CURVES)
        self.log(f"epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.4f} val_loss {val['loss']:.4f} "
                 f"val_f1@{self.cfg.threshold:g} {val['f1']:.4f} best-threshold {val['best_threshold']:.2f} "
                 f"f1 {val['best_threshold_f1']:.4f} ({seconds:.0f} s){' *best*' if improved else ''}"
                 f"{' early stop' if st.get('stopped') else ''}")


class _RichProgress(_callback_base()):
    """A rich progress bar per epoch (steps, loss)."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps
        self.progress = None

    def on_epoch_begin(self, epoch, logs=None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn(f"epoch {epoch + 1}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)
        self.progress.start()
        self.task = self.progress.add_task("train", total=self.steps, info="")

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        self.progress.update(self.task, advance=1, info=f"loss {float(loss):.4f}" if loss is not None else "")

    def on_epoch_end(self, epoch, logs=None):
        if self.progress is not None:
            self.progress.stop()
