"""train_kit.batches: balanced draws over the subphases of a label archive, and the same draws
as before archives when there is one subphase (a resumed run is the same run)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from mars_cloudmask.train_kit.batches import TileBatches
from mars_cloudmask.train_kit.data import Sample, TiledMap, augment, random_tile

TILE_OUT, MARGIN = 4, 2


def fake_map(value: int, subphase: str, source: str = "label") -> TiledMap:
    """A 12 x 12 output canvas of valid target whose image pixels all hold ``value`` (blue = row)."""
    name = f"{subphase}day{value:02d}"
    sample = Sample(name, Path(f"{name}.jpeg"), Path(f"cloudmask_{name}.ncdf"), 100.0, source, subphase)
    image = np.full((16, 16, 3), value, dtype=np.uint8)
    image[..., 2] = np.arange(16, dtype=np.uint8)[:, None]  # flips and origins show in the tiles
    target = (np.arange(144).reshape(12, 12) % 3 == 0).astype(np.int8)
    return TiledMap(sample, image, target, np.zeros((1, 2), dtype=int), TILE_OUT, MARGIN)


def drawn(batches: TileBatches, n: int) -> Counter:
    """How often each map (by its image value) was drawn over ``n`` batches."""
    counts: Counter = Counter()
    for i in range(n):
        images, _, _ = batches.batch(0, i)
        counts.update(int(v) for v in images[:, 0, 0, 0])
    return counts


def test_each_subphase_is_drawn_equally_often_whatever_its_length():
    # subphase A holds 6 maps (values 1-6), B one (value 7): B must get half the draws, not 1/7
    maps = [fake_map(v, "A") for v in range(1, 7)] + [fake_map(7, "B")]
    counts = drawn(TileBatches(maps, [], batch_size=8, steps=1, seed=3), 300)
    total = sum(counts.values())
    assert total == 2400
    assert 0.46 < counts[7] / total < 0.54
    for v in range(1, 7):  # within A, uniformly: 1/12 each
        assert 0.06 < counts[v] / total < 0.107, counts


def test_three_subphases_share_the_draws_and_references_keep_their_fraction():
    maps = [fake_map(v, "A") for v in (1, 2, 3, 4)] + [fake_map(5, "B"), fake_map(6, "B")] + [fake_map(7, "C")]
    ref = [fake_map(50, "P07", "reference")]
    batches = TileBatches(maps, ref, batch_size=8, steps=1, seed=0, reference_fraction=0.25)
    counts = drawn(batches, 300)
    label = {sub: sum(counts[v] for v in vals) for sub, vals in {"A": (1, 2, 3, 4), "B": (5, 6), "C": (7,)}.items()}
    assert counts[50] == 600  # 2 of every 8 tiles
    assert all(0.3 < n / 1800 < 0.37 for n in label.values()), label


def old_batch(b: TileBatches, epoch: int, index: int):
    """TileBatches.batch as it was before label archives (maps drawn uniformly)."""
    rng = np.random.default_rng([b.seed, epoch, index])
    n_ref = int(round(b.batch_size * b.reference_fraction)) if b.reference else 0
    images, targets, weights = [], [], []
    for k in range(b.batch_size):
        ref = k < n_ref
        pool = b.reference if ref else b.maps
        tm = pool[int(rng.integers(len(pool)))]
        img, t = random_tile(tm, rng)
        f = 1.0 + rng.uniform(-b.brightness, b.brightness) if b.brightness else 1.0
        img, t = augment(img, t, int(rng.integers(4)), f)
        images.append(img)
        targets.append(t)
        weights.append(b.reference_weight if ref else 1.0)
    return np.stack(images), np.stack(targets)[..., None], np.asarray(weights, dtype=np.float32)


def test_one_subphase_draws_exactly_as_before_archives():
    maps = [fake_map(v, "P01") for v in range(1, 6)]
    for ref, brightness in (([], 0.0), ([fake_map(60, "P07", "reference")], 0.2)):
        b = TileBatches(maps, ref, batch_size=6, steps=4, seed=11, brightness=brightness)
        for epoch, index in ((0, 0), (0, 3), (2, 1), (7, 2)):
            for new, old in zip(b.batch(epoch, index), old_batch(b, epoch, index), strict=True):
                np.testing.assert_array_equal(new, old)


def test_a_batch_is_a_pure_function_of_seed_epoch_and_step():
    maps = [fake_map(v, "A") for v in (1, 2)] + [fake_map(3, "B")]
    one, two = TileBatches(maps, [], 4, 2, seed=5), TileBatches(maps, [], 4, 2, seed=5)
    two.batch(0, 0)
    for new, again in zip(one.batch(1, 1), two.batch(1, 1), strict=True):
        np.testing.assert_array_equal(new, again)
