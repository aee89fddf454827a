"""The samples of a run: which labelled and reference maps train, validate and test, and
reading them as tiled maps (no Keras at import)."""

from __future__ import annotations

from typing import Callable, Sequence

from .config import TrainConfig
from .data import DataError, InputFn, Sample, TiledMap, load_sample, scan_labelled, scan_reference, split_by_day
from .inputs import ChannelInputs


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
    if cfg.val_days and not val:
        raise DataError(f"none of the validation days {cfg.val_days} is in {', '.join(cfg.data)}")
    if not train:
        raise DataError(f"no training day left in {', '.join(cfg.data)} after taking out validation/test days")
    reference: list[Sample] = []
    for folder in cfg.reference:
        if cfg.mdgm is None:
            raise DataError("--reference needs --mdgm (the root of the maps the reference masks were made from)")
        reference.extend(scan_reference(cfg.mdgm, folder))
    return train, val, test, reference


def load_all(
    samples: Sequence[Sample],
    tile_out: int,
    depth: int = 4,
    progress: Callable[[str], None] | None = None,
    inputs: InputFn | None = None,
) -> list[TiledMap]:
    """Read and tile every sample for a net of this depth (checks every file: errors name it);
    ``inputs`` adds the run's extra channels (RGB alone when None)."""
    from .model import alignment, margin  # the net's geometry; model.py imports Keras

    maps = []
    for s in samples:
        if progress:
            progress(s.name)
        maps.append(load_sample(s, tile_out, margin(depth), alignment(depth), inputs))
    return maps
