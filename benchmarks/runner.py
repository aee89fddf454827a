"""Running the benchmark suites: one child process per variant, results gathered and compared.

Suites (any subset, in this order):

* ``main``: (1) the Keras model on the original tile plan stitched the original's way (the
  baseline), (2) the Keras model with ``infer``'s Numba ``center`` stitching, (3) onnxruntime
  through ``cm-infer``'s pipeline in every stitch mode, plus one whole-map pass, (4) the limit:
  onnxruntime alone on the same tiles (per tile plan).
* ``scaling``: the default mode at 1, 8, 32 maps: throughput and peak RSS.
* ``threads``: the default mode with 1 and 2 intra-op threads, decode/write overlapped
  (pipeline) or not (staged).
* ``fp16`` / ``int8``: reduced-precision models, their speed and F1 difference (:mod:`.quality`).
* ``profile``: onnxruntime's own profiler on one tile, milliseconds per operator type
  (:mod:`.profile`), with each thread count of the threads suite.
* ``precision``: the accuracy cost of OpenVINO fp32 / bf16 against onnxruntime fp32 (labels
  and agreement with the original per unseen subphase, :mod:`.precision`; in this process).
* ``startup``: seconds from the ``cm-infer`` command to its first map written, default
  backend and ``--provider cpu`` (:mod:`.startup`).
* ``endtoend``: whole ``cm-infer`` runs on 5 maps, start-up included, the default backend
  against ``--provider cpu`` (onnxruntime fp32), interleaved; maps/s and each child's peak RSS.
* ``tilesize``: each backend alone on seamless tiles of several sizes, and the plan time
  each size would give (:mod:`.tilesize`; in this process).

The main suite has the OpenVINO variants ``ov-fp32`` and ``ov-bf16`` (default stitch, stage
columns, own limit) when OpenVINO is installed (bf16: on a CPU with native bf16).

The parent never imports TensorFlow; it imports onnxruntime only to check the provider and to
build the fp16 / int8 files.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Callable, Sequence

from .machine import fingerprint, load_average, utc_stamp
from .measure import VariantSpec

SUITES = ("main", "scaling", "threads", "fp16", "int8", "profile", "precision", "startup", "endtoend", "tilesize")
QUALITY_DAYS = ("P01_day18", "P01_day19", "P01_day20")
"""Labelled test days (never trained on) on which fp16 / int8 F1 is measured."""
DEFAULT_STITCH = "seamless"
"""``cm-infer``'s default ``--stitch`` (``InferOptions.stitch``)."""
ORT_MODES = ("center", "blend", "seamless")


KERAS_MISSING = 'the Keras variants need the train extra: pip install "mars-cloudmask[train]"'
"""The one line said (and recorded) when ``--keras`` is given without Keras installed."""


def keras_available() -> bool:
    """Whether Keras can be imported (the ``train`` extra), checked without importing it."""
    from importlib.util import find_spec

    return find_spec("keras") is not None


class BenchError(RuntimeError):
    """The benchmark cannot run (bad option, provider not active...); one-line message."""


@dataclass
class BenchConfig:
    """What to measure.  ``keras``: the ``.keras`` file of the same training run as ``onnx``
    (without it the Keras variants, and the ratios to the baseline, are left out)."""

    maps_root: Path
    onnx: Path
    keras: Path | None = None
    n_maps: int = 3
    repeats: int = 3
    suites: tuple[str, ...] = ("main",)
    provider: str = "cpu"
    mode_provider: str = "auto"
    """Backend of the scaling and threads suites' default mode: ``auto`` is what cm-infer runs."""
    threads: int | None = None
    bounds: tuple[int, int, int, int] | None = None
    scaling_sizes: tuple[int, ...] = (1, 8, 32)
    thread_counts: tuple[int, ...] = (1, 2)
    labels: Path | None = None
    reference: Path | None = None
    """The original model's masks (``reference/P``) for the precision suite's agreement figures."""
    quality_maps: int = 3
    calibration_maps: int = 6
    calibration_per_map: int = 3
    wholemap: bool = True
    timeout_s: float = 3600.0
    workdir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [s for s in self.suites if s not in SUITES]
        if bad:
            raise BenchError(f"unknown suite(s) {', '.join(bad)}: choose from {', '.join(SUITES)}")
        if not Path(self.onnx).is_file():
            raise BenchError(f"{self.onnx}: ONNX model not found")
        if self.keras is not None and not Path(self.keras).exists():
            raise BenchError(f"{self.keras}: Keras model not found")
        if self.n_maps < 1 or self.repeats < 1:
            raise BenchError("--maps and --repeats must be >= 1")


