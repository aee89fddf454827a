"""What the science side costs: the quicklook's time per map and cm-stats' memory against mask count.

These are measurements, not unit tests (a shared CPU makes time and memory thresholds fail by
chance); the unit tests check the behaviour that keeps them low (the quicklook never imports
matplotlib; the statistics keep no per-mask image).  Synthetic inputs, made here, so it runs
installed and without data; files go to a temporary folder.

Example (also ``python -m mars_cloudmask.benchmarks.science [REPEATS]``, JSON on stdout)::

    from mars_cloudmask.benchmarks.science import quicklook_seconds, stats_peak_memory
    print(quicklook_seconds(repeats=3))   # {'best_s': 0.03, 'median_s': 0.04, ...}
    print(stats_peak_memory((2, 6)))      # {'peak_bytes': {2: ..., 6: ...}, 'growth_bytes': ...}
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mars_cloudmask.infer.contract import DEFAULT_THRESHOLD
from mars_cloudmask.infer.geometry import INVALID, MAP_HEIGHT, MAP_WIDTH


def synthetic_map_and_mask(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 ``(1801, 3600, 3)`` north-up map of random 16 x 16 px blocks (smooth like a real
    map at the quicklook's scale; pixel noise would make the PNG coder the whole cost) with a
    little pixel noise, and a float32 mask from its blue channel (-999 where dark, else blue / 255)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (-(-MAP_HEIGHT // 16), MAP_WIDTH // 16, 3), dtype=np.uint8)
    rgb = np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)[:MAP_HEIGHT]
    rgb = np.clip(rgb + rng.integers(-3, 4, rgb.shape), 0, 255).astype(np.uint8)
    blue = rgb[..., 2]
    mask = np.where(blue > 30, blue / np.float32(255), INVALID).astype(np.float32)
    return rgb, mask


def quicklook_seconds(repeats: int = 3, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """Seconds per :func:`~mars_cloudmask.infer.quicklook.save_quicklook` of one full-size map
    (after one warm-up call), best and median of ``repeats``."""
    from mars_cloudmask.infer.quicklook import save_quicklook

    rgb, mask = synthetic_map_and_mask()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        save_quicklook(Path(tmp) / "warm.png", rgb, mask, threshold)
        for i in range(repeats):
            t = time.perf_counter()
            save_quicklook(Path(tmp) / f"q{i}.png", rgb, mask, threshold)
            times.append(time.perf_counter() - t)
    return {
        "what": "save_quicklook, one 3600 x 1801 map",
        "repeats": repeats,
        "best_s": round(min(times), 4),
        "median_s": round(statistics.median(times), 4),
    }


def stats_peak_memory(counts: Sequence[int] = (2, 6)) -> dict[str, Any]:
    """Peak traced allocation (bytes, ``tracemalloc``) of :func:`~mars_cloudmask.infer.science.stats.collect`
    over ``n`` masks for each ``n`` in ``counts`` (links to ``n`` masks of different days), and the
    growth from the smallest to the largest count: near 0 when the masks are streamed."""
    import tracemalloc

    from mars_cloudmask.infer.netcdf import write_mask
    from mars_cloudmask.infer.science.stats import collect

    peaks: dict[int, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        masks = {  # one map per day: cm-stats counts the same map under several names once
            day: write_mask(
                Path(tmp) / "src" / f"cloudmask_P03_day{day:02d}.ncdf",
                np.full((MAP_HEIGHT, MAP_WIDTH), 0.5, np.float32),
                {"ls": 150.0 + day, "mars_year": 28, "threshold": 0.5},
            )
            for day in range(1, max(counts) + 1)
        }
        for n in counts:
            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            for day in range(1, n + 1):
                (folder / f"cloudmask_P03_day{day:02d}.ncdf").symlink_to(masks[day])
            tracemalloc.start()
            try:
                run = collect([folder])
                peaks[n] = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            if len(run.stats.days) != n:
                raise RuntimeError(f"collect read {len(run.stats.days)} of {n} masks: {run.errors}")
    lo, hi = min(counts), max(counts)
    return {
        "what": "cm-stats collect(), peak traced bytes",
        "peak_bytes": peaks,
        "growth_bytes": peaks[hi] - peaks[lo],
        "one_mask_float32_bytes": MAP_HEIGHT * MAP_WIDTH * 4,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Print both measurements as JSON (argument: repeats of the quicklook timing, default 3)."""
    args = list(sys.argv[1:] if argv is None else argv)
    repeats = int(args[0]) if args else 3
    print(json.dumps({"quicklook": quicklook_seconds(repeats), "stats_memory": stats_peak_memory()}, indent=1))


if __name__ == "__main__":
    main()
