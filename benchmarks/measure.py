"""Measuring ONE benchmark variant, inside its own process (so its peak RSS is its own).

A variant is described by a :class:`VariantSpec` (plain JSON, written by the parent) and
measured by :func:`measure_variant`, which returns a JSON-able dict.  Three ways to run maps:

* ``staged``: the engine's sequential executor, one map after the other, with a timing hook
  in its predict stage (decode, tile, infer, stitch, write each timed); no overlap.  This is how
  the original ran, and how the stage profile is taken.
* ``pipeline``: :func:`mars_cloudmask.infer.engine.run` with its default threaded executor,
  what ``cm-infer`` does (a reader thread decodes ahead, a writer thread writes behind,
  inference in between).
* ``limit``: onnxruntime alone on the tiles of the same maps (cut beforehand, untimed).

Engines: ``onnx`` (:class:`mars_cloudmask.infer.runtime.CloudModel`) or ``keras`` (a
``.keras`` file predicted tile by tile with ``predict_on_batch``; TensorFlow is imported only
in that case).  Stitching: ``center``, ``blend``, ``seamless`` (``infer.stitch``),
``reference`` (the original's full-array argmax, :mod:`.reference`) or ``wholemap`` (one
model pass over the whole padded box, ``infer.predict.predict_whole_pass``).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import numpy as np

from mars_cloudmask.infer.contract import DEFAULT_THRESHOLD, DEFAULT_TILE_OUT
from mars_cloudmask.infer.geometry import DEFAULT_POLAR_OFFSET

from .machine import current_rss_bytes, load_average, peak_rss_bytes

STAGES = ("decode", "tile", "infer", "stitch", "write")
STITCHES = ("reference", "center", "blend", "seamless", "wholemap")
KINDS = ("staged", "pipeline", "both", "limit")


@dataclass
class VariantSpec:
    """One variant to measure (JSON round-trips through :meth:`to_json` / :meth:`from_json`).

    ``maps``: JPEG paths (their ``_ls.txt`` gives Ls).  ``bounds``: one ``(xmin, xmax, ymin,
    ymax)`` box for every map instead of Ls bounds.  ``out_dir``: where masks are written.
    ``threshold``: only for Keras models (ONNX models carry theirs).  ``with_limit``: also time
    the model alone on the same tiles in every repeat, interleaved with the other passes, so
    the ratio to the limit is taken under the same machine load.
    """

    name: str
    engine: str
    model: str
    maps: list[str]
    out_dir: str
    stitch: str = "seamless"
    kind: str = "both"
    repeats: int = 1
    threads: int | None = None
    provider: str = "cpu"
    batch_size: int = 1
    tile_out: int | None = None
    bounds: list[int] | None = None
    polar_offset: float = DEFAULT_POLAR_OFFSET  # the original's bounds for every variant: like-for-like boxes
    threshold: float = DEFAULT_THRESHOLD
    precision: str = "auto"
    with_limit: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        if self.engine not in ("onnx", "keras"):
            raise ValueError(f"{self.name}: engine must be onnx or keras, got {self.engine!r}")
        if self.stitch not in STITCHES:
            raise ValueError(f"{self.name}: stitch must be one of {', '.join(STITCHES)}, got {self.stitch!r}")
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind in ("pipeline", "both") and self.stitch in ("reference", "wholemap"):
            raise ValueError(f"{self.name}: cm-infer's pipeline has no {self.stitch!r} stitching (use kind staged)")
        if self.repeats < 1:
            raise ValueError(f"{self.name}: repeats must be >= 1")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "VariantSpec":
        return cls(**data)

    def infer_stitch(self) -> str:
        """The ``infer`` stitch mode whose tile plan this variant uses."""
        return {"reference": "center", "wholemap": "seamless"}.get(self.stitch, self.stitch)


class Runner(Protocol):
    """What the staged loop needs of a model (``CloudModel`` and :class:`KerasRunner` both fit)."""

    info: Any
    provider: str

    def run(self, tiles: np.ndarray) -> np.ndarray: ...


class KerasRunner:
    """A ``.keras`` cloud-mask model behind the ``CloudModel`` interface, tile by tile.

    ``run`` calls ``predict_on_batch`` (the least overhead Keras offers for one tile);
    ``info`` is an :class:`infer.runtime.ModelInfo` with the margin of the model's depth.
    """

    def __init__(self, path: str | Path, threshold: float = DEFAULT_THRESHOLD):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        from mars_cloudmask.infer.runtime import ModelInfo, file_sha256
        from mars_cloudmask.train_kit.checkpoint import load_model
        from mars_cloudmask.train_kit.model import alignment, architecture_of, margin

        self.path = Path(path)
        self.model = load_model(self.path)
        width, depth = architecture_of(self.model)
        m = margin(depth)
        self.info = ModelInfo(
            name=self.path.stem,
            version="keras",
            threshold=float(threshold),
            tile_in=DEFAULT_TILE_OUT + 2 * m,
            tile_out=DEFAULT_TILE_OUT,
            margin=m,
            align=alignment(depth),
            extra={"width": str(width), "depth": str(depth)},
        )
        gpus = tf.config.list_physical_devices("GPU")
        self.provider = "tensorflow-gpu" if gpus else "tensorflow-cpu"
        self.precision = "fp32"
        self.providers = [f"tensorflow {tf.__version__}", *(g.name for g in gpus)]
        self.sha256 = file_sha256(self.path)

    def run(self, tiles: np.ndarray) -> np.ndarray:
        """uint8 ``(N, H, W, 3)`` -> float32 ``(N, H - 2m, W - 2m)``."""
        return np.asarray(self.model.predict_on_batch(np.ascontiguousarray(tiles)), dtype=np.float32)[..., 0]


def load_runner(spec: VariantSpec) -> Runner:
    """The model of a variant: a ``CloudModel`` (onnxruntime) or a :class:`KerasRunner`."""
    if spec.engine == "keras":
        return KerasRunner(spec.model, spec.threshold)
    from mars_cloudmask.infer.runtime import load_model

    return load_model(spec.model, provider=spec.provider, threads=spec.threads, precision=spec.precision)


@dataclass
class StageClock:
    """Seconds spent in each stage, summed over everything timed with :meth:`stage`."""

    totals: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.totals[name] += time.perf_counter() - t


def infer_options(spec: VariantSpec):
    """The ``InferOptions`` of a variant: probabilities, overwrite, its stitch plan and box."""
    from mars_cloudmask.infer.plan import InferOptions

    return InferOptions(
        out=Path(spec.out_dir),
        bounds=tuple(spec.bounds) if spec.bounds else None,
        polar_offset=spec.polar_offset,
        stitch=spec.infer_stitch(),
        batch_size=spec.batch_size,
        tile_out=spec.tile_out,
        overwrite=True,
    )


def variant_plan(spec: VariantSpec, runner: Runner, bounds):
    """The tile plan of one map's box for this variant: ``infer.predict.plan_for`` (cm-infer's own)."""
    from mars_cloudmask.infer.predict import plan_for

    return plan_for(runner, bounds, spec.infer_stitch(), spec.tile_out)


def make_stitcher(spec: VariantSpec, plan):
    """The stitcher of a variant: the original's full array, or ``infer``'s Numba kernels."""
    from mars_cloudmask.infer.stitch import Stitcher

    from .reference import ReferenceStitcher

    return ReferenceStitcher(plan) if spec.stitch == "reference" else Stitcher.for_plan(spec.stitch, plan)


def timed_predict(spec: VariantSpec, clock: StageClock, tile_count: list[int]):
    """The engine's predict stage for this variant, split into tile / infer / stitch timings.

    Returns a ``predict_fn`` for :func:`mars_cloudmask.infer.engine.run`; ``tile_count[0]``
    accumulates the tiles run.
    """
    from mars_cloudmask.infer.geometry import INVALID, MAP_HEIGHT, MAP_WIDTH, build_canvas, tile_input
    from mars_cloudmask.infer.predict import place_box, predict_whole_pass

    def predict(runner, loaded, plan_):
        if loaded.bounds is None:
            return np.full((MAP_HEIGHT, MAP_WIDTH), INVALID, np.float32), None
        if spec.stitch == "wholemap":
            with clock.stage("infer"):  # canvas build included (about 1 % of the pass)
                box = predict_whole_pass(runner, loaded.rgb, loaded.bounds)
            tile_count[0] += 1
            with clock.stage("stitch"):
                return place_box(loaded.rgb, box, loaded.bounds), None
        with clock.stage("tile"):
            plan = variant_plan(spec, runner, loaded.bounds)
            canvas = build_canvas(loaded.rgb, plan)
        with clock.stage("stitch"):
            stitcher = make_stitcher(spec, plan)
        origins = plan.origins()
        tile_count[0] += len(origins)
        for k in range(0, len(origins), spec.batch_size):
            batch = origins[k : k + spec.batch_size]
            with clock.stage("tile"):
                tiles = np.stack([tile_input(canvas, plan, int(y), int(x)) for y, x in batch])
            with clock.stage("infer"):
                preds = runner.run(tiles)
            with clock.stage("stitch"):
                for (y, x), pred in zip(batch, preds, strict=True):
                    stitcher.add(int(y), int(x), pred)
        with clock.stage("stitch"):
            mask = place_box(loaded.rgb, stitcher.result(), loaded.bounds)
            del stitcher
        return mask, plan

    return predict


def _raise_failures(report) -> None:
    failed = report.by_status("failed")
    if failed:
        raise RuntimeError(f"{len(failed)} map(s) failed, first: {failed[0].reason}")


def staged_pass(spec: VariantSpec, jobs: Sequence, runner: Runner, options, clock: StageClock) -> tuple[float, int]:
    """Every map once through the engine's sequential executor; returns (wall seconds, tiles).

    Decode and write times are the engine's own stage timings (``read_s``, ``write_s``).
    """
    from mars_cloudmask.infer.engine import SequentialExecutor, run

    tile_count = [0]
    t = time.perf_counter()
    report = run(
        jobs,
        runner,
        options,
        executor=SequentialExecutor(),
        predict_fn=timed_predict(spec, clock, tile_count),
        write_record=False,
    )
    wall = time.perf_counter() - t
    _raise_failures(report)
    for r in report.results:
        clock.totals["decode"] += r.timings.get("read_s", 0.0)
        clock.totals["write"] += r.timings.get("write_s", 0.0)
    return wall, tile_count[0]


def pipeline_pass(jobs: Sequence, runner: Runner, options) -> float:
    """Every map once through ``cm-infer``'s engine (threaded executor); returns wall seconds.

    Raises RuntimeError with the first failure's reason when any map fails.
    """
    from mars_cloudmask.infer.engine import run

    t = time.perf_counter()
    report = run(jobs, runner, options, write_record=False)
    wall = time.perf_counter() - t
    _raise_failures(report)
    return wall


def tile_batches(spec: VariantSpec, job, runner: Runner, options) -> Iterator[np.ndarray]:
    """The contiguous input batches of one map's tile plan, cut one batch at a time."""
    from mars_cloudmask.infer.engine import Stages
    from mars_cloudmask.infer.geometry import build_canvas, tile_input
    from mars_cloudmask.infer.plan import as_plan

    loaded = Stages(runner, as_plan(options, runner)).load(job)
    if loaded.bounds is None:
        return
    plan = variant_plan(spec, runner, loaded.bounds)
    canvas = build_canvas(loaded.rgb, plan)
    origins = plan.origins()
    for k in range(0, len(origins), spec.batch_size):
        yield np.ascontiguousarray(
            np.stack([tile_input(canvas, plan, int(y), int(x)) for y, x in origins[k : k + spec.batch_size]])
        )


