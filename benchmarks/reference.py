"""The original's stitching, kept deliberately as it was: the baseline of every benchmark.

The original (docs/spec.md §4.3-4.4) writes every tile of a map into ONE float64 array of shape
``(tiles, 2, 1801, 3600)``: plane 0 holds the tile's 2-D squared-spline window where the tile
falls (0 elsewhere), plane 1 its prediction; an argmax over the tiles of plane 0 picks, for
each pixel, the tile whose window is largest (the first one on ties), and plane 1 of that tile
gives the value.  For a typical 56-tile map that array is 5.8 GB.  This module exists only so
the benchmark can measure that cost; ``infer.stitch`` does the same selection in O(map)
memory and must give identical values (``tests/test_benchmarks.py`` checks it).

Arrays are **north-up**; :class:`ReferenceStitcher` takes tile origins in box coordinates, as
:class:`mars_cloudmask.infer.stitch.Stitcher` does, so the two are interchangeable.
"""

from __future__ import annotations

import numpy as np

from mars_cloudmask.infer.geometry import INVALID, MAP_HEIGHT, MAP_WIDTH, TilePlan
from mars_cloudmask.infer.stitch import spline_window


def reference_array_bytes(n_tiles: int) -> int:
    """Bytes of the original's ``(n_tiles, 2, 1801, 3600)`` float64 array."""
    return n_tiles * 2 * MAP_HEIGHT * MAP_WIDTH * 8


class ReferenceStitcher:
    """The original's hard selection over a full-map ``(tiles, 2, 1801, 3600)`` float64 array.

    Example::

        s = ReferenceStitcher(plan)                 # allocates the whole array at once
        for (y, x), pred in zip(plan.origins(), predictions):
            s.add(y, x, pred)                       # box-relative output origin, (tile_out, tile_out)
        box = s.result()    # float32 (bounds.height, bounds.width), north-up, -999 where no tile fell
    """

    def __init__(self, plan: TilePlan):
        """Allocate the full array for ``plan.n_tiles`` tiles (zeros: the original's ``np.zeros``)."""
        self.plan = plan
        w = spline_window(plan.tile_out)
        self._window = w[:, None] * w[None, :]
        self._all = np.zeros((plan.n_tiles, 2, MAP_HEIGHT, MAP_WIDTH), np.float64)
        self._next = 0

    def add(self, y: int, x: int, pred: np.ndarray) -> None:
        """Write tile number ``k`` (plan order): its window into plane 0, ``pred`` into plane 1.

        The tile's output is clipped to the box, like :class:`infer.stitch.Stitcher` does.
        """
        b = self.plan.bounds
        h = min(pred.shape[0], b.height - int(y))
        w = min(pred.shape[1], b.width - int(x))
        r0, c0 = b.ymin + int(y), b.xmin + int(x)
        k = self._next
        self._all[k, 0, r0 : r0 + h, c0 : c0 + w] = self._window[:h, :w]
        self._all[k, 1, r0 : r0 + h, c0 : c0 + w] = pred[:h, :w]
        self._next += 1

    def result(self) -> np.ndarray:
        """Argmax over the tiles (first maximum wins): float32 box, north-up, -999 where uncovered."""
        best = np.argmax(self._all[:, 0], axis=0)[None]
        weight = np.take_along_axis(self._all[:, 0], best, axis=0)[0]
        value = np.take_along_axis(self._all[:, 1], best, axis=0)[0]
        full = np.where(weight > 0, value, INVALID).astype(np.float32)
        b = self.plan.bounds
        return np.ascontiguousarray(full[b.ymin : b.ymax, b.xmin : b.xmax])
