"""cm-bench: the original's stitching, the suites' machinery, precision variants, the CLI.

The smoke test runs the whole ``main`` suite (Keras baseline, Keras + Numba, every
onnxruntime mode, whole-map pass, limits) on ONE synthetic map inside a small box, with the
tiny ONNX model and a tiny Keras U-Net, so the benchmark code cannot rot.  It measures nothing
worth quoting: real figures come from ``cm-bench`` runs (benchmarks/results/).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mars_cloudmask.benchmarks.quality import (
    calibration_tiles,
    compare_masks,
    int8_verdict,
    make_fp16,
    make_int8,
    model_is_trained,
)
from mars_cloudmask.benchmarks.reference import ReferenceStitcher, reference_array_bytes
from mars_cloudmask.benchmarks.runner import BenchConfig, BenchError, run_benchmark, spread
from mars_cloudmask.infer.geometry import INVALID, MAP_HEIGHT, MAP_WIDTH, Bounds, TilePlan, plan_tiles
from mars_cloudmask.infer.stitch import Stitcher, spline_window
from tests.synthetic import write_map_tree
from tests.tiny_model import make_tiny_unet_onnx

BOX = (0, 600, 700, 1200)
"""xmin, xmax, ymin, ymax: a small box, so the original's full-map array holds only 4 tiles."""


# --------------------------------------------------------------------------- the baseline's stitching
def test_reference_stitcher_selects_exactly_like_the_numba_center_kernel():
    bounds = Bounds(3400, 3600, 100, 250)  # 200 x 150 px box; 100 px tiles -> 3 x 2 overlapping tiles
    plan = plan_tiles(bounds, "original", tile_out=100)
    assert plan.n_tiles == 6
    rng = np.random.default_rng(3)
    preds = rng.random((plan.n_tiles, 100, 100), dtype=np.float32)
    ref, new = ReferenceStitcher(plan), Stitcher.for_plan("center", plan)
    for (y, x), p in zip(plan.origins(), preds, strict=True):
        ref.add(y, x, p)
        new.add(y, x, p)
    a, b = ref.result(), new.result()
    assert a.shape == (150, 200) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert (a != INVALID).all()  # the original plan covers the whole box


def test_reference_stitcher_takes_the_first_tile_on_ties():
    # two 100 px tiles 51 px apart: at column 75 both windows are exactly equal (w[75] == w[24])
    plan = TilePlan(
        Bounds(0, 151, 0, 100), ys=np.array([0]), xs=np.array([0, 51]), tile_out=100, canvas_h=100, canvas_w=151
    )
    w = spline_window(100)
    assert w[75] == w[24] and w[74] > w[23] and w[76] < w[25]
    ref, new = ReferenceStitcher(plan), Stitcher.for_plan("center", plan)
    for k, (y, x) in enumerate(plan.origins()):
        ref.add(y, x, np.full((100, 100), float(k), np.float32))
        new.add(y, x, np.full((100, 100), float(k), np.float32))
    out = ref.result()
    assert out[50, 74] == 0.0 and out[50, 75] == 0.0 and out[50, 76] == 1.0
    np.testing.assert_array_equal(out, new.result())


def test_the_original_array_of_a_typical_map_is_5_8_gb():
    assert round(reference_array_bytes(56) / 1e9, 1) == 5.8  # docs/spec.md §4.4


def test_spread_picks_evenly_spaced_maps():
    assert spread(list(range(10)), 3) == [0, 4, 9]
    assert spread(list(range(3)), 8) == [0, 1, 2]
    assert spread(["a", "b"], 1) == ["a"]


# --------------------------------------------------------------------------- precision variants
def test_fp16_and_int8_variants_keep_the_contract_and_stay_close(tmp_path, tiny_model, map_tree):
    from mars_cloudmask.infer.runtime import load_model

    fp16 = make_fp16(tiny_model, tmp_path / "tiny-fp16.onnx")
    tiles = calibration_tiles([map_tree], per_map=2)
    assert tiles.shape[1:] == (668, 668, 3) and tiles.dtype == np.uint8 and 1 <= len(tiles) <= 4
    int8 = make_int8(tiny_model, tmp_path / "tiny-int8.onnx", tiles)
    ref = load_model(tiny_model, provider="cpu").run(tiles[:1])
    for path, precision, tol in ((fp16, "fp16", 0.01), (int8, "int8", 0.25)):
        model = load_model(path, provider="cpu")  # contract: uint8 NHWC in, float32 out
        assert model.info.metadata["precision"] == precision
        assert model.info.name == "tiny-random-unet"
        got = model.run(tiles[:1])
        assert got.dtype == np.float32 and got.shape == ref.shape
        assert np.abs(got - ref).max() < tol
    assert not model_is_trained(tiny_model)  # its metadata says "none (random weights...)"


