"""The samples of a run: which labelled and reference maps train, validate and test, and
reading them as tiled maps (no Keras at import)."""

from __future__ import annotations

from typing import Callable, Sequence

from .config import TrainConfig
from .data import DataError, InputFn, Sample, Split, TiledMap, load_sample, scan_archive, scan_reference, split_samples
from .inputs import ChannelInputs


def run_inputs(cfg: TrainConfig) -> ChannelInputs:
    """The model-input builder of ``cfg`` (its channel spec and background maps); DataError if unusable."""
    return ChannelInputs(cfg.channels, cfg.background_maps, cfg.background_subset, cfg.seed)


def run_split(cfg: TrainConfig) -> Split:
    """The split ``cfg`` asks for (:func:`.data.split_samples` says how its parts combine)."""
    return Split(cfg.val_days, cfg.test_days, cfg.val_subphases, cfg.test_subphases)


def collect_samples(cfg: TrainConfig) -> tuple[list[Sample], list[Sample], list[Sample], list[Sample]]:
    """``(train, val, test, reference)`` samples; test days are set aside and never loaded.

    ``cfg.data``: labelled subphase folders and/or roots of them (a label archive).
    Raises DataError (naming the file) for any inconsistent folder before anything is read.
    """
    labelled = scan_archive(cfg.data)
    where = ", ".join(cfg.data)
    if not labelled:
        raise DataError(f"{where}: no labelled day found")
    train, val, test = split_samples(labelled, run_split(cfg), where)
    subphases = sorted({s.subphase for s in labelled})
    if len(subphases) > 1 and run_inputs(cfg).spec.needs_background:
        raise DataError(
            f"--channels {cfg.channels}: one --background-maps composite would serve every labelled day, but "
            f"{where} holds {len(subphases)} subphases ({', '.join(subphases)}); "
            "train background channels on one subphase"
        )
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