def limit_pass(spec: VariantSpec, jobs: Sequence, runner: Runner, options) -> tuple[float, int]:
    """The model alone on every tile of every map: (seconds summed over the model calls, tiles).

    Decoding and cutting happen between the timed calls, one batch at a time (no extra memory).
    """
    total, tiles = 0.0, 0
    for job in jobs:
        for batch in tile_batches(spec, job, runner, options):
            t = time.perf_counter()
            runner.run(batch)
            total += time.perf_counter() - t
            tiles += len(batch)
    return total, tiles


def warm_up(runner: Runner, spec: VariantSpec) -> None:
    """One tile through the model and the stitch kernels compiled, outside every timing."""
    from mars_cloudmask.infer import stitch

    stitch.warm_up()
    n = runner.info.tile_in
    runner.run(np.zeros((1, n, n, 3), np.uint8))


def _per_map(walls: list[float], n_maps: int) -> dict[str, Any]:
    med = statistics.median(walls)
    return {
        "repeat_walls_s": [round(w, 4) for w in walls],
        "s_per_map": med / n_maps if n_maps else None,
        "maps_per_s": n_maps / med if med > 0 else None,
    }


def measure_variant(spec: VariantSpec, progress: Any = None) -> dict[str, Any]:
    """Load the model, warm up, run the variant's passes; figures as a JSON-able dict.

    ``s_per_map`` is the headline: the pipeline's when the variant has one, else the staged
    loop's, else the limit's (median over repeats of wall / maps).
    """
    from mars_cloudmask.infer.maps import find_jobs

    started_load = load_average()
    jobs, errors = find_jobs(spec.maps)
    if errors or not jobs:
        raise RuntimeError("; ".join(errors) or f"{spec.name}: no maps")
    options = infer_options(spec)
    Path(spec.out_dir).mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    runner = load_runner(spec)
    load_s = time.perf_counter() - t
    warm_up(runner, spec)
    rss_ready = current_rss_bytes()
    n = len(jobs)
    result: dict[str, Any] = {"name": spec.name, "spec": spec.to_json(), "n_maps": n, "model_load_s": round(load_s, 3)}
    clock = StageClock()
    walls: dict[str, list[float]] = {"staged": [], "pipeline": [], "limit": []}
    tiles = 0
    for r in range(spec.repeats):
        if spec.kind in ("staged", "both"):
            wall, tiles = staged_pass(spec, jobs, runner, options, clock)
            walls["staged"].append(wall)
        if spec.kind in ("pipeline", "both"):
            walls["pipeline"].append(pipeline_pass(jobs, runner, options))
        if spec.kind == "limit" or spec.with_limit:
            wall, tiles = limit_pass(spec, jobs, runner, options)
            walls["limit"].append(wall)
        if progress is not None:
            progress(r + 1)
    if walls["staged"]:
        result["staged"] = {
            **_per_map(walls["staged"], n),
            "stages_s_per_map": {k: v / (n * len(walls["staged"])) for k, v in clock.totals.items()},
        }
    if walls["pipeline"]:
        result["pipeline"] = _per_map(walls["pipeline"], n)
    if walls["limit"]:
        result["limit"] = {
            **_per_map(walls["limit"], n),
            "s_per_tile": statistics.median(walls["limit"]) / tiles if tiles else None,
        }
    if tiles or walls["staged"] or walls["limit"]:
        result["tiles_per_map"] = tiles / n
    headline = result.get("pipeline") or result.get("staged") or result["limit"]  # limit: only for kind limit
    result.update(
        s_per_map=headline["s_per_map"],
        maps_per_s=headline["maps_per_s"],
        provider=runner.provider,
        precision=getattr(runner, "precision", None),
        session_providers=list(getattr(runner, "providers", [])),
        threads=spec.threads,
        rss_ready_bytes=rss_ready,
        peak_rss_bytes=peak_rss_bytes(),
        loadavg_start=started_load,
        loadavg_end=load_average(),
        tensorflow_imported="tensorflow" in sys.modules,
    )
    return result
