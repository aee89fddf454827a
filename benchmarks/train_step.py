"""Where a training step's time goes (issue 31, item 6): batch assembly against the Keras step.

``python -m mars_cloudmask.benchmarks.train_step --data ../shared/data/labels/P01 --widths 8,16``

In one process, interleaved width by width and step by step (so that load on a shared machine
falls on every variant alike), it times:

- ``batch``: :meth:`TileBatches.batch`, the NumPy side (random tiles, flips, brightness);
- ``step``: ``model.train_on_batch`` on that batch (forward, loss, backward, Adam update);
- ``val``: ``model.predict`` on one batch of validation tiles (the per-epoch validation pass
  costs this times validation tiles / batch size).

It prints the median of each in seconds and the share of ``batch`` in a training step; the
epoch estimate is ``steps x (batch + step) + val tiles / batch x val``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any


def profile(data: str, widths: list[int], steps: int, batch_size: int = 8, threads: int = 2) -> dict[str, Any]:
    """Median seconds of batch assembly, a training step and a validation predict per width."""
    from mars_cloudmask.train_kit.tf_logs import quiet_tensorflow

    quiet_tensorflow()
    from mars_cloudmask.train_kit.batches import TileBatches
    from mars_cloudmask.train_kit.config import TrainConfig
    from mars_cloudmask.train_kit.data import grid_tiles
    from mars_cloudmask.train_kit.samples import collect_samples, load_all, run_inputs
    from mars_cloudmask.train_kit.train import _compile, _configure_threads, initial_model

    base = dict(data=[data], out="/nonexistent", val_days=[16], test_days=list(range(3, 16)) + list(range(17, 26)))
    cfg0 = TrainConfig(**base, batch_size=batch_size, threads=threads, bn_momentum=0.9)
    train_s, val_s, _, _ = collect_samples(cfg0)
    maps = load_all(train_s, cfg0.tile_out, cfg0.depth, inputs=run_inputs(cfg0))
    val_x, _ = grid_tiles(load_all(val_s, cfg0.tile_out, cfg0.depth, inputs=run_inputs(cfg0)))
    _configure_threads(threads)
    batches = TileBatches(maps, [], batch_size, steps, 0, 0.1)
    models = {}
    for w in widths:
        cfg = TrainConfig(**base, width=w, batch_size=batch_size, threads=threads, bn_momentum=0.9)
        m = initial_model(cfg)
        _compile(m, cfg, 0.5)
        x, y, sw = batches.batch(0, 0)
        m.train_on_batch(x, y, sample_weight=sw)  # warm-up: graph tracing
        m.predict(val_x[:batch_size], verbose=0)
        models[w] = m
    times: dict[int, dict[str, list[float]]] = {w: {"batch": [], "step": [], "val": []} for w in widths}
    for i in range(1, steps + 1):
        for w, m in models.items():
            t0 = time.perf_counter()
            x, y, sw = batches.batch(0, i)
            t1 = time.perf_counter()
            m.train_on_batch(x, y, sample_weight=sw)
            t2 = time.perf_counter()
            m.predict(val_x[:batch_size], verbose=0)
            t3 = time.perf_counter()
            times[w]["batch"].append(t1 - t0)
            times[w]["step"].append(t2 - t1)
            times[w]["val"].append(t3 - t2)
    out: dict[str, Any] = {"steps": steps, "batch_size": batch_size, "threads": threads, "val_tiles": len(val_x)}
    for w in widths:
        med = {k: statistics.median(v) for k, v in times[w].items()}
        med["batch_share"] = med["batch"] / (med["batch"] + med["step"])
        med["params"] = models[w].count_params()
        out[f"width{w}"] = {k: round(v, 4) for k, v in med.items()}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/labels/P01")
    ap.add_argument("--widths", default="8,16")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="Also write the result as JSON here.")
    args = ap.parse_args(argv)
    result = profile(args.data, [int(w) for w in args.widths.split(",")], args.steps, threads=args.threads)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
