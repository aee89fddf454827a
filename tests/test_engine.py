"""Whole runs (infer/engine.py): outputs, attributes, bad input, resume, interruption, run records, and the
faults real archives bring (symlinks, corrupt files, collisions, full disks, signals, two runs on one OUT)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mars_cloudmask.infer.engine import (
    OutputError,
    RunInterrupted,
    SequentialExecutor,
    Stages,
    ThreadedExecutor,
    WorkItem,
    run,
    run_folder,
)
from mars_cloudmask.infer.geometry import INVALID
from mars_cloudmask.infer.maps import MapJob, find_maps, ls_entry, read_map
from mars_cloudmask.infer.netcdf import read_attrs, read_mask
from mars_cloudmask.infer.plan import InferOptions, resolve_plan
from mars_cloudmask.infer.predict import predict
from mars_cloudmask.infer.records import CONTENTS, RUN_RECORD, RUNS_FOLDER
from mars_cloudmask.infer.runtime import load_model
from tests.synthetic import make_map, write_map, write_map_tree


@pytest.fixture(scope="module")
def model(tiny_model):
    return load_model(tiny_model, provider="cpu")


def ncdf_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.ncdf"))


def output_path(job: MapJob, out: Path) -> Path:
    """Where a run with ``--out out`` writes the mask of ``job``."""
    return out / job.relative_output()


def test_a_run_writes_masks_equal_to_predict_with_attributes(model, map_tree, tmp_path):
    out = tmp_path / "out"
    report = run(find_maps(map_tree), model, InferOptions(out=out))
    assert report.ok and report.counts() == {"done": 2, "skipped": 0, "failed": 0}
    nc = out / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day02.ncdf"
    assert ncdf_files(out) == [nc.with_name("cloudmask_P01_day01.ncdf"), nc]
    expected = predict(model, read_map(map_tree / "P" / "P01" / "P01_day02_zequat.jpg"), ls=132.9)
    np.testing.assert_array_equal(read_mask(nc), expected)
    attrs = read_attrs(nc)
    assert attrs["solar_longitude"] == pytest.approx(132.9) and attrs["mars_year"] == 28
    assert attrs["source_map"] == "P01_day02_zequat.jpg" and attrs["Conventions"] == "CF-1.8"
    assert attrs["model_name"] == "tiny-random-unet" and attrs["model_version"] == "0.0.0-test"
    assert attrs["stitch_mode"] == "seamless" and attrs["threshold"] == 0.5 and attrs["output_type"] == "probability"
    assert attrs["polar_offset_deg"] == 3.0 and len(attrs["bounds_xmin_xmax_ymin_ymax"]) == 4
    assert "cm-infer" in attrs["history"]
    record = json.loads((out / RUN_RECORD).read_text())
    assert record["counts"] == {"done": 2, "skipped": 0, "failed": 0}
    assert record["model"]["sha256"] == model.sha256 and record["provider"] == "cpu"
    assert record["versions"]["onnxruntime"] and record["outputs"] == [str(p) for p in ncdf_files(out)]
    assert {"read_s", "predict_s", "write_s"} <= set(record["timings"]["stage_totals_s"])
    assert record["timings"]["jit_warmup_s"] >= 0 and not record["interrupted"]


def test_binary_output_and_copies_of_the_maps(model, map_tree, tmp_path):
    out = tmp_path / "out"
    jobs = find_maps(map_tree)[:1]
    report = run(jobs, model, InferOptions(out=out, binary=True, copy_maps=True, stitch="center"))
    assert report.ok
    mask = read_mask(output_path(jobs[0], out))
    assert set(np.unique(mask)) == {INVALID, 0.0, 1.0}
    assert read_attrs(output_path(jobs[0], out))["stitch_mode"] == "center"
    sub = out / "P" / "P01"
    assert (sub / "mdgms" / "P01_day01_zequat.jpg").read_bytes() == jobs[0].path.read_bytes()
    assert (sub / "P01_ls.txt").read_text() == (map_tree / "P" / "P01" / "P01_ls.txt").read_text()


def bad_tree(root: Path) -> None:
    """One good map and one map for every kind of bad input, plus stray files."""
    write_map_tree(root, days=(1,), ls_rows=[1, 2, 3, 4, 5, 6])
    p01 = root / "P" / "P01"
    (p01 / "P01_day02_zequat.jpg").write_bytes(os.urandom(5000))  # corrupt
    good = (p01 / "P01_day01_zequat.jpg").read_bytes()
    (p01 / "P01_day03_zequat.jpg").write_bytes(good[: len(good) // 2])  # truncated
    (p01 / "P01_day04_zequat.jpg").write_bytes(b"")  # empty
    write_map(p01 / "P01_day05_zequat.jpg", make_map(1, height=180, width=360))  # wrong size
    Image.fromarray(make_map(2)[..., 0], "L").save(p01 / "P01_day06_zequat.jpg")  # not RGB
    write_map(p01 / "P01_day07_zequat.jpg", make_map(3))  # no row in _ls.txt
    write_map(root / "P" / "P02" / "P02_day01_zequat.jpg", make_map(4))  # no _ls.txt at all
    (p01 / "readme.txt").write_text("stray file")  # ignored: not a JPEG
    (p01 / "list").mkdir()
    write_map(p01 / "list" / "P01_day01_zequat.jpg", make_map(5, height=10, width=10))  # ignored folder


EXPECTED_REASONS = {
    "P01_day02": "not a readable image",
    "P01_day03": "truncated",
    "P01_day04": "empty file",
    "P01_day05": "image is 360 x 180, expected 3600 x 1801",
    "P01_day06": "mode is L, expected RGB",
    "P01_day07": "no row for P01_day07",
    "P02_day01": "no _ls.txt",
}


def test_every_bad_input_fails_alone_with_a_one_line_reason(model, tmp_path):
    bad_tree(tmp_path / "maps")
    out = tmp_path / "out"
    jobs = find_maps(tmp_path / "maps")
    assert len(jobs) == 8  # readme.txt and list/ are not maps
    report = run(jobs, model, InferOptions(out=out))
    assert not report.ok
    assert [r.name for r in report.by_status("done")] == ["P01_day01"]
    failed = {r.name: r.reason for r in report.by_status("failed")}
    assert set(failed) == set(EXPECTED_REASONS)
    for name, reason in failed.items():
        assert "\n" not in reason and EXPECTED_REASONS[name] in reason, reason
        job = next(j for j in jobs if j.name == name)
        assert str(job.path) in reason  # names the file
    assert [p.name for p in ncdf_files(out)] == ["cloudmask_P01_day01.ncdf"]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    record = json.loads((out / RUN_RECORD).read_text())
    assert len(record["failures"]) == 7 and all(f["reason"] for f in record["failures"])


def test_bounds_replace_a_missing_ls_table(model, tmp_path):
    write_map_tree(tmp_path / "maps", days=(1,), ls_rows=False)
    out = tmp_path / "out"
    report = run(find_maps(tmp_path / "maps"), model, InferOptions(out=out, bounds=(0, 3600, 300, 1500)))
    assert report.ok
    mask = read_mask(ncdf_files(out)[0])
    assert (mask[:300] == INVALID).all() and (mask[1500:] == INVALID).all() and (mask[300:1500] > INVALID).any()
    assert "solar_longitude" not in read_attrs(ncdf_files(out)[0])


def test_an_unwritable_out_is_one_clear_error(model, map_tree, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OutputError) as exc:
        run(find_maps(map_tree), model, InferOptions(out=blocker / "out"))
    assert str(blocker / "out") in str(exc.value) and "not writable" in str(exc.value)


def test_a_rerun_resumes_without_redoing(model, map_tree, tmp_path):
    out = tmp_path / "out"
    jobs = find_maps(map_tree)
    run(jobs, model, InferOptions(out=out))
    first, second = ncdf_files(out)
    stamp = first.stat().st_mtime_ns
    second.unlink()
    report = run(jobs, model, InferOptions(out=out))
    assert [r.status for r in report.results] == ["skipped", "done"]
    assert first.stat().st_mtime_ns == stamp and second.exists()
    again = run(jobs, model, InferOptions(out=out, overwrite=True))
    assert [r.status for r in again.results] == ["done", "done"] and first.stat().st_mtime_ns != stamp


def test_an_interrupted_run_leaves_only_whole_files_and_a_rerun_finishes(model, tmp_path):
    write_map_tree(tmp_path / "maps", days=(1, 2, 3))
    out = tmp_path / "out"
    jobs = find_maps(tmp_path / "maps")

    def stop_after_first(job, rgb, mask):
        raise KeyboardInterrupt

    with pytest.raises(RunInterrupted) as stopped:
        run(jobs, model, InferOptions(out=out), on_mask=stop_after_first)
    written = ncdf_files(out)
    assert 1 <= len(written) < 3
    for nc in written:
        assert read_mask(nc).shape == (1801, 3600)
    record = json.loads((out / RUN_RECORD).read_text())
    assert record["interrupted"] == "SIGINT" and stopped.value.exit_status == 130
    assert record["counts"]["done"] == len(written) == stopped.value.report.counts()["done"]
    report = run(jobs, model, InferOptions(out=out))
    assert report.counts() == {"done": 3 - len(written), "skipped": len(written), "failed": 0}
    assert len(ncdf_files(out)) == 3


@pytest.mark.parametrize("executor", [SequentialExecutor, ThreadedExecutor])
def test_a_signal_between_a_write_and_its_report_is_held_until_the_map_is_counted(
    model, tmp_path, monkeypatch, executor
):
    """SIGINT arriving after a mask is published but before it is counted (CI caught this race):
    the record must still count every mask on disk."""
    write_map_tree(tmp_path / "maps", days=(1, 2, 3))
    out = tmp_path / "out"
    real_done = Stages.done

    def done_then_signal(self, *args, **kwargs):
        # what the interpreter does on SIGINT, run here, after the write and before the count
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        return real_done(self, *args, **kwargs)

    monkeypatch.setattr(Stages, "done", done_then_signal)
    with pytest.raises(RunInterrupted) as stopped:
        run(find_maps(tmp_path / "maps"), model, InferOptions(out=out), executor=executor())
    written = ncdf_files(out)
    record = json.loads((out / RUN_RECORD).read_text())
    assert 1 <= len(written) < 3 and record["interrupted"] == "SIGINT"
    assert record["counts"]["done"] == len(written) == stopped.value.report.counts()["done"]
    assert sorted(record["outputs"]) == [str(p) for p in written]


def test_the_stage_runner_is_the_per_map_unit_with_a_picklable_plan(model, map_tree, tmp_path):
    plan = resolve_plan(InferOptions(out=tmp_path / "out", stitch="blend"), model)
    plan = pickle.loads(pickle.dumps(plan))
    job = pickle.loads(pickle.dumps(find_maps(map_tree)[0]))
    stages = Stages(model, plan)
    result = stages.run_item(WorkItem(0, job))
    assert result.status == "done" and result.ls == pytest.approx(132.5) and result.bounds is not None
    assert Path(result.output).exists() and set(result.timings) == {"read_s", "predict_s", "write_s"}
    missing = MapJob(tmp_path / "gone.jpg", "gone", "P", "P01", None)
    failed = stages.run_item(WorkItem(1, missing))
    assert failed.status == "failed" and str(missing.path) in failed.reason


def test_quicklook_writes_a_png_beside_each_mask(model, map_tree, tmp_path, monkeypatch):
    calls = []

    def save_quicklook(png_path, rgb, mask, threshold, caption=None):
        calls.append((png_path, rgb.shape, mask.shape, threshold, caption))
        png_path.write_bytes(b"png")
        return png_path

    fake = types.ModuleType("mars_cloudmask.infer.quicklook")
    fake.save_quicklook = save_quicklook
    monkeypatch.setitem(sys.modules, "mars_cloudmask.infer.quicklook", fake)
    out = tmp_path / "out"
    jobs = find_maps(map_tree)[:1]
    entry = ls_entry(jobs[0])
    caption = f"{jobs[0].name}  |  MY {entry.mars_year}  |  Ls {entry.ls:.1f}"  # the legend's first line
    assert run(jobs, model, InferOptions(out=out, quicklook=True)).ok
    nc = output_path(jobs[0], out)
    assert calls == [(nc.with_suffix(".png"), (1801, 3600, 3), (1801, 3600), 0.5, caption)]
    assert nc.with_suffix(".png").exists()
    # a quicklook-only rerun draws the same caption from the mask's own time coordinates
    nc.with_suffix(".png").unlink()
    assert run(jobs, model, InferOptions(out=out, quicklook=True)).ok
    assert calls[1] == calls[0]


def test_run_folder_is_the_one_call_api(tiny_model, map_tree, tmp_path):
    report = run_folder(map_tree, tmp_path / "missing-root", out=tmp_path / "out", model=tiny_model, provider="cpu")
    assert report.counts()["done"] == 2 and not report.ok
    assert report.input_errors == [f"{tmp_path / 'missing-root'}: no such file or folder"]


def test_real_maps(model, data_dir, tmp_path):
    jpg = data_dir / "mdgm" / "P" / "P01" / "P01_day01_zequat.jpg"
    if not jpg.exists():
        pytest.skip(f"{jpg} absent")
    out = tmp_path / "out"
    report = run(find_maps(jpg), model, InferOptions(out=out))
    assert report.ok
    nc = out / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day01.ncdf"
    mask = read_mask(nc)
    assert read_attrs(nc)["solar_longitude"] == pytest.approx(132.5)
    valid = mask > INVALID
    assert 0.2 < valid.mean() < 0.9 and ((mask[valid] >= 0) & (mask[valid] <= 1)).all()
    rows = np.flatnonzero(valid.any(axis=1))
    lat_n = 59 + 0.214 * (90 - abs(90 - 132.5)) - 3  # docs/spec.md §2
    assert rows[0] >= round(900 - lat_n / (180 / 1801))


def test_quicklook_with_the_real_module(model, map_tree, tmp_path):
    out = tmp_path / "out"
    jobs = find_maps(map_tree)[:1]
    assert run(jobs, model, InferOptions(out=out, quicklook=True, binary=True)).ok
    png = output_path(jobs[0], out).with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_polar_offset_defaults_to_the_models_metadata_and_the_option_overrides_it(map_tree, tmp_path):
    from tests.tiny_model import make_tiny_unet_onnx

    validated = load_model(make_tiny_unet_onnx(tmp_path / "m.onnx", metadata={"polar_offset": "-3"}), provider="cpu")
    assert validated.info.polar_offset == -3.0 and model_default_offset_of_tiny() == 3.0
    jobs = find_maps(map_tree)
    by_model = run(jobs, validated, InferOptions(out=tmp_path / "a"))
    by_option = run(jobs, validated, InferOptions(out=tmp_path / "b", polar_offset=3.0))
    a = read_attrs(Path(by_model.results[0].output))
    b = read_attrs(Path(by_option.results[0].output))
    assert a["polar_offset_deg"] == -3.0 and b["polar_offset_deg"] == 3.0
    # a negative offset moves both bounds polewards: more rows predicted
    ya, yb = a["bounds_xmin_xmax_ymin_ymax"], b["bounds_xmin_xmax_ymin_ymax"]
    assert ya[2] < yb[2] and ya[3] > yb[3]


def model_default_offset_of_tiny() -> float:
    """A model without ``polar_offset`` metadata gets the default of docs/spec.md §2, 3 deg."""
    from mars_cloudmask.infer.runtime import ModelInfo

    return ModelInfo.from_metadata({}, Path("none.onnx")).polar_offset


def test_a_rerun_removes_the_temporary_files_a_killed_run_left(model, map_tree, tmp_path):
    out = tmp_path / "out"
    options = InferOptions(out=out)
    jobs = find_maps(map_tree)
    folder = output_path(jobs[0], out).parent
    folder.mkdir(parents=True)
    stale = folder / ".cloudmask_P01_day01.ncdf.x1y2z3.tmp"
    stale.write_bytes(b"half a file")
    unrelated = folder / "notes.txt"
    unrelated.write_text("kept")
    report = run(jobs, model, options)
    assert report.ok and not stale.exists() and unrelated.read_text() == "kept"
    assert sorted(p.name for p in folder.iterdir()) == [
        "cloudmask_P01_day01.ncdf",
        "cloudmask_P01_day02.ncdf",
        "notes.txt",
    ]


# --------------------------------------------------------------------------- issue 20: the faults real archives bring
def test_bad_options_are_refused_before_anything_is_written(model, map_tree, tmp_path):
    from mars_cloudmask.infer.plan import PlanError

    out = tmp_path / "out"
    for options, named in [
        (dict(threshold=47.0), "--threshold 47"),
        (dict(tile_out=501), "--tile-out 501"),
        (dict(polar_offset=100.0), "--polar-offset 100"),
        (dict(batch_size=0), "--batch-size 0"),
        (dict(suffix=".nc4"), "--suffix .nc4"),
    ]:
        with pytest.raises(PlanError, match=named.replace(".", r"\.")):
            run(find_maps(map_tree), model, InferOptions(out=out, **options))
    assert not out.exists()


def test_the_plan_settles_every_default_from_the_model(model, tmp_path):
    plan = resolve_plan(InferOptions(out=tmp_path / "o"), model)
    assert plan.threshold == model.info.threshold and plan.polar_offset == model.info.polar_offset
    assert plan.out.is_absolute() and plan.model_sha256 == model.sha256
    assert resolve_plan(InferOptions(out="o", threshold=0.3, polar_offset=-3), model).threshold == 0.3


def test_a_symlinked_map_is_named_and_placed_by_the_link(model, tmp_path):
    root = tmp_path / "maps"
    write_map_tree(root, days=(1,))
    p77 = root / "P" / "P77"
    p77.mkdir()
    (p77 / "P77_ls.txt").write_text("P77_day01 29 200.0\n")
    (p77 / "P77_day01_zequat.jpg").symlink_to(root / "P" / "P01" / "P01_day01_zequat.jpg")
    out = tmp_path / "out"
    report = run(find_maps(root), model, InferOptions(out=out))
    assert report.ok
    nc = out / "P" / "P77" / "cloudmasks" / "cloudmask_P77_day01.ncdf"
    assert (
        read_attrs(nc)["solar_longitude"] == pytest.approx(200.0)
        and read_attrs(nc)["source_map"] == "P77_day01_zequat.jpg"
    )


def failing_quicklook(monkeypatch):
    fake = types.ModuleType("mars_cloudmask.infer.quicklook")

    def save_quicklook(png_path, rgb, mask, threshold, caption=None):
        raise OSError(28, "No room for the picture")

    fake.save_quicklook = save_quicklook
    monkeypatch.setitem(sys.modules, "mars_cloudmask.infer.quicklook", fake)


def test_a_map_whose_extras_fail_leaves_no_mask_and_a_rerun_finishes_it(model, map_tree, tmp_path, monkeypatch):
    out = tmp_path / "out"
    jobs = find_maps(map_tree)[:1]
    fake = types.ModuleType("mars_cloudmask.infer.quicklook")

    def broken(png_path, rgb, mask, threshold, caption=None):
        raise ValueError("quicklook exploded")

    fake.save_quicklook = broken
    monkeypatch.setitem(sys.modules, "mars_cloudmask.infer.quicklook", fake)
    first = run(jobs, model, InferOptions(out=out, quicklook=True, copy_maps=True))
    assert first.counts()["failed"] == 1 and "quicklook exploded" in first.results[0].reason
    assert ncdf_files(out) == [] and not (out / "P" / "P01" / "mdgms" / jobs[0].path.name).exists()
    monkeypatch.undo()
    again = run(jobs, model, InferOptions(out=out, quicklook=True, copy_maps=True))
    assert again.counts() == {"done": 1, "skipped": 0, "failed": 0}
    assert output_path(jobs[0], out).with_suffix(".png").exists()


@pytest.mark.parametrize("damage", ["empty", "truncated", "not netcdf"])
def test_a_bad_mask_in_out_is_redone_not_skipped(model, map_tree, tmp_path, damage):
    out = tmp_path / "out"
    jobs = find_maps(map_tree)[:1]
    run(jobs, model, InferOptions(out=out))
    nc = output_path(jobs[0], out)
    good = read_mask(nc)
    data = nc.read_bytes()
    nc.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "not netcdf": b"hello" * 100}[damage])
    report = run(jobs, model, InferOptions(out=out))
    assert report.counts()["done"] == 1, report.results
    assert "existing output redone" in report.results[0].notes[0]
    np.testing.assert_array_equal(read_mask(nc), good)


def test_a_full_disk_stops_the_run_with_a_record_and_a_clear_reason(model, tmp_path, monkeypatch):
    import errno

    from mars_cloudmask.infer import netcdf

    write_map_tree(tmp_path / "maps", days=(1, 2, 3))
    jobs = find_maps(tmp_path / "maps")
    out = tmp_path / "out"
    real = netcdf.write_mask
    calls = []

    def full(path, *args, **kwargs):
        calls.append(path)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(netcdf, "write_mask", full)
    report = run(jobs, model, InferOptions(out=out), executor=SequentialExecutor())
    assert report.counts() == {"done": 1, "skipped": 0, "failed": 1} and report.not_processed == 1
    assert "No space left on device" in report.by_status("failed")[0].reason and not report.ok
    assert report.halted and "No space left on device" in report.halted
    record = json.loads((out / RUN_RECORD).read_text())
    assert record["halted"] == report.halted and record["not_processed"] == 1
    assert len(calls) == 2  # the third map was not attempted
    assert not [p for p in out.rglob(".*")]  # no temporaries, no lock files


def test_a_record_that_cannot_be_written_is_reported_not_raised(model, map_tree, tmp_path, monkeypatch):
    from mars_cloudmask.infer import records

    def no_room(out, record, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(records, "write_records", no_room)
    report = run(find_maps(map_tree), model, InferOptions(out=tmp_path / "out"))
    assert report.counts()["done"] == 2 and not report.ok
    assert "cannot write the run record (No space left on device)" in report.record_error


def test_a_live_temporary_of_another_run_is_kept_a_dead_ones_removed(model, map_tree, tmp_path):
    from mars_cloudmask.infer.atomic import atomic_path

    out = tmp_path / "out"
    jobs = find_maps(map_tree)
    nc = output_path(jobs[0], out)
    with atomic_path(nc) as live:  # another run, still writing this very mask
        live.write_bytes(b"being written")
        dead = nc.parent / f".{nc.name}.dead1.tmp"  # a writer that died: no lock sidecar held
        dead.write_bytes(b"half")
        run(jobs[1:], model, InferOptions(out=out))  # another map: this run leaves both alone
        assert live.exists() and dead.exists()
        report = run(jobs[:1], model, InferOptions(out=out))
        assert report.ok and live.exists() and not dead.exists()


def test_extras_asked_on_a_rerun_are_made_from_the_existing_masks(model, map_tree, tmp_path, monkeypatch):
    from mars_cloudmask.infer import stages

    out = tmp_path / "out"
    jobs = find_maps(map_tree)
    run(jobs, model, InferOptions(out=out))
    stamps = {p: p.stat().st_mtime_ns for p in ncdf_files(out)}

    def no_prediction(*args, **kwargs):
        raise AssertionError("predicted again")

    monkeypatch.setattr(stages, "predict_box", no_prediction)  # the predict stage lives in stages.py
    report = run(jobs, model, InferOptions(out=out, quicklook=True, copy_maps=True))
    assert report.counts() == {"done": 2, "skipped": 0, "failed": 0}
    assert all("made from the existing mask" in r.notes[0] for r in report.results)
    for nc in ncdf_files(out):
        assert nc.with_suffix(".png").read_bytes()[:4] == b"\x89PNG" and nc.stat().st_mtime_ns == stamps[nc]
    assert (out / "P" / "P01" / "mdgms" / "P01_day02_zequat.jpg").exists()
    assert run(jobs, model, InferOptions(out=out, quicklook=True)).counts()["skipped"] == 2


def test_every_run_keeps_its_record_and_the_contents_say_what_out_holds(model, map_tree, tmp_path):
    out = tmp_path / "out"
    jobs = find_maps(map_tree)
    first = run(jobs, model, InferOptions(out=out))
    output_path(jobs[1], out).unlink()
    second = run(jobs[1:], model, InferOptions(out=out))
    history = sorted((out / RUNS_FOLDER).glob("*.json"))
    assert len(history) == 2 and first.record_path in history and second.record_path in history
    assert json.loads(first.record_path.read_text())["counts"]["done"] == 2
    contents = json.loads((out / CONTENTS).read_text())
    assert sorted(contents["masks"]) == [
        "P/P01/cloudmasks/cloudmask_P01_day01.ncdf",
        "P/P01/cloudmasks/cloudmask_P01_day02.ncdf",
    ]
    assert contents["masks"]["P/P01/cloudmasks/cloudmask_P01_day02.ncdf"]["run_id"] == second.record["run_id"]
    assert contents["failed"] == {} and len(contents["runs"]) == 2


def test_probabilities_are_clipped_into_the_valid_range(model, map_tree, tmp_path):
    from mars_cloudmask.infer.netcdf import read_mask as read

    def just_above_one(model, loaded, plan):
        mask = np.full((1801, 3600), 1.0000001, np.float32)
        mask[:10] = INVALID
        return mask, None

    out = tmp_path / "out"
    report = run(find_maps(map_tree)[:1], model, InferOptions(out=out), predict_fn=just_above_one)
    assert report.ok
    mask = read(ncdf_files(out)[0])
    assert mask.max() == 1.0 and (mask[:10] == INVALID).all()
    import netCDF4

    with netCDF4.Dataset(ncdf_files(out)[0]) as ds:  # netCDF4's default masking keeps the cloud pixels
        assert np.ma.count_masked(ds["cloudmask"][:]) == 10 * 3600


def test_a_nan_ls_with_bounds_writes_no_nan(model, tmp_path):
    write_map_tree(tmp_path / "maps", days=(1,), ls_rows=False)
    (tmp_path / "maps" / "P" / "P01" / "P01_ls.txt").write_text("P01_day01 28 nan\n")
    out = tmp_path / "out"
    report = run(find_maps(tmp_path / "maps"), model, InferOptions(out=out, bounds=(0, 3600, 300, 1500)))
    assert report.ok and "Ls unknown" in report.results[0].notes[0]
    assert "solar_longitude" not in read_attrs(ncdf_files(out)[0])
    assert "NaN" not in (out / RUN_RECORD).read_text()


# ------------------------------------------------------------------ issue 32: provenance and soundness on rerun
@pytest.mark.parametrize(
    "second, said",
    [
        (dict(threshold=0.47), "threshold 0.5"),
        (dict(binary=True), "probability output"),
        (dict(bounds=(0, 3600, 300, 1500)), "bounds from Ls"),
    ],
)
def test_masks_kept_from_other_options_are_counted_and_named(model, map_tree, tmp_path, second, said):
    out = tmp_path / "out"
    jobs = find_maps(map_tree)
    run(jobs, model, InferOptions(out=out))
    report = run(jobs, model, InferOptions(out=out, **second))
    assert report.counts()["skipped"] == 2
    assert report.notes == [f"kept 2 masks made with {said}; use --overwrite to redo them"]
    assert all(said in r.reason for r in report.results)
    assert not run(jobs, model, InferOptions(out=out)).notes  # the same plan again: nothing to say
    extras = run(jobs, model, InferOptions(out=out, copy_maps=True, **second))  # copies made from them: said too
    assert all(f"made from the existing mask (made with {said})" in r.notes[0] for r in extras.results)


def test_masks_kept_from_another_model_name_it(model, map_tree, tmp_path):
    from tests.tiny_model import make_tiny_unet_onnx

    other = load_model(
        make_tiny_unet_onnx(tmp_path / "v2.onnx", seed=1, metadata={"name": "cloudmask-unet", "version": "2"}),
        provider="cpu",
    )
    out = tmp_path / "out"
    jobs = find_maps(map_tree)
    run(jobs, other, InferOptions(out=out))
    report = run(jobs, model, InferOptions(out=out))
    assert report.counts()["skipped"] == 2
    assert report.notes == [
        f"kept 2 masks made with model cloudmask-unet 2 (sha256 {other.sha256[:8]}..); use --overwrite to redo them"
    ]


def test_the_other_suffix_counts_as_the_existing_mask(model, map_tree, tmp_path):
    out = tmp_path / "out"
    jobs = find_maps(map_tree)
    run(jobs, model, InferOptions(out=out))
    report = run(jobs, model, InferOptions(out=out, suffix=".nc"))
    assert report.counts() == {"done": 0, "skipped": 2, "failed": 0}
    assert not list(out.rglob("*.nc")) and len(ncdf_files(out)) == 2
    assert report.results[0].output.endswith(".ncdf")
    redone = run(jobs, model, InferOptions(out=out, suffix=".nc", overwrite=True))
    assert redone.counts()["done"] == 2 and not ncdf_files(out) and len(list(out.rglob("*.nc"))) == 2
    assert "replaced cloudmask_P01_day01.ncdf" in redone.results[0].notes[0]


@pytest.mark.parametrize("value", [5.0, np.nan])
def test_a_mask_edited_to_impossible_values_is_redone(model, map_tree, tmp_path, value):
    import netCDF4

    out = tmp_path / "out"
    jobs = find_maps(map_tree)[:1]
    run(jobs, model, InferOptions(out=out))
    nc = output_path(jobs[0], out)
    good, attrs = read_mask(nc), read_attrs(nc)
    nc.unlink()
    with netCDF4.Dataset(nc, "w", format="NETCDF4_CLASSIC") as ds:  # the same mask, its values edited
        ds.createDimension("latitude", 1801)
        ds.createDimension("longitude", 3600)
        ds.createVariable("cloudmask", "f4", ("latitude", "longitude"))[:, :] = np.full((1801, 3600), value)
        ds.setncatts(attrs)
    report = run(jobs, model, InferOptions(out=out))
    assert report.counts()["done"] == 1, report.results
    note = report.results[0].notes[0]
    assert "existing output redone" in note and str(nc) in note
    np.testing.assert_array_equal(read_mask(nc), good)


def test_a_rerun_removes_stale_temporaries_beside_skipped_maps_and_records(model, map_tree, tmp_path):
    out = tmp_path / "out"
    jobs = find_maps(map_tree)
    run(jobs, model, InferOptions(out=out))
    nc = output_path(jobs[0], out)
    stale = [
        nc.parent / f".{nc.name}.dead1234.tmp",  # beside a mask the rerun skips
        out / f".{RUN_RECORD}.dead1234.tmp",
        out / f".{CONTENTS}.dead1234.tmp",
        out / RUNS_FOLDER / ".20200101T000000Z-1.json.dead1234.tmp",
    ]
    for p in stale:
        p.write_text("half")
    report = run(jobs, model, InferOptions(out=out))
    assert report.counts()["skipped"] == 2
    assert [p for p in stale if p.exists()] == []


def test_a_map_whose_mask_name_just_fits_is_written(model, tmp_path):
    name = "P01_day01_" + "a" * 229  # its mask's name is 254 bytes, its temporaries' would be longer
    root = tmp_path / "maps"
    write_map_tree(root, days=(1,))
    jpg = root / "P" / "P01" / "P01_day01_zequat.jpg"
    jpg.rename(jpg.with_name(f"{name}_zequat.jpg"))
    out = tmp_path / "out"
    report = run(find_maps(root), model, InferOptions(out=out, quicklook=True))
    assert report.ok, report.results
    assert [p.name for p in ncdf_files(out)] == [f"cloudmask_{name}.ncdf"]
    assert not [p for p in out.rglob(".*")]


def test_copy_maps_of_two_trees_sharing_a_subphase_merges_their_tables(model, tmp_path):
    write_map_tree(tmp_path / "a", days=(1,))
    write_map_tree(tmp_path / "b", days=(2,))
    out = tmp_path / "out"
    jobs = find_maps(tmp_path / "a", tmp_path / "b")
    report = run(jobs, model, InferOptions(out=out, copy_maps=True))
    assert report.ok, report.results
    copied = out / "P" / "P01" / "P01_ls.txt"
    rows = [line.split()[0] for line in copied.read_text().splitlines()]
    assert rows == ["P01_day01", "P01_day02"]
    a, b = (tmp_path / t / "P" / "P01" / "P01_ls.txt" for t in "ab")
    assert report.notes == [f"--copy-maps: the tables {a} and {b} both go to {copied}: their rows are merged there"]
    assert any(f"merged the rows of {b} into {copied}" in n for n in report.results[1].notes)
    # a later run of tree b alone over an OUT holding a's table: merged, not replaced
    copied.write_text("P01_day01 28 132.500\n")
    again = run(jobs[1:], model, InferOptions(out=out, copy_maps=True))
    assert again.counts()["done"] == 1 and "made from the existing mask" in again.results[0].notes[0]
    assert [line.split()[0] for line in copied.read_text().splitlines()] == ["P01_day01", "P01_day02"]


def test_copy_maps_merges_tables_that_disagree_naming_both(model, tmp_path):
    write_map_tree(tmp_path / "a", days=(1,))
    write_map_tree(tmp_path / "b", days=(1, 2), ls_start=200.0)  # another P01_day01 row
    (tmp_path / "b" / "P" / "P01" / "P01_day01_zequat.jpg").unlink()
    out = tmp_path / "out"
    jobs = find_maps(tmp_path / "a", tmp_path / "b")
    report = run(jobs, model, InferOptions(out=out, copy_maps=True))
    copied = out / "P" / "P01" / "P01_ls.txt"
    b = tmp_path / "b" / "P" / "P01" / "P01_ls.txt"
    assert report.ok
    note = report.results[1].notes[0]
    assert f"merged the rows of {b} into {copied}" in note and "rows for P01_day01 replaced" in note
    assert copied.read_text() == b.read_text().replace("       ", " ")  # b's rows, whitespace normalised
    assert read_attrs(output_path(jobs[0], out))["solar_longitude"] == pytest.approx(132.5)  # from a's own table


def test_a_newline_in_a_name_cannot_forge_a_summary_line(model, tmp_path):
    from mars_cloudmask.infer.cli import summary_lines

    root = tmp_path / "maps"
    write_map_tree(root, days=(1, 2))
    p01 = root / "P" / "P01"
    (p01 / "P01_day01_zequat.jpg").rename(p01 / "P01_day01\nFAILED: forged_zequat.jpg")  # a good map
    bad = p01 / "P01_day02\nFAILED: everything_zequat.jpg"
    (p01 / "P01_day02_zequat.jpg").rename(bad)
    bad.write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    jobs = find_maps(root)
    report = run(jobs, model, InferOptions(out=out))
    assert [r.status for r in report.results] == ["done", "failed"]
    failed = report.results[1]
    assert "\n" not in failed.reason and "P01_day02\\nFAILED: everything_zequat.jpg" in failed.reason
    output_path(jobs[0], out).write_bytes(b"")  # an empty mask: redone, with a note naming it
    again = run(jobs[:1], model, InferOptions(out=out))
    note = again.results[0].notes[0]
    assert "existing output redone" in note and "\n" not in note and "P01_day01\\nFAILED: forged" in note
    for rep in (report, again):
        lines = summary_lines(rep, model, 1.0)
        assert all("\n" not in line for line in lines)
        assert sum(line.startswith("FAILED") for line in lines) == rep.counts()["failed"]


@pytest.mark.parametrize("inside", ["out", "P/out", "P/P01/out", "P/P01/deep/er/out"])
def test_an_out_inside_the_input_tree_is_not_read_back_as_input(model, map_tree, tmp_path, inside):
    import shutil

    from mars_cloudmask.infer.engine import find_run_jobs

    out = map_tree / inside
    jobs, errors = find_run_jobs([map_tree], out)
    assert [j.name for j in jobs] == ["P01_day01", "P01_day02"] and not errors
    assert run(jobs, model, InferOptions(out=out, copy_maps=True)).ok
    shutil.rmtree(out / "P" / "P01" / "cloudmasks")  # masks removed to redo them: the copies stay
    jobs, errors = find_run_jobs([map_tree], out)
    assert [str(j.path.parent) for j in jobs] == [str(map_tree / "P" / "P01")] * 2 and not errors
    assert find_run_jobs([out], out) == ([], [])
    report = run_folder(map_tree, out=out, model=model, copy_maps=True)
    assert report.ok and report.counts()["done"] == 2


def test_background_lines_of_the_summary_escape_names():
    from mars_cloudmask.infer.cli import composite_lines
    from mars_cloudmask.infer.composites import CompositeResult
    from mars_cloudmask.infer.engine import RunReport

    folder = "/maps/P/P01\nFAILED: forged"
    built = CompositeResult(folder, f"{folder}/background_P01.nc", "built", n_maps=3, notes=["one\nnote"])
    lines = composite_lines(RunReport([], {}, None, composites=[built]))
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert "P01\\nFAILED: forged" in lines[0] and lines[1].endswith("one\\nnote")
