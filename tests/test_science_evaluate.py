"""cm-eval: scoring predicted masks against labels or reference masks, per day and pooled."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mars_cloudmask.infer.geometry import INVALID, MAP_HEIGHT, MAP_WIDTH
from mars_cloudmask.infer.netcdf import write_mask
from mars_cloudmask.infer.science.evaluate import Counts, confusion, evaluate, match_days
from mars_cloudmask.infer.science.masks import BinaryMask, day_name, select_days

W = MAP_WIDTH


def test_day_names_match_across_the_three_layouts():
    assert day_name("cloudmask_P01_day01.ncdf") == "P01_day01"
    assert day_name("cloudmask_P01day01.ncdf") == "P01_day01"
    assert day_name("P01day07.jpeg") == "P01_day07"
    assert day_name("P12_day34_zequat.jpg") == "P12_day34"
    assert day_name("stats.nc") is None
    names = ["P01_day15", "P01_day16", "P01_day18", "P02_day18", "P01_day21"]
    assert select_days("16-18", names) == ["P01_day16", "P01_day18", "P02_day18"]
    assert select_days("P01_day15,21", names) == ["P01_day15", "P01_day21"]
    with pytest.raises(ValueError, match="day name"):
        select_days("sixteen", names)


def test_confusion_counts_only_pixels_valid_in_both():
    valid_p = np.array([[1, 1, 1, 1, 0]], bool)
    valid_r = np.array([[1, 1, 1, 1, 1]], bool)
    pred = BinaryMask(valid_p, np.array([[1, 1, 0, 0, 0]], bool))
    ref = BinaryMask(valid_r, np.array([[1, 0, 1, 0, 1]], bool))  # the last cloud is not covered
    c = confusion(pred, ref)
    assert (c.tp, c.fp, c.fn, c.tn, c.ref_valid) == (1, 1, 1, 1, 5)
    m = c.metrics()
    assert m["f1"] == pytest.approx(0.5) and m["iou"] == pytest.approx(1 / 3)
    assert m["accuracy"] == pytest.approx(0.5) and m["coverage"] == pytest.approx(0.8)
    assert np.isnan(Counts().metrics()["f1"])


def write_case(root: Path) -> tuple[Path, Path]:
    """Predictions in cm-infer's layout and labels in the labelled layout, hand-built.

    Labels (all days): rows 0-99 valid, rows 0-9 cloudy (blue number 80), rest clear.
    Day 01 prediction, threshold attribute 0.5: rows 0-79 valid; rows 0-4 p=0.9 (TP),
    5-9 p=0.3 (FN), 10-14 p=0.7 (FP), 15-79 p=0.1 (TN).  Day 02: a perfect 0/1 copy of the
    label.  Day 03: labelled but not predicted.  Day 04: a corrupt prediction.
    """
    label = np.full((MAP_HEIGHT, W), INVALID, np.float32)
    label[:100] = 0.0
    label[:10] = 80.0
    labels = root / "labels" / "P01"
    for day in (1, 2, 3, 4):
        write_mask(labels / "cloudmask" / f"cloudmask_P01day{day:02d}.ncdf", label)
    pred = np.full((MAP_HEIGHT, W), INVALID, np.float32)
    pred[:80] = 0.1
    pred[:5] = 0.9
    pred[5:10] = 0.3
    pred[10:15] = 0.7
    out = root / "out" / "P" / "P01" / "cloudmasks"
    write_mask(out / "cloudmask_P01_day01.ncdf", pred, {"threshold": 0.5})
    write_mask(out / "cloudmask_P01_day02.ncdf", np.where(label > 0, 1.0, label).astype(np.float32), binary=True)
    (out / "cloudmask_P01_day04.ncdf").write_bytes(b"garbage")
    return root / "out", labels


def test_evaluate_hand_computed_case(tmp_path):
    pred_root, labels = write_case(tmp_path)
    res = evaluate(pred_root, labels)
    assert [d.day for d in res.days] == ["P01_day01", "P01_day02"]
    assert res.missing_pred == ["P01_day03"]
    assert len(res.errors) == 1 and "cloudmask_P01_day04.ncdf" in res.errors[0]
    day1 = res.days[0]
    row = W
    assert (day1.counts.tp, day1.counts.fp, day1.counts.fn, day1.counts.tn) == (5 * row, 5 * row, 5 * row, 65 * row)
    assert day1.metrics["f1"] == pytest.approx(0.5)
    assert day1.metrics["precision"] == pytest.approx(0.5) and day1.metrics["recall"] == pytest.approx(0.5)
    assert day1.metrics["accuracy"] == pytest.approx(0.875)
    assert day1.metrics["iou"] == pytest.approx(1 / 3)
    assert day1.metrics["coverage"] == pytest.approx(0.8)
    assert res.days[1].metrics["f1"] == 1.0 and res.days[1].metrics["coverage"] == 1.0
    # pooled: sums of pixel counts, not a mean of the daily scores
    pooled = res.pooled_metrics()
    assert pooled["f1"] == pytest.approx(2 * 15 / (2 * 15 + 5 + 5))
    assert pooled["coverage"] == pytest.approx(180 / 200)


def test_threshold_override_and_day_selection(tmp_path):
    pred_root, labels = write_case(tmp_path)
    res = evaluate(pred_root, labels, threshold=0.8, days=["P01_day01"])
    assert [d.day for d in res.days] == ["P01_day01"] and res.errors == []
    m = res.days[0].metrics
    assert m["precision"] == 1.0 and m["recall"] == pytest.approx(0.5) and m["f1"] == pytest.approx(2 / 3)


def test_match_days_reports_reference_days_without_prediction():
    pairs, missing = match_days({"P01_day01": Path("a")}, {"P01_day01": Path("b"), "P01_day02": Path("c")})
    assert pairs == [("P01_day01", Path("a"), Path("b"))] and missing == ["P01_day02"]


def test_cm_eval_command_prints_table_writes_json_and_pictures(tmp_path):
    import typer
    from typer.testing import CliRunner

    from mars_cloudmask.infer.science.cli import eval_command

    pred_root, labels = write_case(tmp_path)
    app = typer.Typer()
    app.command()(eval_command)
    out_json = tmp_path / "eval.json"
    result = CliRunner().invoke(
        app, [str(pred_root), str(labels), "--json", str(out_json), "--png", str(tmp_path / "png"), "--days", "1,3"]
    )
    assert result.exit_code == 0, result.output
    assert "pooled" in result.output and "1 days" in result.output and "0.500" in result.output
    # at 80 columns (the runner's width, a pipe's) every header is whole, none cut to 'precis…'
    assert all(h in result.output for h in ("precision", "accuracy", "coverage")) and "…" not in result.output
    assert max(len(line) for line in result.output.splitlines() if "pooled" in line or "day" in line) <= 80
    data = json.loads(out_json.read_text())
    assert data["pooled"]["f1"] == pytest.approx(0.5) and data["days"][0]["tp"] == 5 * W
    assert data["missing_pred"] == ["P01_day03"]
    assert [p.name for p in (tmp_path / "png").iterdir()] == ["eval_P01_day01.png"]
    # day 04 is corrupt: one line naming it, the other days still scored, exit status 1
    result = CliRunner().invoke(app, [str(pred_root), str(labels)])
    assert result.exit_code == 1
    assert "cloudmask_P01_day04.ncdf" in result.output and "Traceback" not in result.output
    assert "2 days" in result.output


def test_reproduces_the_original_models_figure_on_p01(data_dir):
    """docs/spec.md §7: the original's masks vs the labels, pixels valid in both: F1 0.818,
    precision 0.72, recall 0.94, accuracy 0.937 (labels exist for days 01-20)."""
    res = evaluate(data_dir / "reference" / "P" / "P01", data_dir / "labels" / "P01")
    assert len(res.days) == 20 and not res.errors
    m = res.pooled_metrics()
    assert m["f1"] == pytest.approx(0.818, abs=0.005)
    assert m["precision"] == pytest.approx(0.72, abs=0.01) and m["recall"] == pytest.approx(0.94, abs=0.01)
    assert m["accuracy"] == pytest.approx(0.937, abs=0.005)


def eval_app():
    import typer

    from mars_cloudmask.infer.science.cli import eval_command

    app = typer.Typer()
    app.command()(eval_command)
    return app


def test_a_wrong_shaped_or_nan_ls_prediction_is_one_line_and_the_rest_is_scored(tmp_path):
    from tests.test_science_stats import write_odd_mask

    pred_root, labels = write_case(tmp_path)
    out = pred_root / "P" / "P01" / "cloudmasks"
    (out / "cloudmask_P01_day04.ncdf").unlink()
    write_odd_mask(out / "cloudmask_P01_day03.ncdf", (100, 200), {"threshold": 0.5})
    nan_ls = np.full((MAP_HEIGHT, W), 0.1, np.float32)
    write_mask(out / "cloudmask_P01_day04.ncdf", nan_ls, {"threshold": 0.5, "solar_longitude": float("nan")})
    res = evaluate(pred_root, labels)
    assert [d.day for d in res.days] == ["P01_day01", "P01_day02", "P01_day04"]  # Ls plays no part in scores
    assert len(res.errors) == 1 and "cloudmask_P01_day03.ncdf" in res.errors[0] and "(100, 200)" in res.errors[0]
    result = CliRunner().invoke(eval_app(), [str(pred_root), str(labels)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cloudmask_P01_day03.ncdf" in result.output and "3 days" in result.output


@pytest.mark.parametrize("where", ["json-under-file", "json-is-folder", "png-under-file", "png-is-file"])
def test_cm_eval_refuses_an_unwritable_output_before_scoring(tmp_path, where):
    pred_root, labels = write_case(tmp_path)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    args = [str(pred_root), str(labels)]
    target = {
        "json-under-file": a_file / "e.json",
        "json-is-folder": tmp_path,
        "png-under-file": a_file / "png",
        "png-is-file": a_file,
    }[where]
    args += ["--json" if where.startswith("json") else "--png", str(target)]
    result = CliRunner().invoke(eval_app(), args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(target) in lines[0] and "Traceback" not in result.output, result.output
    assert a_file.read_text() == "x"


def _prob(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.full((MAP_HEIGHT, W), INVALID, np.float32)
    mask[100:1700] = rng.random((1600, W), dtype=np.float32)
    return mask


def test_a_probability_reference_is_read_at_its_own_threshold(tmp_path):
    """Issue 32 item 7: ``cm-eval out out`` read the reference's probabilities as labels (> 0 =
    cloud) and scored 0.38.  A run against itself scores 1."""
    out = tmp_path / "out"
    write_mask(out / "cloudmask_P01_day01.ncdf", _prob(1), {"output_type": "probability"}, threshold=0.47)
    res = evaluate(out, out)
    assert res.errors == [] and len(res.days) == 1
    assert res.pooled_metrics()["f1"] == 1.0 and res.pooled.fp == 0
    result = CliRunner().invoke(eval_app(), [str(out), str(out)])
    assert result.exit_code == 0 and "1.000" in result.output, result.output


def test_a_reference_of_unknown_kind_is_refused_with_one_line(tmp_path):
    from mars_cloudmask.infer.science.masks import reference_kind

    label = np.full((MAP_HEIGHT, W), INVALID, np.float32)
    label[:100] = 0.0
    label[:10] = 80.0
    assert reference_kind(label, {}) == ("labels", None)
    assert reference_kind(np.where(label > 0, 1.0, label), {}) == ("binary", None)
    assert reference_kind(_prob(1), {"threshold": 0.47}) == ("probability", 0.47)
    for values, attrs in [(_prob(1), {}), (_prob(1), {"threshold": "x"}), (label + 0.5, {})]:
        with pytest.raises(ValueError):
            reference_kind(values, attrs)
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    write_mask(pred / "cloudmask_P01_day01.ncdf", _prob(1), threshold=0.47)
    from tests.test_science_stats import write_odd_mask

    unsure = write_odd_mask(ref / "cloudmask_P01_day01.ncdf", (MAP_HEIGHT, W), {})  # no threshold attribute
    import netCDF4

    with netCDF4.Dataset(unsure, "a") as ds:
        ds["cloudmask"][:] = _prob(2)
    res = evaluate(pred, ref)
    assert res.days == [] and len(res.errors) == 1
    assert str(unsure) in res.errors[0] and "cannot tell" in res.errors[0] and "(reference)" in res.errors[0]


@pytest.mark.parametrize("edit", [5.0, float("nan")])
def test_a_prediction_edited_out_of_range_is_refused_by_name(tmp_path, edit):
    """Issue 32 item 8, in cm-eval."""
    pred_root, labels = write_case(tmp_path)
    bad = pred_root / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day04.ncdf"
    from tests.test_science_stats import write_odd_mask

    write_odd_mask(bad, (MAP_HEIGHT, W), {"threshold": 0.5})
    import netCDF4

    with netCDF4.Dataset(bad, "a") as ds:
        ds["cloudmask"][:] = np.full((MAP_HEIGHT, W), edit, np.float32)
    res = evaluate(pred_root, labels)
    assert [d.day for d in res.days] == ["P01_day01", "P01_day02"]
    assert len(res.errors) == 1 and str(bad) in res.errors[0] and "not a cloud mask" in res.errors[0]


@pytest.mark.parametrize("args", [["--threshold", "47"], ["--threshold", "-0.1"], ["--threshold", "nan"]])
def test_cm_eval_refuses_a_threshold_outside_0_1(tmp_path, args):
    """Issue 32 item 9: --threshold 47 was taken (every pixel clear)."""
    pred_root, labels = write_case(tmp_path)
    res = CliRunner().invoke(eval_app(), [str(pred_root), str(labels), *args])
    assert res.exit_code == 2 and "--threshold" in res.output and "[0, 1]" in res.output, res.output


@pytest.mark.parametrize("spec", ["1-99999999999999", "20-16", "100000"])
def test_cm_eval_bounds_the_days_it_is_given(tmp_path, spec):
    """Issue 32 item 13: --days 1-99999999999999 listed every number and was killed for memory."""
    pred_root, labels = write_case(tmp_path)
    res = CliRunner().invoke(eval_app(), [str(pred_root), str(labels), "--days", spec])
    assert res.exit_code == 2 and "--days" in res.output and "9999" in res.output, res.output
    assert select_days("1-9999", ["P01_day18"]) == ["P01_day18"] and select_days("16-17", ["P01_day18"]) == []


def test_a_second_prediction_of_a_day_is_named_not_silently_dropped(tmp_path):
    """Issue 32 item 3, in cm-eval: the first mask of a day was scored and a second ignored silently."""
    import shutil

    pred_root, labels = write_case(tmp_path)
    first = pred_root / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day01.ncdf"
    copy = pred_root / "Q" / "P01" / "cloudmask_P01_day01.ncdf"
    copy.parent.mkdir(parents=True)
    shutil.copy(first, copy)
    res = evaluate(pred_root, labels)
    assert [d.day for d in res.days] == ["P01_day01", "P01_day02"] and res.days[0].pred == str(first)
    dup = [e for e in res.errors if "the same day" in e]
    assert len(dup) == 1 and str(copy) in dup[0] and str(first) in dup[0]


def test_the_table_fits_80_columns_with_the_split_and_pooled_unseen_rows(tmp_path):
    """Piped at 80 columns, cm-eval cut its headers to 'precis…' and 'accura…' (issue 35)."""
    from rich.console import Console

    from mars_cloudmask.infer.science.cli import score_table
    from mars_cloudmask.infer.science.evaluate import evaluate
    from mars_cloudmask.infer.science.split import ModelSplit

    pred_root, labels = write_case(tmp_path)
    result = evaluate(pred_root, labels)
    split = ModelSplit("cloudmask-unet v2 (cloudmask-unet.onnx)", {"P01_day01": "train", "P01_day02": "test"})
    table, note = score_table(result, split, f"{pred_root} vs {labels}")
    console = Console(width=80, record=True, file=open(os.devnull, "w"))
    console.print(table)
    text = console.export_text()
    assert "pooled unseen" in text and note is not None
    header = next(line for line in text.splitlines() if "precision" in line)
    assert all(h in header for h in ("day", "split", "f1", "precision", "recall", "accuracy", "iou", "coverage"))
    assert "…" not in text
