"""A run's progress between epochs (``state.json``): :class:`RunState`, its end-of-epoch
bookkeeping (best loss, early stopping, plateau LR halving) and the ``metrics.json`` it implies."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .checkpoint import CheckpointError, read_json, write_json
from .config import TrainConfig


@dataclass
class RunState:
    """Where a run stands after its last finished epoch; written to ``state.json`` each epoch."""

    lr: float
    """Learning rate of the next epoch (before the cosine schedule sets it)."""
    epoch: int = 0
    """Epochs finished (1-based number of the last one; 0: none yet)."""
    best_val_loss: float = math.inf
    """Lowest validation loss so far (``inf`` until an epoch has a finite one)."""
    best_epoch: int = 0
    wait: int = 0
    """Epochs since the best one (early stopping at ``patience``)."""
    lr_wait: int = 0
    """Epochs since the best one or the last LR halving (halving at ``lr_patience``)."""
    wall_seconds: float = 0.0
    """Training and validation time summed over the epochs, in seconds."""
    stopped: bool = False
    """True once early stopping ended the run."""
    best_val: dict[str, Any] = field(default_factory=dict)
    """Validation scores of the best epoch (``validation.best_val_record``); empty before one."""

    def to_json(self) -> dict[str, Any]:
        """The ``state.json`` object: the nine keys, ``best_val_loss`` ``inf`` written as ``Infinity``."""
        return {
            "epoch": self.epoch,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "lr_wait": self.lr_wait,
            "lr": self.lr,
            "wall_seconds": self.wall_seconds,
            "best_val": self.best_val,
            "stopped": self.stopped,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], lr: float) -> RunState:
        """A state from a ``state.json`` object of any version: keys it lacks take their defaults
        (``lr``: the given one, the run's configured rate); unknown keys are ignored.  Raises
        TypeError / ValueError for a value of the wrong kind."""
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        best_val = data.get("best_val", {})
        if not isinstance(best_val, Mapping):
            raise TypeError(f"best_val: expected a JSON object, got {type(best_val).__name__}")
        return cls(
            lr=float(data.get("lr", lr)),
            epoch=_count(data, "epoch"),
            best_val_loss=float(data.get("best_val_loss", math.inf)),
            best_epoch=_count(data, "best_epoch"),
            wait=_count(data, "wait"),
            lr_wait=_count(data, "lr_wait"),
            wall_seconds=float(data.get("wall_seconds", 0.0)),
            stopped=bool(data.get("stopped", False)),
            best_val=dict(best_val),
        )

    def end_epoch(self, epoch: int, val_loss: float, best_val: dict[str, Any], cfg: TrainConfig) -> bool:
        """Record the end of ``epoch`` (0-based) with validation loss ``val_loss``: a new best
        (strictly lower loss; ``best_val`` kept) resets both counters, else they grow and a
        plateau run halves ``lr`` after ``cfg.lr_patience`` flat epochs; ``stopped`` after
        ``cfg.patience`` epochs without a new best.  Returns True for a new best."""
        improved = val_loss < self.best_val_loss
        if improved:
            self.best_val_loss, self.best_epoch, self.wait, self.lr_wait = val_loss, epoch + 1, 0, 0
            self.best_val = best_val
        else:
            self.wait += 1
            self.lr_wait += 1
            if cfg.lr_schedule == "plateau" and cfg.lr_patience and self.lr_wait >= cfg.lr_patience:
                self.lr = float(self.lr) / 2
                self.lr_wait = 0
        self.epoch = epoch + 1
        if self.wait >= cfg.patience:
            self.stopped = True
        return improved

    def end_epoch_unvalidated(self, epoch: int) -> None:
        """Record the end of ``epoch`` (0-based) of a run without validation: the last epoch is the best."""
        self.epoch = self.best_epoch = epoch + 1
        self.wait = self.lr_wait = 0

    def metrics(self, last: dict[str, Any]) -> dict[str, Any]:
        """The ``metrics.json`` object after the epoch whose ``history.json`` record is ``last``."""
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": self.epoch,
            "stopped_early": self.stopped,
            "threshold": self.best_val.get("best_threshold"),
            "best_val": self.best_val,
            "wall_seconds": round(self.wall_seconds, 1),
            "last": last,
        }


def _count(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key, 0)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not value.is_integer())
    ):
        raise ValueError(f"{key}: expected a whole number, got {value!r}")
    return int(value)


def read_state(path: str | Path, lr: float) -> RunState:
    """The run state in ``path`` (``state.json``); CheckpointError naming it when unreadable or malformed."""
    data = read_json(path)
    try:
        return RunState.from_json(data, lr)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a run state ({exc})") from None


def write_state(path: str | Path, state: RunState) -> Path:
    """Write ``state`` to ``path`` (``state.json``) atomically."""
    return write_json(path, state.to_json())
