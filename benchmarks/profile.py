"""Where onnxruntime spends a tile's time: its own profiler, summed per operator type.

Example (also ``python -m mars_cloudmask.benchmarks.profile MODEL.onnx [THREADS] [TILES]``)::

    from mars_cloudmask.benchmarks.profile import op_profile
    print(op_profile("model.onnx", threads=2, tiles=3))
    # {'tile_s': 0.11, 'ops_ms_per_tile': {'Conv': 80.1, 'ConvTranspose': 9.3, ...}, ...}
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def op_profile(
    model: str | Path, threads: int | None = None, tiles: int = 3, size: int = 668, seed: int = 0
) -> dict[str, Any]:
    """Run ``tiles`` random uint8 ``size`` px tiles (after one warm-up) with onnxruntime's
    profiler on the CPU provider; milliseconds per tile by operator type, largest first."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        x = np.random.default_rng(seed).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
        sess.run(None, {name: x})
        t = time.perf_counter()
        for _ in range(tiles):
            sess.run(None, {name: x})
        wall = (time.perf_counter() - t) / tiles
        trace = json.loads(Path(sess.end_profiling()).read_text())
    per_op: dict[str, float] = defaultdict(float)
    runs = [e for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"]
    skip_first = runs[0]["ts"] + runs[0]["dur"] if runs else 0  # leave the warm-up run out
    for e in trace:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= skip_first:
            per_op[e.get("args", {}).get("op_name", "?")] += e["dur"] / 1000.0 / tiles
    ops = dict(sorted(per_op.items(), key=lambda kv: -kv[1]))
    return {
        "model": str(model),
        "threads": threads,
        "tile_px": size,
        "tiles": tiles,
        "tile_s": wall,
        "ops_ms_per_tile": {k: round(v, 2) for k, v in ops.items()},
        "kernel_ms_per_tile": round(sum(ops.values()), 2),
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    print(
        json.dumps(
            op_profile(args[0], int(args[1]) if len(args) > 1 else None, int(args[2]) if len(args) > 2 else 3), indent=1
        )
    )