# --------------------------------------------------------------------------- maps
def spread(items: Sequence, n: int) -> list:
    """``n`` items evenly spaced over ``items`` (all of them if fewer), first and last included."""
    if n >= len(items):
        return list(items)
    if n == 1:
        return [items[0]]
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def find_map_paths(root: str | Path) -> list[str]:
    """Every map under ``root`` (sorted by phase, subphase, name) as path strings."""
    from mars_cloudmask.infer.maps import find_jobs

    jobs, errors = find_jobs([root])
    if errors:
        raise BenchError(errors[0])
    if not jobs:
        raise BenchError(f"{root}: no .jpg maps found")
    return [str(j.path) for j in jobs]


def quality_map_paths(all_maps: Sequence[str], n: int) -> list[str]:
    """The labelled test days P01 days 18-20 when present, else ``n`` maps spread over the set."""
    from mars_cloudmask.infer.maps import map_name

    chosen = [p for p in all_maps if map_name(p) in QUALITY_DAYS]
    return chosen or spread(all_maps, n)


# --------------------------------------------------------------------------- children
def run_worker(cmd: list[str], log: IO[str], env: dict[str, str], timeout_s: float) -> int:
    """Run one worker in its own process group; on a timeout, a signal or any exception in this
    process (SIGTERM raised as an exception by cm-bench), kill the whole group, so that no worker
    or cm-infer child it started keeps running.  Returns the worker's exit status."""
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        return proc.wait(timeout=timeout_s)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def run_variant(spec: VariantSpec, workdir: Path, timeout_s: float = 3600.0) -> dict[str, Any]:
    """Measure one variant in a fresh ``python -m mars_cloudmask.benchmarks.worker`` process.

    Returns the child's result dict (``ok`` False and a one-line ``error`` on failure); the
    child's stderr is kept in ``workdir/<name>.log``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / f"{spec.name}.spec.json"
    result_path = workdir / f"{spec.name}.result.json"
    log_path = workdir / f"{spec.name}.log"
    spec_path.write_text(json.dumps(spec.to_json(), indent=1))
    result_path.unlink(missing_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "mars_cloudmask.benchmarks.worker", str(spec_path), str(result_path)]
    t = time.perf_counter()
    with open(log_path, "w") as log:
        try:
            run_worker(cmd, log, env, timeout_s)
        except subprocess.TimeoutExpired:
            return {
                "ok": False,
                "name": spec.name,
                "error": f"{spec.name}: timed out after {timeout_s:.0f} s (log: {log_path})",
            }
    wall = time.perf_counter() - t
    if not result_path.is_file():
        tail = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
        return {
            "ok": False,
            "name": spec.name,
            "error": f"{spec.name}: worker died ({tail[-1][:300] if tail else 'no output'}; log: {log_path})",
        }
    result = json.loads(result_path.read_text())
    result.setdefault("name", spec.name)
    result["process_wall_s"] = round(wall, 2)
    if not result.get("ok"):
        result["error"] = f"{spec.name}: {result.get('error')} (log: {log_path})"
    return result


def check_provider(onnx: Path, provider: str, threads: int | None) -> list[str]:
    """Create one session with ``provider``; the providers it really got.

    Raises:
        BenchError: ``provider="cuda"`` but CUDA is not active (the runtime's one-line reason).
    """
    from mars_cloudmask.infer.runtime import ModelError, ProviderError, load_model

    try:
        return load_model(onnx, provider=provider, threads=threads).providers
    except (ProviderError, ModelError, ValueError) as exc:
        raise BenchError(str(exc)) from None


# --------------------------------------------------------------------------- suites
def plan_of(stitch: str) -> str:
    """Tile plan of a stitch: ``original`` (reference, center, blend) or ``seamless``."""
    return "seamless" if stitch in ("seamless", "wholemap") else "original"


def main_specs(cfg: BenchConfig, maps: list[str], work: Path) -> list[VariantSpec]:
    """Variants (1)-(4) of the main suite, baseline first."""
    base = dict(
        maps=maps,
        repeats=cfg.repeats,
        provider=cfg.provider,
        threads=cfg.threads,
        bounds=list(cfg.bounds) if cfg.bounds else None,
    )
    out = lambda name: str(work / "out" / name)  # noqa: E731
    specs: list[VariantSpec] = []
    if cfg.keras is not None:
        keras = dict(base, engine="keras", model=str(cfg.keras), kind="staged", threads=None)
        specs.append(
            VariantSpec(
                "keras-original",
                stitch="reference",
                out_dir=out("keras-original"),
                note="(1) Keras, original tiles, original full-array stitching: the baseline",
                **keras,
            )
        )
        specs.append(
            VariantSpec(
                "keras-center",
                stitch="center",
                out_dir=out("keras-center"),
                note="(2) Keras, original tiles, infer's Numba center stitching",
                **keras,
            )
        )
    onnx = dict(base, engine="onnx", model=str(cfg.onnx))
    for mode in ORT_MODES:
        default = " (cm-infer default)" if mode == DEFAULT_STITCH else ""
        specs.append(
            VariantSpec(
                f"ort-{mode}",
                stitch=mode,
                kind="both",
                with_limit=True,
                out_dir=out(f"ort-{mode}"),
                note=f"(3) onnxruntime, cm-infer pipeline, --stitch {mode}{default}",
                **onnx,
            )
        )
    if cfg.wholemap:
        specs.append(
            VariantSpec(
                "ort-wholemap",
                stitch="wholemap",
                kind="staged",
                out_dir=out("ort-wholemap"),
                note="(3) onnxruntime, one pass over the whole padded box (predict_whole_pass)",
                **onnx,
            )
        )
    for plan, stitch in (("original", "center"), ("seamless", "seamless")):
        specs.append(
            VariantSpec(
                f"limit-{plan}",
                stitch=stitch,
                kind="limit",
                out_dir=out(f"limit-{plan}"),
                note=f"(4) onnxruntime alone on the {plan} plan's tiles",
                **onnx,
            )
        )
    for precision in openvino_precisions():
        ov = dict(onnx, provider="openvino", precision=precision)
        specs.append(
            VariantSpec(
                f"ov-{precision}",
                stitch=DEFAULT_STITCH,
                kind="both",
                with_limit=True,
                out_dir=out(f"ov-{precision}"),
                note=f"(3) OpenVINO {precision}, cm-infer pipeline, --stitch {DEFAULT_STITCH}",
                **ov,
            )
        )
    return specs


def openvino_precisions() -> list[str]:
    """The OpenVINO variants this machine can run: [] without OpenVINO, fp32 and bf16 with native bf16."""
    from mars_cloudmask.infer import runtime

    if not runtime.openvino_installed():
        return []
    return ["fp32", "bf16"] if runtime.native_bf16(runtime.cpu_flags()) else ["fp32"]


def derive_main(results: dict[str, dict[str, Any]]) -> None:
    """Add the ratios of each variant of the main suite.

    ``x_baseline``: maps/s relative to keras-original.  ``x_limit``: s/map relative to
    onnxruntime alone on the same tiles, timed in the SAME process interleaved with the
    variant's passes when the variant has that (``with_limit``), else relative to the separate
    ``limit-<plan>`` variant; ``x_limit_separate`` always uses the latter, ``x_limit_staged``
    is the sequential pass's ratio.
    """
    base = results.get("keras-original", {})
    base_s = base.get("s_per_map") if base.get("ok") else None
    for r in results.values():
        if not r.get("ok"):
            continue
        r["x_baseline"] = base_s / r["s_per_map"] if base_s and r.get("s_per_map") else None
        lim = results.get(f"limit-{plan_of(r['spec']['stitch'])}", {})
        sep = lim.get("s_per_map") if lim.get("ok") else None
        own = r["limit"]["s_per_map"] if r["spec"]["kind"] != "limit" and "limit" in r else None
        ref = own or sep
        r["x_limit"] = r["s_per_map"] / ref if ref and r.get("s_per_map") else None
        r["x_limit_separate"] = r["s_per_map"] / sep if sep and r.get("s_per_map") else None
        r["x_limit_basis"] = "same process, interleaved" if own else "separate limit variant"
        if "staged" in r and ref:
            r["x_limit_staged"] = r["staged"]["s_per_map"] / ref


def targets(results: dict[str, dict[str, Any]], rss_limit: float = 1.5e9) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and pass / fail (None: not measured)."""

    def ok(name: str) -> dict[str, Any] | None:
        r = results.get(name)
        return r if r and r.get("ok") else None

    default = ok(f"ort-{DEFAULT_STITCH}")
    rows = [
        {
            "target": f"default cm-infer mode ({DEFAULT_STITCH}) >= 10x the maps/s of (1)",
            "value": default.get("x_baseline") if default else None,
            "limit": 10.0,
            "higher_is_better": True,
        }
    ]
    for mode in ORT_MODES:
        r = ok(f"ort-{mode}")
        rows.append(
            {
                "target": f"ort-{mode} >= 3x the maps/s of (1)",
                "value": r.get("x_baseline") if r else None,
                "limit": 3.0,
                "higher_is_better": True,
            }
        )
    for mode in ORT_MODES:
        r = ok(f"ort-{mode}")
        rows.append(
            {
                "target": f"ort-{mode} peak RSS < 1.5 GB",
                "value": (r["peak_rss_bytes"] / 1e9) if r else None,
                "limit": rss_limit / 1e9,
                "higher_is_better": False,
            }
        )
    rows.append(
        {
            "target": "default mode end to end within 1.25x of (4) on the same tiles",
            "value": default.get("x_limit") if default else None,
            "limit": 1.25,
            "higher_is_better": False,
        }
    )
    for row in rows:
        v = row["value"]
        row["passed"] = None if v is None else (v >= row["limit"] if row["higher_is_better"] else v <= row["limit"])
    return rows


def scaling_specs(cfg: BenchConfig, all_maps: list[str], work: Path) -> list[VariantSpec]:
    """The default mode through the pipeline at each size of ``cfg.scaling_sizes`` (one pass)."""
    pool = spread(all_maps, max(cfg.scaling_sizes))
    return [
        VariantSpec(
            f"scaling-{n}",
            engine="onnx",
            model=str(cfg.onnx),
            maps=spread(pool, n),
            kind="pipeline",
            stitch=DEFAULT_STITCH,
            repeats=1,
            provider=cfg.mode_provider,
            threads=cfg.threads,
            bounds=list(cfg.bounds) if cfg.bounds else None,
            out_dir=str(work / "out" / f"scaling-{n}"),
            note=f"{min(n, len(pool))} maps, one pass, --provider {cfg.mode_provider}",
        )
        for n in cfg.scaling_sizes
    ]


def thread_specs(cfg: BenchConfig, maps: list[str], work: Path) -> list[VariantSpec]:
    """The default mode with each intra-op thread count, staged (no overlap) and pipeline."""
    return [
        VariantSpec(
            f"threads-{t}",
            engine="onnx",
            model=str(cfg.onnx),
            maps=maps,
            kind="both",
            stitch=DEFAULT_STITCH,
            repeats=cfg.repeats,
            provider=cfg.mode_provider,
            threads=t,
            bounds=list(cfg.bounds) if cfg.bounds else None,
            out_dir=str(work / "out" / f"threads-{t}"),
            note=f"{t} intra-op thread(s), --provider {cfg.mode_provider}",
        )
        for t in cfg.thread_counts
    ]


def precision_spec(
    cfg: BenchConfig, name: str, model: Path, maps: list[str], work: Path, kind: str = "pipeline"
) -> VariantSpec:
    """The default mode on the quality maps with ``model`` (fp32, fp16 or int8)."""
    return VariantSpec(
        name,
        engine="onnx",
        model=str(model),
        maps=maps,
        kind=kind,
        stitch=DEFAULT_STITCH,
        repeats=cfg.repeats,
        provider=cfg.provider,
        threads=cfg.threads,
        bounds=list(cfg.bounds) if cfg.bounds else None,
        out_dir=str(work / "out" / name),
    )


def model_threshold(onnx: Path) -> float:
    """The model's cloud threshold (metadata, else the contract's default)."""
    from mars_cloudmask.export.onnx_export import read_metadata
    from mars_cloudmask.infer.contract import ModelInfo

    return ModelInfo.from_metadata(read_metadata(onnx), onnx).threshold


# --------------------------------------------------------------------------- the whole run
Progress = Callable[[str], None]


def run_benchmark(cfg: BenchConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Run the chosen suites; returns the results document (see :mod:`.report` for its use).

    Raises:
        BenchError: no maps, missing model, or the provider asked for is not active.
    """
    say = progress or (lambda _msg: None)
    started = time.time()
    doc: dict[str, Any] = {
        "tool": "cm-bench",
        "started_utc": utc_stamp(),
        "command": sys.argv,
        "machine": fingerprint(),
        "loadavg_start": load_average(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items() if k != "workdir"},
        "suites": {},
        "errors": [],
    }
    providers = check_provider(cfg.onnx, cfg.provider, cfg.threads)
    doc["provider_check"] = {"requested": cfg.provider, "session_providers": providers}
    all_maps = find_map_paths(cfg.maps_root)
    maps = spread(all_maps, cfg.n_maps)
    doc["maps"] = maps
    work = Path(cfg.workdir or tempfile.mkdtemp(prefix="cm-bench-"))
    doc["workdir"] = str(work)

    def run_all(specs: list[VariantSpec]) -> dict[str, dict[str, Any]]:
        out = {}
        for spec in specs:
            say(f"{spec.name}: {len(spec.maps)} map(s) x {spec.repeats} ({spec.note or spec.kind})")
            out[spec.name] = r = run_variant(spec, work / "runs", cfg.timeout_s)
            if r.get("ok"):
                say(f"{spec.name}: {r['s_per_map']:.2f} s/map, peak RSS {r['peak_rss_bytes'] / 1e9:.2f} GB")
            else:
                say(f"{spec.name}: FAILED {r['error']}")
                doc["errors"].append(r["error"])
        return out

    if cfg.keras is not None and not keras_available():
        say(f"keras-original, keras-center: skipped: {KERAS_MISSING}")
        doc["skipped"] = {"keras-original": KERAS_MISSING, "keras-center": KERAS_MISSING}
        cfg = replace(cfg, keras=None)
    if "main" in cfg.suites:
        res = run_all(main_specs(cfg, maps, work))
        derive_main(res)
        doc["suites"]["main"] = {"variants": res, "targets": targets(res)}
    if "scaling" in cfg.suites:
        doc["suites"]["scaling"] = {"variants": run_all(scaling_specs(cfg, all_maps, work))}
    if "threads" in cfg.suites:
        doc["suites"]["threads"] = {"variants": run_all(thread_specs(cfg, maps, work))}
    if {"fp16", "int8"} & set(cfg.suites):
        doc["suites"].update(precision_suites(cfg, all_maps, work, run_all, say))
    if "profile" in cfg.suites:
        from .profile import op_profile

        say("profile: onnxruntime's profiler on 668 px tiles")
        doc["suites"]["profile"] = {str(t): op_profile(cfg.onnx, threads=t) for t in cfg.thread_counts}
    if "precision" in cfg.suites:
        from .precision import precision_figures

        doc["suites"]["precision"] = precision_figures(
            cfg.onnx, cfg.maps_root, cfg.labels, cfg.reference, threads=cfg.threads, progress=say
        )
    if "startup" in cfg.suites:
        from .startup import startup_suite

        variants = {
            "default": ["--model", str(cfg.onnx)],
            "onnxruntime-cpu": ["--model", str(cfg.onnx), "--provider", "cpu"],
        }
        doc["suites"]["startup"] = startup_suite(maps[0], variants, repeats=cfg.repeats, progress=say)
    if "endtoend" in cfg.suites:
        from .startup import END_TO_END_MAPS, end_to_end_suite

        variants = {
            "onnxruntime-fp32 (--provider cpu)": ["--model", str(cfg.onnx), "--provider", "cpu"],
            "default (auto)": ["--model", str(cfg.onnx)],
        }
        doc["suites"]["endtoend"] = end_to_end_suite(
            spread(all_maps, END_TO_END_MAPS), variants, repeats=cfg.repeats, progress=say
        )
    if "tilesize" in cfg.suites:
        from .tilesize import tilesize_suite

        backends = {
            "onnxruntime-fp32": ("cpu", "fp32"),
            **{f"openvino-{p}": ("openvino", p) for p in openvino_precisions()},
        }
        doc["suites"]["tilesize"] = tilesize_suite(
            str(cfg.onnx), backends, threads=cfg.threads, repeats=cfg.repeats, progress=say
        )
    doc["loadavg_end"] = load_average()
    doc["wall_s"] = round(time.time() - started, 1)
    return doc


def precision_suites(cfg: BenchConfig, all_maps: list[str], work: Path, run_all, say: Progress) -> dict[str, Any]:
    """fp16 and int8 suites: build the models, run them and fp32 on the quality maps, compare."""
    from .quality import calibration_tiles, compare_masks, int8_verdict, make_fp16, make_int8, model_is_trained

    qmaps = quality_map_paths(all_maps, cfg.quality_maps)
    labels = cfg.labels if cfg.labels and Path(cfg.labels).is_dir() else None
    threshold = model_threshold(cfg.onnx)
    trained = model_is_trained(cfg.onnx)
    models = work / "models"
    models.mkdir(parents=True, exist_ok=True)
    fp32 = run_all([precision_spec(cfg, "fp32", cfg.onnx, qmaps, work)])["fp32"]
    common = {
        "maps": qmaps,
        "labels": str(labels) if labels else None,
        "threshold": threshold,
        "trained_model": trained,
    }
    out: dict[str, Any] = {}

    def compare(name: str, res: dict[str, Any]) -> dict[str, Any] | None:
        if not (res.get("ok") and fp32.get("ok")):
            return None
        return compare_masks(res["spec"]["out_dir"], fp32["spec"]["out_dir"], threshold, labels)

    if "fp16" in cfg.suites:
        say("fp16: converting with onnxconverter-common")
        path = make_fp16(cfg.onnx, models / "model-fp16.onnx")
        res = run_all([precision_spec(cfg, "fp16", path, qmaps, work)])
        out["fp16"] = {**common, "variants": {"fp32": fp32, **res}, "comparison": compare("fp16", res["fp16"])}
    if "int8" in cfg.suites:
        excluded = set(qmaps)
        cal_maps = spread([m for m in all_maps if m not in excluded] or all_maps, cfg.calibration_maps)
        say(f"int8: calibrating on {cfg.calibration_per_map} tiles of each of {len(cal_maps)} maps")
        tiles = calibration_tiles(cal_maps, cfg.calibration_per_map, bounds=cfg.bounds)
        t = time.perf_counter()
        path = make_int8(cfg.onnx, models / "model-int8.onnx", tiles)
        quant_s = time.perf_counter() - t
        res = run_all(
            [
                precision_spec(cfg, "int8", path, qmaps, work),
                precision_spec(cfg, "limit-fp32", cfg.onnx, qmaps, work, kind="limit"),
                precision_spec(cfg, "limit-int8", path, qmaps, work, kind="limit"),
            ]
        )
        comparison = compare("int8", res["int8"])
        verdict = int8_verdict(comparison or {}, trained, res["int8"].get("s_per_map"), fp32.get("s_per_map"))
        out["int8"] = {
            **common,
            "calibration_maps": cal_maps,
            "calibration_tiles": int(len(tiles)),
            "quantize_s": round(quant_s, 1),
            "variants": {"fp32": fp32, **res},
            "comparison": comparison,
            "verdict": verdict,
        }
    return out
