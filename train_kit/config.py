"""A training run's configuration: :class:`TrainConfig`, its LR schedules and loss, and the
check that a run on disk may be resumed with a new configuration (no Keras at import)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from mars_cloudmask.infer.contract import DEFAULT_THRESHOLD, DEFAULT_TILE_OUT

from .checkpoint import RUN, read_json

if TYPE_CHECKING:
    from .loss import MaskedWeightedBCE

DEFAULT_BN_MOMENTUM = 0.99
"""BatchNorm moving-statistics momentum: Keras's default (about 100 steps of memory)."""


@dataclass
class TrainConfig:
    """Everything that defines a run (stored in ``run.json``; a resumed run must match it)."""

    data: list[str]
    out: str
    val_days: list[int]
    test_days: list[int] = field(default_factory=list)
    val_subphases: list[str] = field(default_factory=list)
    """Subphases (labelled folder names) that validate whole; ``val_days`` apply within the others."""
    test_subphases: list[str] = field(default_factory=list)
    """Subphases set aside whole for testing; ``test_days`` apply within the others."""
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
    """The loss a run of ``cfg`` trains and validates with (``w0``: its clear-pixel weight); imports Keras."""
    from .loss import MaskedWeightedBCE

    return MaskedWeightedBCE(
        w0, cfg.dice_weight, focal_gamma=cfg.focal_gamma, edge_weight=cfg.edge_weight, edge_radius=cfg.edge_radius
    )


def run_config(run: str | Path) -> TrainConfig:
    """The configuration a run was made with (its ``run.json``)."""
    return TrainConfig(**read_json(Path(run) / RUN)["config"])


def free_settings(cfg: TrainConfig) -> tuple[str, ...]:
    """Settings a resumed run may change: where it is, its threads, whether it keeps each
    epoch's weights, and (unless the LR schedule depends on it) its number of epochs."""
    return ("out", "threads", "keep_epochs") + (("epochs",) if cfg.lr_schedule != "cosine" else ())


def changed_settings(recorded: Mapping[str, Any], cfg: TrainConfig) -> list[str]:
    """The settings of ``cfg`` that differ from ``recorded`` (a run's ``run.json`` ``config``), as
    ``"width=2 (now 4)"``, in ``TrainConfig`` order; settings a run recorded before they existed
    take their defaults, settings :func:`free_settings` allows to change are not compared."""
    previous = {**asdict(TrainConfig(data=[], out="", val_days=[])), **recorded}
    free = free_settings(cfg)
    return [f"{k}={previous[k]!r} (now {v!r})" for k, v in asdict(cfg).items() if k not in free and previous[k] != v]


def check_resumable(recorded: Mapping[str, Any], cfg: TrainConfig, where: str | Path) -> None:
    """Raise ValueError naming ``where`` (the ``run.json`` read) when ``cfg`` may not resume the
    run recorded with ``recorded`` (see :func:`changed_settings`)."""
    changed = changed_settings(recorded, cfg)
    if changed:
        raise ValueError(f"{where}: the run was started with other settings: " + ", ".join(changed))
