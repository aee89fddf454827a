"""Maps/s of cm-infer on Dask (1 and 2 local worker processes) vs the plain local run.

Usage:  python -m mars_cloudmask.benchmarks.dask_bench [--maps 6] [--repeats 2] [--model M.onnx] [--data DIR]
        [--json OUT.json]

``--model`` defaults to the shipped model; ``--data`` to ``$CLOUDMASK_DATA`` or ``../shared/data``
relative to the working directory (the maps are ``mdgm/P/P01``).

Every configuration processes the same real maps (P/P01 day01..dayNN) into a fresh output
folder, ``repeats`` times, in interleaved order (config A, B, C, A, B, C) so that background
load on the shared machine hits every configuration alike; the medians are printed.
``wall`` is end to end as a user sees it (LocalCluster start, model load on every worker,
all maps, cluster close); ``startup`` is a LocalCluster started and closed with
nothing to do.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from mars_cloudmask.benchmarks.paths import DATA_HELP, data_dir


def configs(n_cpus: int) -> list[tuple[str, str | None, int | None]]:
    """(label, dask address or None for the plain local run, onnxruntime threads per worker)."""
    return [
        ("local run, 1 thread", None, 1),
        (f"local run, {n_cpus} threads", None, None),
        ("dask local:1, 1 thread", "local:1", 1),
        (f"dask local:1, {n_cpus} threads", "local:1", n_cpus),
        ("dask local:2, 1 thread each", "local:2", 1),
    ]


def run_once(jobs, model_path: Path, address: str | None, threads: int | None, out: Path) -> dict:
    from mars_cloudmask.infer.cluster import run_on_dask
    from mars_cloudmask.infer.engine import run
    from mars_cloudmask.infer.plan import InferOptions
    from mars_cloudmask.infer.runtime import load_model

    options = InferOptions(out=out)
    t0 = time.perf_counter()
    if address is None:
        report = run(jobs, load_model(model_path, provider="cpu", threads=threads), options)
    else:
        report = run_on_dask(jobs, model_path, options, address, threads=threads, provider="cpu")
    wall = time.perf_counter() - t0
    assert report.counts()["done"] == len(jobs), report.counts()
    t0 = time.perf_counter()  # cluster start and close alone (run_on_dask skips it when nothing is to do)
    if address is not None:
        from mars_cloudmask.infer.cluster import dask_client

        with dask_client(address):
            pass
    startup = time.perf_counter() - t0 if address is not None else 0.0
    return {
        "wall_s": wall,
        "maps_per_s": len(jobs) / wall,
        "startup_s": startup,
        "maps_per_s_after_startup": len(jobs) / max(wall - startup, 1e-9),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument("--data", type=Path, default=None, help=f"the shared data folder; default: {DATA_HELP}")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from mars_cloudmask.infer.cluster import usable_cpus
    from mars_cloudmask.infer.maps import find_jobs
    from mars_cloudmask.models import default_model_path

    args.model = args.model or default_model_path()
    maps_dir = data_dir(args.data) / "mdgm" / "P" / "P01"
    jobs, errors = find_jobs([maps_dir / f"P01_day{d:02d}_zequat.jpg" for d in range(1, args.maps + 1)])
    assert not errors and len(jobs) == args.maps, errors
    n_cpus = usable_cpus()
    table = configs(n_cpus)
    runs: dict[str, list[dict]] = {label: [] for label, _, _ in table}
    scratch = Path(tempfile.mkdtemp(prefix="dask-bench-"))
    print(f"model {args.model}, {len(jobs)} maps, {n_cpus} CPUs, load average {os.getloadavg()}", flush=True)
    try:
        for rep in range(args.repeats):
            for k, (label, address, threads) in enumerate(table):
                out = scratch / f"r{rep}c{k}"
                r = run_once(jobs, args.model, address, threads, out)
                shutil.rmtree(out)
                r["loadavg_1min"] = os.getloadavg()[0]
                runs[label].append(r)
                print(f"[{rep}] {label}: {json.dumps({k: round(v, 3) for k, v in r.items()})}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("\nmedians over", args.repeats, "repeats")
    print("| configuration | maps/s (end to end) | wall s | startup s | maps/s after startup |")
    print("| --- | --- | --- | --- | --- |")
    summary = {}
    for label, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        summary[label] = {"median": med, "runs": rs}
        print(
            f"| {label} | {med['maps_per_s']:.3f} | {med['wall_s']:.1f} | {med['startup_s']:.1f} | "
            f"{med['maps_per_s_after_startup']:.3f} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"model": str(args.model), "maps": len(jobs), "cpus": n_cpus, "results": summary}, indent=2)
        )