def _write(path: Path, cloud_cols: int) -> Path:
    from mars_cloudmask.infer.netcdf import write_mask

    mask = np.full((MAP_HEIGHT, MAP_WIDTH), INVALID, np.float32)
    mask[100:110, :200] = 0.1
    mask[100:110, :cloud_cols] = 0.95
    return write_mask(path, mask, {"threshold": 0.912})


def test_compare_masks_counts_pixels_by_hand(tmp_path):
    # fp32: 10 rows x 100 cloud columns; variant: 10 rows x 50 -> TP 500, FN 500, FP 0
    _write(tmp_path / "fp32" / "cloudmask_P01_day18.ncdf", 100)
    _write(tmp_path / "var" / "cloudmask_P01_day18.ncdf", 50)
    c = compare_masks(tmp_path / "var", tmp_path / "fp32", threshold=0.912)
    assert c["days"] == ["P01_day18"]
    assert c["f1_vs_fp32"] == pytest.approx(2 * 500 / (2 * 500 + 500))
    assert c["fp32_cloud_pixels"] == 1000
    assert c["class_flips"] == pytest.approx(500 / 2000)
    assert c["max_abs_diff"] == pytest.approx(0.85)


def test_compare_masks_falls_back_to_a_probe_threshold_when_nothing_is_cloud(tmp_path):
    _write(tmp_path / "fp32" / "cloudmask_P01_day18.ncdf", 0)  # 2000 valid pixels, all 0.1
    _write(tmp_path / "var" / "cloudmask_P01_day18.ncdf", 0)
    c = compare_masks(tmp_path / "var", tmp_path / "fp32", threshold=0.912)
    assert c["f1_vs_fp32"] is None and c["fp32_cloud_pixels"] == 0
    assert c["probe_threshold"] == pytest.approx(0.1)
    assert c["f1_vs_fp32_at_probe"] == pytest.approx(1.0)  # identical masks
    verdict = int8_verdict(c, trained=False, int8_s_per_map=1.0, fp32_s_per_map=2.0)
    assert verdict["f1_drop"] == pytest.approx(0.0) and "95th-percentile" in verdict["basis"]


def test_int8_is_offered_only_when_f1_holds_and_it_is_faster():
    good = {"f1_drop": 0.004, "f1_vs_fp32": 0.99}
    assert int8_verdict(good, trained=True, int8_s_per_map=1.0, fp32_s_per_map=2.0)["offer_in_cm_infer"]
    assert not int8_verdict({"f1_drop": 0.006}, True, 1.0, 2.0)["offer_in_cm_infer"]
    assert not int8_verdict(good, True, 2.5, 2.0)["offer_in_cm_infer"]  # slower
    untrained = int8_verdict(good, trained=False, int8_s_per_map=1.0, fp32_s_per_map=2.0)
    assert untrained["f1_drop"] == pytest.approx(0.01) and not untrained["offer_in_cm_infer"]
    assert "fp32 masks" in untrained["basis"]


# --------------------------------------------------------------------------- provider
def test_provider_cuda_fails_clearly_without_cuda(tmp_path, tiny_model, map_tree):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(BenchError, match="cuda"):
        run_benchmark(BenchConfig(maps_root=map_tree, onnx=tiny_model, provider="cuda", workdir=tmp_path))


