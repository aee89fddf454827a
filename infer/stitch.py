"""Stitching tile predictions into one map: three Numba kernels over O(map) memory.

Tiles arrive one at a time (in the plan's order, x outer, y inner) and are folded into
box-sized accumulators; nothing ever holds all the tiles of a map at once.

* ``center``: the original's hard selection (docs/spec.md §4.3): each output pixel takes the
  value of the tile whose 2-D squared-spline window is largest there; ties go to the tile that
  comes first.  Folding tiles in plan order with a strict ``>`` gives exactly that.
* ``blend``: the window-weighted average of every tile covering the pixel.
* ``seamless``: abutting tiles on the 16-px grid; each pixel is written once (the few px of
  overlap the grid forces hold identical values, since the net is equivariant to such shifts).

All arrays here are **north-up** and in *box* coordinates: row 0 / column 0 is the box's
``ymin`` / ``xmin`` (see :class:`geometry.TilePlan`).  Pixels no tile covers are -999.

Start-up: ``seamless`` needs no kernel, so it never imports Numba.  The ``center`` and
``blend`` kernels are compiled on first use with ``cache=True``: Numba writes them beside this
file (``__pycache__``), else in its user-wide cache folder, or in ``NUMBA_CACHE_DIR`` when that
is set, and later runs load them instead of compiling.  Where no cache folder is writable they
are compiled in each run (a slower start, same results).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .geometry import INVALID, TilePlan

STITCH_MODES = ("seamless", "center", "blend")
"""Names accepted by :func:`plan_mode` and :class:`Stitcher`."""


def triangular_window(n: int) -> np.ndarray:
    """The triangular window of ``n`` points (nonzero end points), float64.

    Same values as ``scipy.signal.windows.triang(n)`` (computed here so ``infer`` needs no SciPy).
    """
    k = np.arange(1, (n + 1) // 2 + 1, dtype=np.float64)
    if n % 2 == 0:
        half = (2 * k - 1.0) / n
        return np.concatenate([half, half[::-1]])
    half = 2 * k / (n + 1.0)
    return np.concatenate([half, half[-2::-1]])


def spline_window(n: int, power: int = 2) -> np.ndarray:
    """1-D squared-spline window of ``n`` points (docs/spec.md §4.3), normalised to mean 1, float64.

    ``outer = (2 t)^p / 2`` on the outer quarters, ``inner = 1 - (2 (1 - t))^p / 2`` on the
    middle half, with ``t`` the triangular window.  The 2-D window is ``w[:, None] * w[None, :]``.
    """
    t = triangular_window(n)
    q = n // 4
    outer = np.abs(2 * t) ** power / 2
    inner = 1 - np.abs(2 * (t - 1)) ** power / 2
    if q:
        outer[q:-q] = 0
        inner[:q] = 0
        inner[-q:] = 0
    w = inner + outer
    return w / np.mean(w)


def plan_mode(stitch: str) -> str:
    """The :func:`geometry.plan_tiles` mode a stitch mode needs: ``original`` or ``seamless``."""
    if stitch not in STITCH_MODES:
        raise ValueError(f"unknown stitch mode {stitch!r}: use one of {', '.join(STITCH_MODES)}")
    return "seamless" if stitch == "seamless" else "original"


# --------------------------------------------------------------------------- kernels
def _jit(func):
    """``numba.njit(cache=True, nogil=True)``, without the cache where Numba finds no writable folder."""
    import numba

    try:
        return numba.njit(cache=True, nogil=True)(func)
    except RuntimeError as exc:  # "cannot cache function ...: no locator available for file ..."
        if "cache" not in str(exc):
            raise
        return numba.njit(nogil=True)(func)


def _kernels():
    """Compile (or load from Numba's cache) the three kernels; imported lazily."""
    global _KERNELS
    if _KERNELS is not None:
        return _KERNELS

    @_jit
    def center_fold(out, best, pred, wy, wx):  # pragma: no cover - compiled
        """Where ``wy[i] * wx[j] > best``, take the tile's value (strict: ties keep the earlier tile)."""
        for i in range(pred.shape[0]):
            for j in range(pred.shape[1]):
                v = wy[i] * wx[j]
                if v > best[i, j]:
                    best[i, j] = v
                    out[i, j] = pred[i, j]

    @_jit
    def blend_fold(acc, wsum, pred, wy, wx):  # pragma: no cover - compiled
        """Accumulate ``wy[i] * wx[j] * pred`` and the weights."""
        for i in range(pred.shape[0]):
            for j in range(pred.shape[1]):
                v = wy[i] * wx[j]
                acc[i, j] += v * pred[i, j]
                wsum[i, j] += v

    @_jit
    def blend_finish(acc, wsum, out):  # pragma: no cover - compiled
        """``out = acc / wsum`` where covered, -999 elsewhere."""
        h, wd = out.shape
        for r in range(h):
            for c in range(wd):
                if wsum[r, c] > 0:
                    out[r, c] = acc[r, c] / wsum[r, c]
                else:
                    out[r, c] = -999.0

    _KERNELS = {"center": center_fold, "blend": blend_fold, "blend_finish": blend_finish}
    return _KERNELS


_KERNELS: dict | None = None


def warm_up(modes: Iterable[str] = STITCH_MODES) -> None:
    """Compile / load the kernels of ``modes`` once on tiny arrays, so no map pays the JIT cost
    (``["seamless"]``: nothing to do, Numba is not even imported)."""
    for mode in modes:
        s = Stitcher(mode, (4, 4), 4)
        s.add(0, 0, np.zeros((4, 4), np.float32))
        s.result()


class Stitcher:
    """Folds the tiles of one :class:`geometry.TilePlan` into a box-sized map, in plan order.

    Example::

        s = Stitcher.for_plan("center", plan)
        for (y, x), pred in zip(plan.origins(), predictions):   # plan order
            s.add(y, x, pred)                                    # pred: (tile_out, tile_out)
        box = s.result()    # float32 (bounds.height, bounds.width), -999 where no tile fell

    Memory: ``center`` holds the box in float32 + float64, ``blend`` in 2 x float64 + float32,
    ``seamless`` in float32 only.
    """

    def __init__(self, mode: str, shape: tuple[int, int], tile_out: int):
        """``shape``: (rows, columns) of the box; ``tile_out``: output size of the tiles, px."""
        plan_mode(mode)
        self.mode = mode
        self._shape = shape
        self._k = _kernels() if mode != "seamless" else {}
        self._w = spline_window(tile_out)
        # blend accumulates sums; center and seamless write the output in place
        self._out: np.ndarray = np.empty((0, 0), np.float32)
        if mode == "blend":
            self._acc = np.zeros(shape, np.float64)
            self._wsum = np.zeros(shape, np.float64)
        else:
            self._out = np.full(shape, INVALID, np.float32)
            if mode == "center":
                self._best = np.zeros(shape, np.float64)  # the window is > 0 everywhere

    @classmethod
    def for_plan(cls, mode: str, plan: TilePlan) -> "Stitcher":
        """A stitcher for the box and tile size of ``plan``."""
        return cls(mode, (plan.bounds.height, plan.bounds.width), plan.tile_out)

    def add(self, y: int, x: int, pred: np.ndarray) -> None:
        """Fold one tile's output ``pred`` (tile_out, tile_out) at box origin ``(y, x)``.

        The part of the tile outside the box (a tile may run past the box's far edges) is
        cut off here, once, so the kernels loop over plain overlapping views.
        """
        h, w = self._shape
        r0, r1 = max(int(y), 0), min(int(y) + pred.shape[0], h)
        c0, c1 = max(int(x), 0), min(int(x) + pred.shape[1], w)
        if r0 >= r1 or c0 >= c1:
            return
        rows, cols = slice(r0 - int(y), r1 - int(y)), slice(c0 - int(x), c1 - int(x))
        part = np.asarray(pred, dtype=np.float32)[rows, cols]
        box = (slice(r0, r1), slice(c0, c1))
        if self.mode == "center":
            self._k["center"](self._out[box], self._best[box], part, self._w[rows], self._w[cols])
        elif self.mode == "blend":
            self._k["blend"](self._acc[box], self._wsum[box], part, self._w[rows], self._w[cols])
        else:
            self._out[box] = part  # seamless: each pixel is written by the tiles that hold it

    def result(self) -> np.ndarray:
        """The stitched box, float32 north-up, -999 where no tile fell."""
        if self.mode == "blend":
            out = np.empty(self._acc.shape, np.float32)
            self._k["blend_finish"](self._acc, self._wsum, out)
            return out
        return self._out
