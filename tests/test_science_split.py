"""cm-eval and the model's split: days a model trained or was validated on are not test days."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mars_cloudmask.infer.science.split import ModelSplit, day_numbers, parse_split, split_note
from tests.test_science_evaluate import eval_app, write_case

SPLIT = {"train": ["P01day01"], "val": ["P01day02"], "test": ["P01day03", "P01day04"], "reference": []}


def test_parse_split_makes_day_names_canonical():
    roles = parse_split(json.dumps(SPLIT))
    assert roles == {"P01_day01": "train", "P01_day02": "val", "P01_day03": "test", "P01_day04": "test"}
    assert parse_split("") == {} and parse_split("not json") == {} and parse_split("[1, 2]") == {}
    assert parse_split(json.dumps({"reference": ["P02day09"]})) == {"P02_day09": "train"}


def test_day_numbers_are_compact():
    assert day_numbers(["P01_day18", "P01_day19", "P01_day20"]) == "18-20"
    assert day_numbers(["P01_day01", "P01_day03", "P01_day04"]) == "1,3-4"


def test_split_note_counts_the_seen_days_and_names_the_test_days():
    split = ModelSplit("m v1", parse_split(json.dumps(SPLIT)))
    note = split_note(["P01_day01", "P01_day02", "P01_day03"], split)
    assert note is not None
    assert note.startswith("2 of 3 scored days were used by m v1: 1 to train it, 1 to validate it")
    assert note.endswith("--days 3-4")
    assert split_note(["P01_day03", "P01_day04"], split) is None


def test_cm_eval_marks_the_days_of_the_models_split(tmp_path, tiny_model):
    from tests.tiny_model import make_tiny_unet_onnx

    model = make_tiny_unet_onnx(
        tmp_path / "split.onnx", metadata={"split": json.dumps(SPLIT), "name": "tiny", "version": "7"}
    )
    pred_root, labels = write_case(tmp_path)
    (pred_root / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day04.ncdf").unlink()
    out_json = tmp_path / "e.json"
    result = CliRunner().invoke(
        eval_app(), [str(pred_root), str(labels), "--model", str(model), "--json", str(out_json)]
    )
    assert result.exit_code == 0, result.output
    assert "2 of 2 scored days were used by tiny v7" in result.output and "--days 3-4" in result.output
    assert "split" in result.output and "train" in result.output and "val" in result.output
    data = json.loads(out_json.read_text())
    assert [d["used_in"] for d in data["days"]] == ["train", "val"]
    assert data["days_seen_by_model"] == ["P01_day01", "P01_day02"] and data["split_model"].startswith("tiny v7")
    # a model without a split, or no model at all: no note, no column
    result = CliRunner().invoke(eval_app(), [str(pred_root), str(labels), "--model", str(tiny_model)])
    assert result.exit_code == 0 and "scored days were used" not in result.output
    result = CliRunner().invoke(eval_app(), [str(pred_root), str(labels)])
    assert result.exit_code == 0 and "the day's part in the split" not in result.output


def test_cm_eval_finds_the_shipped_model_from_the_masks_sha256(tmp_path):
    """Masks that carry the shipped model's SHA-256 get its split without --model (P01 days 18-20 are its test days)."""
    import numpy as np

    from mars_cloudmask.infer.geometry import INVALID, MAP_HEIGHT, MAP_WIDTH
    from mars_cloudmask.infer.netcdf import write_mask
    from mars_cloudmask.infer.runtime import file_sha256
    from mars_cloudmask.infer.science.split import read_model_split
    from mars_cloudmask.models import default_model_path

    shipped = default_model_path()
    if not shipped.is_file():
        pytest.skip("no shipped model in this checkout")
    roles = read_model_split(shipped).roles
    seen = sorted(d for d, r in roles.items() if r in ("train", "val"))[:1]
    test = sorted(d for d, r in roles.items() if r == "test")[:1]
    if not seen or not test:
        pytest.skip("the shipped model carries no split")
    mask = np.full((MAP_HEIGHT, MAP_WIDTH), INVALID, np.float32)
    mask[:100] = 0.0
    mask[:10] = 1.0
    for day in seen + test:
        write_mask(tmp_path / "labels" / f"cloudmask_{day}.ncdf", mask)
        write_mask(
            tmp_path / "pred" / f"cloudmask_{day}.ncdf", mask, {"threshold": 0.5, "model_sha256": file_sha256(shipped)}
        )
    result = CliRunner().invoke(eval_app(), [str(tmp_path / "pred"), str(tmp_path / "labels")])
    assert result.exit_code == 0, result.output
    assert "1 of 2 scored days were used by" in result.output and "pooled unseen" in result.output


def test_cm_eval_with_a_model_that_is_not_onnx_is_one_line(tmp_path):
    pred_root, labels = write_case(tmp_path)
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not onnx")
    result = CliRunner().invoke(eval_app(), [str(pred_root), str(labels), "--model", str(bad)])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "model.onnx" in lines[0] and "Traceback" not in result.output, result.output