def test_cli_exits_2_with_one_line_for_a_missing_model(tmp_path, map_tree):
    from typer.testing import CliRunner

    from mars_cloudmask.benchmarks.cli import app

    result = CliRunner().invoke(app, [str(map_tree), "--onnx", str(tmp_path / "nope.onnx"), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "nope.onnx: ONNX model not found" in result.output


def test_cli_defaults_to_the_shipped_model_as_cm_infer_does(tmp_path, monkeypatch):
    """The README's `cm-bench --suite int8 --workdir DIR` ran into "Missing option '--onnx'"."""
    from typer.testing import CliRunner

    from mars_cloudmask.benchmarks import cli

    seen = {}

    def fake_run(cfg, progress):
        seen.update(onnx=cfg.onnx, provider=cfg.provider, mode=cfg.mode_provider)
        raise BenchError("stop here")

    monkeypatch.setattr("mars_cloudmask.benchmarks.runner.run_benchmark", fake_run)
    result = CliRunner().invoke(cli.app, [str(tmp_path), "--suite", "int8", "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 2 and "stop here" in result.output
    from mars_cloudmask.infer.runtime import default_model_path

    assert seen == {"onnx": default_model_path(), "provider": "cpu", "mode": "auto"}
    CliRunner().invoke(cli.app, [str(tmp_path), "--provider", "openvino", "--workdir", str(tmp_path / "w")])
    assert (seen["provider"], seen["mode"]) == ("openvino", "openvino")


def test_sigterm_kills_the_worker_and_removes_the_scratch_folder(tmp_path, tiny_model, map_tree):
    """After SIGTERM, cm-bench's worker ran on for seconds and its temporary folder stayed."""
    import os
    import signal
    import time

    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch_root))
    cmd = [sys.executable, "-m", "mars_cloudmask.benchmarks", str(map_tree), "--onnx", str(tiny_model),
           "--suite", "main", "--no-wholemap", "--maps", "1", "--repeats", "50", "--out", str(tmp_path / "res")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    spec = None
    while time.monotonic() < deadline and spec is None:  # wait for the first worker to start
        spec = next(iter(scratch_root.rglob("*.spec.json")), None)
        time.sleep(0.2)
    assert spec is not None, proc.communicate(timeout=30)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err
    assert list(scratch_root.glob("cm-bench-*")) == []  # the scratch folder is gone
    time.sleep(0.5)
    workers = subprocess.run(["pgrep", "-f", str(spec)], capture_output=True, text=True).stdout.split()
    assert workers == []  # and no worker runs on
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").iterdir())


# --------------------------------------------------------------------------- smoke: the main suite
@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory) -> Path:
    """A tiny Keras U-Net (width 2, depth 4: the real geometry), built in a subprocess so this
    test process never imports TensorFlow."""
    path = tmp_path_factory.mktemp("keras") / "tiny.keras"
    code = (
        "import sys; from mars_cloudmask.train_kit.model import build_unet; "
        "build_unet(width=2, depth=4).save(sys.argv[1])"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(path)],
        check=True,
        capture_output=True,
        env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    return path


def test_main_suite_runs_every_variant_on_one_synthetic_map(tmp_path, tiny_keras):
    from mars_cloudmask.benchmarks.report import write_results
    from mars_cloudmask.infer.netcdf import read_mask

    maps = tmp_path / "maps"
    write_map_tree(maps, days=(1,))
    onnx = make_tiny_unet_onnx(tmp_path / "tiny.onnx")
    cfg = BenchConfig(
        maps_root=maps,
        onnx=onnx,
        keras=tiny_keras,
        n_maps=1,
        repeats=1,
        suites=("main",),
        bounds=BOX,
        labels=None,
        workdir=tmp_path / "work",
    )
    doc = run_benchmark(cfg)
    assert doc["errors"] == []
    v = doc["suites"]["main"]["variants"]
    from mars_cloudmask.benchmarks.runner import openvino_precisions

    ov = [f"ov-{p}" for p in openvino_precisions()]
    assert list(v) == [
        "keras-original",
        "keras-center",
        "ort-center",
        "ort-blend",
        "ort-seamless",
        "ort-wholemap",
        "limit-original",
        "limit-seamless",
        *ov,
    ]
    assert v["keras-original"]["x_baseline"] == pytest.approx(1.0)
    for name, r in v.items():
        assert r["ok"] and r["s_per_map"] > 0 and r["peak_rss_bytes"] > 50e6, name
        assert r["tensorflow_imported"] == name.startswith("keras"), name  # TF only in Keras processes
        if name.startswith("ort"):
            assert r["session_providers"] == ["CPUExecutionProvider"]
        if name.startswith("ov-"):
            assert (r["provider"], r["precision"]) == ("openvino", name[3:]) and "stages_s_per_map" in r["staged"]
    # same tiles for the limit as for the modes using its plan
    assert (
        v["limit-original"]["tiles_per_map"]
        == v["ort-center"]["tiles_per_map"]
        == v["keras-original"]["tiles_per_map"]
        == 4
    )
    assert v["limit-seamless"]["tiles_per_map"] == v["ort-seamless"]["tiles_per_map"]
    # the stage clocks account for the sequential pass
    staged = v["ort-center"]["staged"]
    assert 0.8 * staged["s_per_map"] <= sum(staged["stages_s_per_map"].values()) <= staged["s_per_map"]
    # the original's stitching and infer's center kernel write the same mask for the same model
    out = Path(doc["workdir"]) / "out"
    rel = Path("P") / "P01" / "cloudmasks" / "cloudmask_P01_day01.ncdf"
    a, b = read_mask(out / "keras-original" / rel), read_mask(out / "keras-center" / rel)
    assert (a > 0).sum() > 1000
    np.testing.assert_array_equal(a, b)
    if "ov-fp32" in v:  # OpenVINO fp32 through the same pipeline writes onnxruntime's mask
        ort_mask, ov_mask = read_mask(out / "ort-seamless" / rel), read_mask(out / "ov-fp32" / rel)
        np.testing.assert_allclose(ov_mask, ort_mask, atol=1e-5, rtol=0)
    targets = doc["suites"]["main"]["targets"]
    assert len(targets) == 8 and all(t["passed"] in (True, False) for t in targets)

    paths = write_results(doc, tmp_path / "results", label="smoke")
    assert json.loads(paths["json"].read_text())["suites"]["main"]["variants"]["ort-seamless"]["ok"]
    md = paths["markdown"].read_text()
    assert "| keras-original |" in md and "### Targets" in md
    assert paths["png"].stat().st_size > 10_000


def test_op_profile_accounts_for_the_tile_time(tiny_model):
    from mars_cloudmask.benchmarks.profile import op_profile

    p = op_profile(tiny_model, threads=1, tiles=1)
    assert "Conv" in p["ops_ms_per_tile"] and "ConvTranspose" in p["ops_ms_per_tile"]
    assert 0 < p["kernel_ms_per_tile"] <= p["tile_s"] * 1000 * 1.05  # kernels fit inside the wall time


# --------------------------------------------------------------------------- OpenVINO-era suites
def test_bf16_verdict_follows_the_f1_cost_on_the_test_days():
    from mars_cloudmask.benchmarks.precision import MAX_F1_COST, bf16_verdict

    ok = bf16_verdict({"openvino-fp32": {"test_days_18_20": 0.870}, "openvino-bf16": {"test_days_18_20": 0.868}})
    bad = bf16_verdict({"openvino-fp32": {"test_days_18_20": 0.870}, "openvino-bf16": {"test_days_18_20": 0.866}})
    assert MAX_F1_COST == 0.003
    assert ok == {"measured": True, "f1_cost": 0.002, "max_cost": 0.003, "bf16_default": True}
    assert bad["bf16_default"] is False and bad["f1_cost"] == pytest.approx(0.004)
    assert bf16_verdict({"openvino-fp32": {"test_days_18_20": None}})["measured"] is False


def test_tile_plan_estimates_multiply_tiles_by_the_time_per_tile():
    from mars_cloudmask.benchmarks.tilesize import plan_estimates
    from mars_cloudmask.infer.predict import seamless_tile_out

    box = Bounds(0, MAP_WIDTH, 0, 1090)
    n = {t: plan_tiles(box, "seamless", t).n_tiles for t in (484, 612)}
    est = plan_estimates({484: 0.10, 612: 0.30}, margin=92, align=16, heights=(1090,))["1090"]
    assert est["n_tiles"] == {"484": n[484], "612": n[612]}
    assert est["estimated_s"] == {"484": round(n[484] * 0.10, 3), "612": round(n[612] * 0.30, 3)}
    assert est["fastest_timed"] == min((484, 612), key=lambda t: n[t] * (0.10 if t == 484 else 0.30))
    assert est["seamless_tile_out"] == seamless_tile_out(box)


def test_startup_times_cm_infer_to_its_first_map(tmp_path, tiny_model):
    from mars_cloudmask.benchmarks.startup import first_map_time, version_time

    [jpg] = write_map_tree(tmp_path / "maps", days=(1,))
    r = first_map_time(jpg, ["--model", str(tiny_model), "--provider", "cpu", "--bounds", "0", "600", "700", "1200"])
    assert r["ok"], r
    assert 0 < r["first_map_s"] <= r["exit_s"]
    bad = first_map_time(tmp_path / "nothing.jpg", ["--model", str(tiny_model)])
    assert not bad["ok"] and bad["first_map_s"] is None and bad["error"]
    v = version_time(repeats=1)
    assert v["heavy_modules_on_import"] == [] and v["median_s"] > 0


def test_end_to_end_runs_whole_cm_infer_commands_and_compares_them(tmp_path, tiny_model):
    from mars_cloudmask.benchmarks.report import endtoend_lines
    from mars_cloudmask.benchmarks.startup import end_to_end_suite

    jpgs = write_map_tree(tmp_path / "maps", days=(1, 2))
    box = ["--bounds", "0", "600", "700", "1200", "--model", str(tiny_model)]
    suite = end_to_end_suite(
        jpgs, {"cpu": [*box, "--provider", "cpu"], "ov": [*box, "--provider", "openvino"]}, repeats=1
    )
    for v in suite["variants"].values():
        assert v["ok"], v
        assert 0 < v["first_map_s"] <= v["wall_s"] and v["maps_per_s"] == pytest.approx(2 / v["wall_s"])
        assert 50e6 < v["peak_rss_bytes"] < 4e9  # the child's own peak, not this process's
    assert suite["variants"]["cpu"]["x_first"] == 1.0
    table = "\n".join(endtoend_lines(suite))
    assert "| cpu |" in table and "| ov |" in table
    broken = end_to_end_suite([tmp_path / "nothing.jpg"], {"x": ["--model", str(tiny_model)]}, repeats=1)
    assert not broken["variants"]["x"]["ok"] and broken["variants"]["x"]["error"]
