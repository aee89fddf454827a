"""Cost of each ``seamless`` tile size per backend: ``cm-bench --suite tilesize``.

:func:`mars_cloudmask.infer.predict.seamless_tile_out` picks the output tile that feeds the net
the fewest input pixels, a proxy for onnxruntime's time.  Here the model is timed alone on
square tiles of several sizes (random uint8, median of ``repeats`` calls after one untimed call
that also compiles OpenVINO's model for that shape) with each backend, and for typical Ls boxes
(3600 px wide, :data:`BOX_HEIGHTS` rows) the time of a whole seamless plan is estimated as
``n_tiles(t) * s_per_tile(t)``: the size that choice makes is compared with the fastest one.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence

import numpy as np

TILE_OUTS = (484, 548, 612, 740, 868)
"""Output tile sizes timed (px; 4 mod 16 for the depth-4 model)."""
BOX_HEIGHTS = (900, 1090, 1300)
"""Rows of the Ls boxes the plan estimate is made for (full 3600 px width)."""


def time_tiles(model: Any, tile_outs: Sequence[int] = TILE_OUTS, repeats: int = 3) -> dict[int, float]:
    """Median seconds of ``model.run`` on one tile of each output size (``tile_out + 2 margin`` input)."""
    rng = np.random.default_rng(0)
    out: dict[int, float] = {}
    for t in tile_outs:
        n = t + 2 * model.info.margin
        tile = rng.integers(0, 256, (1, n, n, 3), dtype=np.uint8)
        model.run(tile)  # untimed: first call of this shape (OpenVINO compiles it)
        walls = []
        for _ in range(repeats):
            s = time.perf_counter()
            model.run(tile)
            walls.append(time.perf_counter() - s)
        out[t] = statistics.median(walls)
    return out


def plan_estimates(
    s_per_tile: dict[int, float], margin: int, align: int, heights: Sequence[int] = BOX_HEIGHTS
) -> dict[str, Any]:
    """Per box height: estimated seconds of a seamless plan at each timed size, the size
    ``seamless_tile_out`` picks (from all sizes of its range) and the fastest timed size (pure)."""
    from mars_cloudmask.infer.geometry import MAP_WIDTH, Bounds, plan_tiles
    from mars_cloudmask.infer.predict import seamless_tile_out

    boxes: dict[str, Any] = {}
    for h in heights:
        box = Bounds(0, MAP_WIDTH, 0, h)
        est = {t: plan_tiles(box, "seamless", t, margin, align).n_tiles * s for t, s in s_per_tile.items()}
        best = min(est, key=est.get)
        chosen = seamless_tile_out(box, margin, align=align)
        boxes[str(h)] = {
            "estimated_s": {str(t): round(v, 3) for t, v in est.items()},
            "n_tiles": {str(t): plan_tiles(box, "seamless", t, margin, align).n_tiles for t in s_per_tile},
            "seamless_tile_out": chosen,
            "fastest_timed": best,
            "chosen_s": round(est[chosen], 3) if chosen in est else None,
            "fastest_s": round(est[best], 3),
        }
    return boxes


def tilesize_suite(
    onnx: str,
    backends: dict[str, tuple[str, str]],
    threads: int | None = None,
    tile_outs: Sequence[int] = TILE_OUTS,
    repeats: int = 3,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``backends``: name -> (provider, precision).  Per backend: s per tile, s per input Mpx and
    the plan estimates; a backend that cannot run here is reported with its one-line reason."""
    from mars_cloudmask.infer.geometry import MAP_WIDTH, Bounds
    from mars_cloudmask.infer.predict import seamless_tile_out
    from mars_cloudmask.infer.runtime import ModelError, ProviderError, load_model

    say = progress or (lambda _m: None)
    # time the sizes seamless_tile_out picks for the boxes too (depth-4 geometry: margin 92, align 16)
    tile_outs = sorted(set(tile_outs) | {seamless_tile_out(Bounds(0, MAP_WIDTH, 0, h)) for h in BOX_HEIGHTS})
    out: dict[str, Any] = {"tile_outs": list(tile_outs), "repeats": repeats, "backends": {}}
    for name, (provider, precision) in backends.items():
        say(f"tilesize {name}: {len(tile_outs)} sizes x {repeats}")
        try:
            model = load_model(onnx, provider=provider, precision=precision, threads=threads)
        except (ModelError, ProviderError, ValueError) as exc:
            out["backends"][name] = {"ok": False, "error": str(exc)}
            continue
        m = model.info.margin
        per_tile = time_tiles(model, tile_outs, repeats)
        out["backends"][name] = {
            "ok": True,
            "provider": model.provider,
            "precision": model.precision,
            "s_per_tile": {str(t): round(s, 4) for t, s in per_tile.items()},
            "s_per_input_mpx": {str(t): round(s / ((t + 2 * m) ** 2 / 1e6), 4) for t, s in per_tile.items()},
            "plans": plan_estimates(per_tile, m, model.info.align),
        }
        del model
    return out
