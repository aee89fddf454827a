"""The ``cm-infer`` command (infer/cli.py): exit codes, messages, summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from mars_cloudmask.infer import runtime
from mars_cloudmask.infer.cli import EXIT_FAILED, EXIT_FATAL, app
from mars_cloudmask.infer.netcdf import read_mask
from tests.synthetic import write_map_tree

runner = CliRunner()


def cm_infer(*args) -> "object":
    return runner.invoke(app, [str(a) for a in args])


def test_version_answers_without_importing_the_runtime():
    code = (
        "import sys\n"
        "from mars_cloudmask.infer.cli import main\n"
        "sys.argv = ['cm-infer', '--version']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None)\n"
        "heavy = [m for m in ('onnxruntime', 'numba', 'netCDF4') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "cm-infer (mars-cloudmask)" in proc.stdout and "HEAVY []" in proc.stdout


def test_a_run_then_a_rerun(tiny_model, map_tree, tmp_path):
    out = tmp_path / "out"
    res = cm_infer(map_tree, "--out", out, "--model", tiny_model, "--provider", "cpu")
    assert res.exit_code == 0, res.output
    assert "done 2, skipped 0" in res.output and "failed 0" in res.output and "on CPU" in res.output
    assert len(list(out.rglob("*.ncdf"))) == 2
    again = cm_infer(map_tree, "--out", out, "--model", tiny_model)
    assert again.exit_code == 0 and "done 0, skipped 2" in again.output


def test_options_reach_the_files(tiny_model, map_tree, tmp_path):
    out = tmp_path / "out"
    res = cm_infer(
        map_tree / "P" / "P01" / "P01_day01_zequat.jpg",
        "--out",
        out,
        "--model",
        tiny_model,
        "--binary",
        "--threshold",
        "0.45",
        "--bounds",
        0,
        1800,
        400,
        1400,
        "--stitch",
        "blend",
        "--batch-size",
        2,
        "--threads",
        1,
        "--copy-maps",
    )
    assert res.exit_code == 0, res.output
    record = json.loads((out / "cm-infer-run.json").read_text())
    opts = record["plan"]
    assert opts["binary"] and opts["threshold"] == 0.45 and opts["bounds"] == [0, 1800, 400, 1400]
    assert opts["stitch"] == "blend" and opts["batch_size"] == 2 and record["model"]["threads"] == 1
    mask = read_mask(out / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day01.ncdf")
    assert (mask[:, 1800:] == -999).all() and {0.0, 1.0} <= set(mask[mask > -999].tolist())
    assert (out / "P" / "P01" / "mdgms" / "P01_day01_zequat.jpg").exists()


def test_a_bad_map_fails_the_exit_status_but_not_the_run(tiny_model, map_tree, tmp_path):
    bad = map_tree.resolve() / "P" / "P01" / "P01_day02_zequat.jpg"
    bad.write_bytes(b"")
    res = cm_infer(map_tree, "--out", tmp_path / "out", "--model", tiny_model)
    assert res.exit_code == EXIT_FAILED
    assert "done 1" in res.output and "failed 1" in res.output
    lines = res.output.splitlines()
    assert lines.count(f"FAILED: {bad}: empty file") == 2  # as it happens, and in the summary


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--model", "{tmp}/missing.onnx"), "{tmp}/missing.onnx: model file not found"),
        (("--stitch", "smooth"), "--stitch smooth: use one of seamless, center, blend"),
        (("--bounds", 10, 5, 0, 100), "bounds out of range"),
    ],
)
def test_fatal_errors_are_one_line_and_exit_2(tiny_model, map_tree, tmp_path, args, expected):
    args = [str(a).replace("{tmp}", str(tmp_path)) for a in args]
    if "--model" not in args:
        args += ["--model", str(tiny_model)]
    res = cm_infer(map_tree, "--out", tmp_path / "out", *args)
    assert res.exit_code == EXIT_FATAL
    lines = [ln for ln in res.output.splitlines() if ln.startswith("cm-infer: error:")]
    assert len(lines) == 1 and expected.replace("{tmp}", str(tmp_path)) in lines[0], res.output


def test_an_unwritable_out(tiny_model, map_tree, tmp_path):
    (tmp_path / "file").write_text("")
    res = cm_infer(map_tree, "--out", tmp_path / "file" / "out", "--model", tiny_model)
    assert res.exit_code == EXIT_FATAL and "output folder is not writable" in res.output


def test_no_model_shipped_says_how_to_get_one(map_tree, tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "default_model_path", lambda: tmp_path / "cloudmask-unet.onnx")
    res = cm_infer(map_tree, "--out", tmp_path / "out")
    assert res.exit_code == EXIT_FATAL and "cm-train" in res.output and "cm-export" in res.output


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this onnxruntime has CUDA")
def test_provider_cuda_without_cuda(tiny_model, map_tree, tmp_path):
    res = cm_infer(map_tree, "--out", tmp_path / "out", "--model", tiny_model, "--provider", "cuda")
    assert res.exit_code == EXIT_FATAL and "no CUDA provider" in res.output
    assert not (tmp_path / "out" / "P").exists()


def test_doctor(tiny_model):
    res = cm_infer("--doctor", "--model", tiny_model)
    assert res.exit_code == 0
    for needle in ("onnxruntime: ", "numba: ", "available providers:", "cuDNN:", "active providers:", "threads:"):
        assert needle in res.output


def test_missing_roots_and_out():
    assert cm_infer("--out", "x").exit_code == EXIT_FATAL
    assert cm_infer("somewhere").exit_code == EXIT_FATAL


def cm_infer_process(maps: Path, out: Path, model: Path) -> list[str]:
    """The command line of a real ``cm-infer`` process (for tests that signal or kill it)."""
    run = "from mars_cloudmask.infer.cli import main; main()"
    return [sys.executable, "-c", run, str(maps), "--out", str(out), "--model", str(model), "--threads", "1"]


@pytest.mark.slow
def test_killing_cm_infer_and_rerunning_finishes_the_rest(tiny_model, tmp_path):
    write_map_tree(tmp_path / "maps", days=(1, 2, 3, 4))
    out = tmp_path / "out"
    cmd = cm_infer_process(tmp_path / "maps", out, tiny_model)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(out.rglob("*.ncdf")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = sorted(out.rglob("*.ncdf"))
    assert 1 <= len(first) < 4, "the kill must land mid-run"
    for nc in first:
        assert read_mask(nc).shape == (1801, 3600)  # whole files only
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"done {4 - len(first)}, skipped {len(first)}" in res.stdout
    assert len(list(out.rglob("*.ncdf"))) == 4


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_run_with_an_accurate_record_and_no_temporaries(tiny_model, tmp_path, sig):
    write_map_tree(tmp_path / "maps", days=(1, 2, 3, 4, 5, 6))
    out = tmp_path / "out"
    out.mkdir()
    (out / "cm-infer-run.json").write_text('{"stale": "a record from an earlier run"}')
    cmd = cm_infer_process(tmp_path / "maps", out, tiny_model)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(out.rglob("*.ncdf")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, sig)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, stdout
    written = sorted(out.rglob("*.ncdf"))
    assert 1 <= len(written) < 6, "the signal must land mid-run"
    record = json.loads((out / "cm-infer-run.json").read_text())
    assert record["interrupted"] == signal.Signals(sig).name
    assert record["counts"]["done"] == len(written) and sorted(record["outputs"]) == [str(p) for p in written]
    assert f"STOPPED by {signal.Signals(sig).name}" in stdout
    assert not [p for p in out.rglob(".cloudmask_*")]  # no temporaries, no lock sidecars
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and f"done {6 - len(written)}, skipped {len(written)}" in res.stdout


@pytest.mark.parametrize(
    "option, named",
    [
        (("--threshold", "47"), "--threshold 47"),
        (("--tile-out", "501"), "--tile-out 501"),
        (("--polar-offset", "100"), "--polar-offset 100"),
    ],
)
def test_a_bad_option_exits_2_and_writes_nothing(tiny_model, map_tree, tmp_path, option, named):
    res = cm_infer(map_tree, "--out", tmp_path / "out", "--model", tiny_model, *option)
    assert res.exit_code == EXIT_FATAL and named in res.output and not (tmp_path / "out").exists()


def test_the_summary_names_skips_only_when_there_are_some(tiny_model, map_tree, tmp_path):
    first = cm_infer(map_tree, "--out", tmp_path / "out", "--model", tiny_model)
    assert "done 2, skipped 0, failed 0" in first.output and "--overwrite to redo" not in first.output
    again = cm_infer(map_tree, "--out", tmp_path / "out", "--model", tiny_model)
    assert "skipped 2 (outputs exist; --overwrite to redo)" in again.output


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs mounted for the test (skips where mounting is not allowed)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_really_full_disk_stops_the_run_says_why_and_a_rerun_elsewhere_finishes(tiny_model, tmp_path, small_disk):
    write_map_tree(tmp_path / "maps", days=(1, 2, 3, 4))
    out = small_disk / "out"
    res = cm_infer(tmp_path / "maps", "--out", out, "--model", tiny_model, "--threads", "1")
    written = sorted(out.rglob("*.ncdf"))
    assert res.exit_code == EXIT_FAILED, res.output
    assert "No space left on device" in res.output and "STOPPED:" in res.output and "Traceback" not in res.output
    assert len(written) < 4 and "Permission denied" not in res.output
    assert not [p for p in out.rglob(".cloudmask_*")]  # no temporaries, nothing held open
    for nc in written:
        assert read_mask(nc).shape == (1801, 3600)
    record_line = [
        ln for ln in res.output.splitlines() if ln.startswith(("run record:", "FAILED: ")) and "record" in ln
    ]
    assert record_line, res.output  # the record was written, or its failure said in one line


def test_report_and_nc_suffix_options(tiny_model, map_tree, tmp_path):
    out = tmp_path / "out"
    res = cm_infer(map_tree, "--out", out, "--model", tiny_model, "--suffix", ".nc", "--report")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.rglob("cloudmask_*")) == ["cloudmask_P01_day01.nc", "cloudmask_P01_day02.nc"]
    page = (out / "index.html").read_text()
    assert "P01_day01" in page and "P01_day02" in page and f"report: {out / 'index.html'}" in res.output


def test_precision_and_provider_reach_the_record_and_bad_pairs_exit_2(tiny_model, map_tree, tmp_path):
    out = tmp_path / "out"
    res = cm_infer(map_tree, "--out", out, "--model", tiny_model, "--provider", "openvino", "--precision", "fp32")
    assert res.exit_code == 0, res.output
    record = json.loads((out / "cm-infer-run.json").read_text())
    assert record["provider"] == "openvino" and record["precision"] == "fp32" and "OPENVINO fp32" in res.output
    bad = cm_infer(map_tree, "--out", tmp_path / "b", "--model", tiny_model, "--provider", "cpu", "--precision", "bf16")
    assert bad.exit_code == EXIT_FATAL and "bf16" in bad.output and not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def five_model(tmp_path_factory) -> Path:
    """A tiny model with 5 input channels (rgb, bdiff10, bdiff50)."""
    from tests.tiny_model import make_tiny_unet_onnx

    return make_tiny_unet_onnx(tmp_path_factory.mktemp("five") / "five.onnx", channels="rgb,bdiff10,bdiff50")


def test_a_channel_model_writes_masks_and_a_composite_then_a_rerun_reuses_it(five_model, tmp_path):
    write_map_tree(tmp_path / "maps", days=(1, 2))
    out = tmp_path / "out"
    res = cm_infer(tmp_path / "maps", "--out", out, "--model", five_model, "--provider", "cpu")
    assert res.exit_code == 0, res.output
    composite = out / "P" / "P01" / "background_P01.nc"
    assert "input channels rgb,bdiff10,bdiff50" in res.output
    assert f"background built: {composite} (2 maps of {tmp_path / 'maps' / 'P' / 'P01'}" in res.output
    assert len(list(out.rglob("cloudmask_*.ncdf"))) == 2 and composite.is_file()
    stamp = composite.stat().st_mtime_ns
    (out / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day02.ncdf").unlink()
    again = cm_infer(tmp_path / "maps", "--out", out, "--model", five_model, "--provider", "cpu")
    assert again.exit_code == 0 and "done 1, skipped 1" in again.output
    assert f"background reused: {composite}" in again.output and composite.stat().st_mtime_ns == stamp


def test_background_option_one_map_and_its_refusals(five_model, tiny_model, tmp_path):
    from mars_cloudmask.infer.background import composite_of_files, write_netcdf

    day1 = write_map_tree(tmp_path / "maps", days=(1, 2))[0]
    write_map_tree(tmp_path / "maps", subphase="P02", days=(1,))
    given = write_netcdf(composite_of_files([day1], [10, 50]), tmp_path / "bg.nc")
    out = tmp_path / "out"
    one = cm_infer(day1, "--out", out, "--model", five_model, "--provider", "cpu", "--background", given)
    assert one.exit_code == 0, one.output
    assert f"background given: {given} (--background)" in one.output
    assert not (out / "P" / "P01" / "background_P01.nc").exists()
    record = json.loads((out / "cm-infer-run.json").read_text())
    assert record["plan"]["background"] == str(given) and record["maps"][0]["background"] == str(given)
    refusals = [
        (tiny_model, tmp_path / "maps" / "P" / "P01", "input channels 'rgb' need no background composite"),
        (five_model, tmp_path / "maps", "the maps come from 2 folders"),
    ]
    for model, root, message in refusals:
        res = cm_infer(root, "--out", tmp_path / "refused", "--model", model, "--background", given)
        assert res.exit_code == EXIT_FATAL and message in res.output, res.output
        assert len([line for line in res.output.splitlines() if line.startswith("cm-infer: error:")]) == 1
        assert not (tmp_path / "refused").exists()


def test_an_unreadable_subphase_fails_each_map_with_one_line_and_exit_1(five_model, tmp_path):
    write_map_tree(tmp_path / "maps", days=(1,))
    bad = write_map_tree(tmp_path / "maps", subphase="P02", days=(1, 2))
    for p in bad:
        p.write_bytes(b"not a jpeg")
    res = cm_infer(tmp_path / "maps", "--out", tmp_path / "out", "--model", five_model, "--provider", "cpu")
    assert res.exit_code == EXIT_FAILED
    assert "done 1, skipped 0, failed 2" in res.output
    folder = bad[0].parent
    for p in bad:
        line = f"FAILED: {p}: background composite of {folder} cannot be built: none of its 2 maps is readable"
        assert sum(1 for x in res.output.splitlines() if x.startswith(line)) == 2  # as it happens, and in the summary


def test_a_model_with_unusable_metadata_exits_2_and_writes_nothing(map_tree, tmp_path):
    """Issue 32 item 6: metadata is checked at load like --threshold (threshold 47 = all clear)."""
    from tests.tiny_model import make_tiny_unet_onnx

    bad = make_tiny_unet_onnx(tmp_path / "t47.onnx", metadata={"threshold": "47"})
    res = cm_infer(map_tree, "--out", tmp_path / "out", "--model", bad, "--binary")
    assert res.exit_code == EXIT_FATAL and f"{bad}: bad model metadata: threshold 47.0" in res.output
    assert not (tmp_path / "out").exists()


def test_a_nan_model_fails_each_map_with_a_reason_and_writes_no_mask(tiny_model, map_tree, tmp_path):
    """Issue 32 item 6: a NaN output is not clipped into an all-clear mask."""
    from tests.test_runtime import _with_output_op

    bad = _with_output_op(tiny_model, tmp_path / "nan.onnx", "Add", float("nan"))
    res = cm_infer(map_tree, "--out", tmp_path / "out", "--model", bad, "--provider", "cpu")
    assert res.exit_code == EXIT_FAILED and "failed 2" in res.output
    assert "returned NaN" in res.output and not list((tmp_path / "out").rglob("*.ncdf"))


@pytest.mark.parametrize(
    "option, line",
    [
        (("--provider", "foo"), "cm-infer: error: --provider foo: use one of auto, cuda, openvino, cpu"),
        (("--precision", "foo"), "cm-infer: error: --precision foo: use one of auto, fp32, bf16"),
        (("--threads", "-3"), "cm-infer: error: --threads -3: must be a number of threads >= 1"),
    ],
)
def test_a_bad_runtime_option_is_one_line_naming_the_option(tiny_model, map_tree, tmp_path, option, line):
    """Issue 32 item 15: --provider/--precision foo gave a traceback, --threads -3 blamed the model."""
    res = cm_infer(map_tree, "--out", tmp_path / "out", "--model", tiny_model, *option)
    assert res.exit_code == EXIT_FATAL and res.output.splitlines()[0].startswith(line), res.output
    assert str(tiny_model) not in res.output and not (tmp_path / "out").exists()


def test_an_unreachable_dask_scheduler_exits_2_before_anything_is_written(tiny_model, map_tree, tmp_path):
    """Issue 32 item 15: the address is checked before OUT, records or the model are touched."""
    pytest.importorskip("distributed")
    res = cm_infer(map_tree, "--out", tmp_path / "out", "--model", tiny_model, "--dask", "tcp://127.0.0.1:9")
    assert res.exit_code == EXIT_FATAL and "--dask tcp://127.0.0.1:9: cannot start or reach" in res.output
    assert not (tmp_path / "out").exists()


def test_an_hdf_error_on_a_nearly_full_disk_says_disk_full_naming_the_file():
    """Issue 32 item 15: netCDF-C says only "NetCDF: HDF error" where the disk is full."""
    from mars_cloudmask.infer.cli import explain_failure

    reason = "/m/P01_day01.jpg: /o/P/P01/background_P01.nc: NetCDF: HDF error"
    full = explain_failure(reason, "/o/P/P01/cloudmasks/x.ncdf", free=lambda p: 4096)
    assert full == f"{reason}: disk full writing /o/P/P01/cloudmasks/x.ncdf (0.0 MB free there)"
    assert explain_failure(reason, "/o/x.ncdf", free=lambda p: 10**10) == reason  # space left: not a full disk
    assert explain_failure("/m/a.jpg: empty file", "/o/x.ncdf", free=lambda p: 0) == "/m/a.jpg: empty file"


def test_a_fifo_given_as_a_map_fails_with_one_line_and_the_other_maps_are_written(tiny_model, map_tree, tmp_path):
    """Issue 32 item 13: a FIFO given as a map hung cm-infer (and signals did not end it)."""
    fifo = map_tree.resolve() / "P" / "P01" / "P01_day02_zequat.jpg"
    fifo.unlink()
    os.mkfifo(fifo)
    good = map_tree.resolve() / "P" / "P01" / "P01_day01_zequat.jpg"
    cmd = [sys.executable, "-m", "mars_cloudmask.infer.cli", str(good), str(fifo), "--out", str(tmp_path / "out")]
    res = subprocess.run(cmd + ["--model", str(tiny_model)], capture_output=True, text=True, timeout=120)
    assert res.returncode == EXIT_FAILED, res.stdout + res.stderr
    assert f"FAILED: {fifo}: map is a FIFO, not a regular file" in res.stdout and "done 1" in res.stdout
    assert [p.name for p in (tmp_path / "out").rglob("*.ncdf")] == ["cloudmask_P01_day01.ncdf"]


def test_the_summary_says_what_the_record_says_ran(tiny_model):
    """Issue 32 item 9: a Dask run's summary said the client's fp32 while the workers ran bf16."""
    from mars_cloudmask.infer.cli import summary_lines
    from mars_cloudmask.infer.engine import RunReport

    model = runtime.load_model(tiny_model, provider="cpu")
    record = {"provider": "openvino", "precision": "bf16", "model": {"session_providers": ["OpenVINO CPU"]}}
    lines = summary_lines(RunReport([], record, None), model, 1.0)
    assert "model tiny-random-unet 0.0.0-test on OPENVINO bf16 (OpenVINO CPU)" in lines


def test_an_all_black_map_gets_a_note_naming_it(tiny_model, map_tree, tmp_path):
    """Issue 32 item 9: an all-black map gave an all-invalid mask with no word said."""
    import numpy as np

    from tests.synthetic import write_map

    black = map_tree.resolve() / "P" / "P01" / "P01_day02_zequat.jpg"
    write_map(black, np.zeros((1801, 3600, 3), np.uint8))
    res = cm_infer(map_tree, "--out", tmp_path / "out", "--model", tiny_model)
    assert res.exit_code == 0, res.output
    assert f"note: {black}: no data pixel (an all-black map): its mask is all invalid (-999)" in res.output
    assert sum("no data pixel" in ln for ln in res.output.splitlines()) == 1


def test_an_hdf_error_escaping_the_run_is_one_line_saying_disk_full(tiny_model, map_tree, tmp_path, monkeypatch):
    """Issue 32 item 15: a background composite written on a full disk ended in a traceback
    "RuntimeError: NetCDF: HDF error" (composites.py lets it through)."""
    from mars_cloudmask.infer import cli, engine

    def full_disk(*args, **kwargs):
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(engine, "run", full_disk)
    monkeypatch.setattr(cli, "free_bytes", lambda path: 0)
    out = tmp_path / "out"
    res = cm_infer(map_tree, "--out", out, "--model", tiny_model)
    assert res.exit_code == EXIT_FAILED and "Traceback" not in res.output and res.exception is not None
    assert (
        f"cm-infer: error: {out}: writing a NetCDF file under it failed (NetCDF: HDF error): disk full writing "
        f"{out} (0.0 MB free there); the run stopped"
    ) in res.output


def test_a_quicklook_only_rerun_says_what_it_made_not_done(tiny_model, map_tree, tmp_path):
    """A rerun that only added quicklooks printed 'done 2' and a model line (issue 35)."""
    out = tmp_path / "out"
    cm_infer(map_tree, "--out", out, "--model", tiny_model)
    again = cm_infer(map_tree, "--out", out, "--model", tiny_model, "--quicklook")
    lines = again.output.splitlines()
    assert any(line.startswith("done 0, 2 quicklooks from existing masks, skipped 0, failed 0") for line in lines)
    assert "nothing predicted" in again.output and "per map written" not in again.output
    one = next(out.rglob("*.png"))
    one.unlink()
    third = cm_infer(map_tree, "--out", out, "--model", tiny_model, "--quicklook")
    assert "done 0, 1 quicklook from existing mask, skipped 1" in third.output


def test_an_all_black_map_with_bounds_and_an_all_white_map_are_noted(tiny_model, map_tree, tmp_path):
    """The all-black note was missing with --bounds (the box is given, nothing searched for
    data), and an all-white map came out 88 % cloud with no word (issue 32 item 9)."""
    import numpy as np

    from tests.synthetic import write_map

    black = map_tree.resolve() / "P" / "P01" / "P01_day01_zequat.jpg"
    white = map_tree.resolve() / "P" / "P01" / "P01_day02_zequat.jpg"
    write_map(black, np.zeros((1801, 3600, 3), np.uint8))
    write_map(white, np.full((1801, 3600, 3), 255, np.uint8))
    res = cm_infer(map_tree, "--out", tmp_path / "out", "--model", tiny_model, "--bounds", "0", "600", "700", "1200")
    assert res.exit_code == 0, res.output
    assert f"note: {black}: no data pixel (an all-black map)" in res.output
    assert f"note: {white}: every pixel is white" in res.output
    record = json.loads((tmp_path / "out" / "cm-infer-run.json").read_text())
    notes = {m["name"]: m.get("notes", []) for m in record["maps"]}
    assert any("no data pixel" in n for n in notes["P01_day01"]) and any("white" in n for n in notes["P01_day02"])
