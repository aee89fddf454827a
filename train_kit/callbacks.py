"""The Keras callbacks of a run, built on first use so that importing this module does not
import Keras: the end-of-epoch bookkeeping (validate, checkpoint, state, metrics, curves) and a
per-epoch progress bar."""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .checkpoint import BEST, CURVES, HISTORY, LAST, METRICS, STATE, epoch_weights, save_model, save_weights, write_json
from .config import TrainConfig, scheduled_lr
from .curves import plot_curves
from .run_state import RunState, write_state
from .validation import best_val_record, evaluate_tiles

if TYPE_CHECKING:
    import keras

    from .loss import MaskedWeightedBCE


def run_callback(
    cfg: TrainConfig,
    out: Path,
    state: RunState,
    history: list[dict[str, Any]],
    val_x: np.ndarray,
    val_y: np.ndarray,
    loss_fn: MaskedWeightedBCE,
    log: Callable[[str], None],
) -> keras.callbacks.Callback:
    """End of each epoch: validate on ``val_x`` / ``val_y``, save ``last.keras`` (and the epoch's
    weights), ``best.keras`` only if better, update ``state`` (early stop, LR halving) and write
    ``history.json``, ``state.json``, ``metrics.json`` and ``curves.png`` in ``out``."""
    return _classes()[0](cfg, out, state, history, val_x, val_y, loss_fn, log)


def progress_bar(steps: int) -> keras.callbacks.Callback:
    """A rich progress bar per epoch of ``steps`` steps, showing the training loss."""
    return _classes()[1](steps)


@cache
def _classes() -> tuple[type, type]:
    """The callback classes, defined once Keras is imported."""
    import keras

    class RunCallback(keras.callbacks.Callback):
        """End of epoch: validate, checkpoint (last always, best only if better), early stop, LR halving."""

        def __init__(self, cfg, out, state, history, val_x, val_y, loss_fn, log):
            super().__init__()
            self.cfg, self.out, self.state, self.history = cfg, out, state, history
            self.val_x, self.val_y, self.loss_fn, self.log = val_x, val_y, loss_fn, log
            self.t0 = time.time()

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.time()
            self.state.lr = scheduled_lr(self.cfg, epoch, float(self.state.lr))
            self.model.optimizer.learning_rate.assign(self.state.lr)

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            st = self.state
            if self.val_x is None:  # a refit without validation: the last epoch is the model
                self._end_unvalidated(epoch, logs)
                return
            val = evaluate_tiles(self.model, self.val_x, self.val_y, self.loss_fn, self.cfg.threshold)
            seconds = time.time() - self.t0
            st.wall_seconds += seconds
            record = {
                "epoch": epoch + 1,
                "seconds": round(seconds, 1),
                "lr": float(st.lr),
                **{k: float(v) for k, v in logs.items()},
                **{f"val_{k}": v for k, v in val.items() if k != "at_best_threshold"},
            }
            lr = st.lr
            improved = st.end_epoch(epoch, val["loss"], best_val_record(val, self.cfg.threshold), self.cfg)
            save_model(self.model, self.out / LAST)
            if self.cfg.keep_epochs:
                save_weights(self.model, epoch_weights(self.out, epoch + 1))
            if improved:
                save_model(self.model, self.out / BEST)
            if st.lr != lr:
                self.model.optimizer.learning_rate.assign(st.lr)
            if st.stopped:
                self.model.stop_training = True
            self.history.append(record)
            write_json(self.out / HISTORY, self.history)
            write_state(self.out / STATE, st)
            write_json(self.out / METRICS, st.metrics(record))
            plot_curves(self.history, self.out / CURVES)
            self.log(
                f"epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.4f} val_loss {val['loss']:.4f} "
                f"val_f1@{self.cfg.threshold:g} {val['f1']:.4f} best-threshold {val['best_threshold']:.2f} "
                f"f1 {val['best_threshold_f1']:.4f} ({seconds:.0f} s){' *best*' if improved else ''}"
                f"{' early stop' if st.stopped else ''}"
            )

        def _end_unvalidated(self, epoch, logs):
            st = self.state
            seconds = time.time() - self.t0
            st.wall_seconds += seconds
            record = {"epoch": epoch + 1, "seconds": round(seconds, 1), "lr": float(st.lr),
                      **{k: float(v) for k, v in logs.items()}}
            st.end_epoch_unvalidated(epoch)
            save_model(self.model, self.out / LAST)
            save_model(self.model, self.out / BEST)
            if self.cfg.keep_epochs:
                save_weights(self.model, epoch_weights(self.out, epoch + 1))
            self.history.append(record)
            write_json(self.out / HISTORY, self.history)
            write_state(self.out / STATE, st)
            write_json(self.out / METRICS, st.metrics(record))
            plot_curves(self.history, self.out / CURVES)
            self.log(f"epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.4f}, no validation ({seconds:.0f} s)")

    class RichProgress(keras.callbacks.Callback):
        """A rich progress bar per epoch (steps, loss)."""

        def __init__(self, steps: int):
            super().__init__()
            self.steps = steps
            self.progress = None

        def on_epoch_begin(self, epoch, logs=None):
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn(f"epoch {epoch + 1}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=self.steps, info="")

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            self.progress.update(self.task, advance=1, info=f"loss {float(loss):.4f}" if loss is not None else "")

        def on_epoch_end(self, epoch, logs=None):
            if self.progress is not None:
                self.progress.stop()

    return RunCallback, RichProgress
