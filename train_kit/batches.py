"""Training batches: random augmented tiles drawn reproducibly from ``(seed, epoch, step)``,
and their wrapping as a Keras dataset (Keras imported only by :func:`py_dataset`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .data import TiledMap, augment, random_tile


class TileBatches:
    """Random augmented training batches: ``(images uint8, targets float32, sample weights)``.

    Each batch draws a training subphase uniformly, then a map of it uniformly (so a long
    subphase of a label archive does not dominate; with one subphase, simply a map uniformly,
    the draws of runs made before archives), a random tile origin in each, one of the four flips and
    (optionally) a brightness factor in ``1 +- brightness``; a ``reference_fraction`` of the
    batch comes from reference maps (weight ``reference_weight``) when there are any.  Batch
    ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)`` and ``fit`` takes them in order
    (``shuffle=False``; Keras' own shuffling draws from a global RNG whose state a resumed run
    does not have): a resumed run is the same run, step for step.
    """

    def __init__(
        self,
        maps: Sequence[TiledMap],
        reference: Sequence[TiledMap],
        batch_size: int,
        steps: int,
        seed: int,
        brightness: float = 0.0,
        reference_weight: float = 0.3,
        reference_fraction: float = 0.25,
    ):
        self.maps, self.reference = list(maps), list(reference)
        self.batch_size, self.steps, self.seed = batch_size, steps, seed
        self.brightness = brightness
        self.reference_weight, self.reference_fraction = reference_weight, reference_fraction
        self.epoch = 0
        self.groups = subphase_groups(self.maps)

    def draw_map(self, rng: np.random.Generator) -> TiledMap:
        """A training map: a subphase uniformly, then one of its maps (one draw with one subphase)."""
        if len(self.groups) == 1:
            return self.maps[int(rng.integers(len(self.maps)))]
        group = self.groups[int(rng.integers(len(self.groups)))]
        return group[int(rng.integers(len(group)))]

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Batch ``index`` of ``epoch``: images ``(B, H, W, C)`` uint8, targets ``(B, h, w, 1)``, weights ``(B,)``."""
        rng = np.random.default_rng([self.seed, epoch, index])
        n_ref = int(round(self.batch_size * self.reference_fraction)) if self.reference else 0
        images, targets, weights = [], [], []
        for k in range(self.batch_size):
            ref = k < n_ref
            tm = self.reference[int(rng.integers(len(self.reference)))] if ref else self.draw_map(rng)
            img, t = random_tile(tm, rng)
            b = 1.0 + rng.uniform(-self.brightness, self.brightness) if self.brightness else 1.0
            img, t = augment(img, t, int(rng.integers(4)), b)
            images.append(img)
            targets.append(t)
            weights.append(self.reference_weight if ref else 1.0)
        return np.stack(images), np.stack(targets)[..., None], np.asarray(weights, dtype=np.float32)


def subphase_groups(maps: Sequence[TiledMap]) -> list[list[TiledMap]]:
    """The maps grouped by their sample's subphase, groups in order of first appearance."""
    groups: dict[str, list[TiledMap]] = {}
    for tm in maps:
        groups.setdefault(tm.sample.subphase, []).append(tm)
    return list(groups.values())


def py_dataset(batches: TileBatches, start_epoch: int):
    """Wrap :class:`TileBatches` as a keras PyDataset (works with every backend), from ``start_epoch``."""
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
