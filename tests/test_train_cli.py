"""cm-train's command line: day ranges are parsed before anything is read or written."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mars_cloudmask.train_kit.cli import app


def test_day_lists_and_ranges():
    from mars_cloudmask.train_kit.cli import parse_days

    assert parse_days("16,17") == [16, 17]
    assert parse_days("16-17,20") == [16, 17, 20]
    assert parse_days(" 18 - 20 ") == [18, 19, 20]
    assert parse_days("") == []


@pytest.mark.parametrize("text", ["abc", "16-", "-3", "17-16", "1.5", "16-17-18"])
def test_a_bad_day_list_names_the_option_and_the_item(text):
    from mars_cloudmask.train_kit.cli import parse_days

    with pytest.raises(ValueError, match="--val-days"):
        parse_days(text, "--val-days")


@pytest.mark.parametrize("option", ["--val-days", "--test-days"])
def test_cm_train_refuses_a_bad_day_list_in_one_line(tmp_path, option):
    args = {"--data": str(tmp_path), "--val-days": "16-17", "--out": str(tmp_path / "run"), option: "abc"}
    result = CliRunner().invoke(app, [x for kv in args.items() for x in kv])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and option in lines[0] and "'abc'" in lines[0], result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "run").exists()


def test_subphase_lists():
    from mars_cloudmask.train_kit.cli import parse_subphases

    assert parse_subphases("P03,P07", "--val-subphases") == ["P03", "P07"]
    assert parse_subphases(" B01 , ", "--val-subphases") == ["B01"]
    assert parse_subphases("", "--test-subphases") == []


@pytest.mark.parametrize("text", ["P03,P03", "labels/P03", "P 03", ".hidden"])
def test_cm_train_refuses_a_bad_subphase_list_in_one_line(tmp_path, text):
    args = ["--data", str(tmp_path), "--val-subphases", text, "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--val-subphases" in lines[0], result.output
    assert not (tmp_path / "run").exists()


def test_cm_train_needs_validation_days_or_subphases(tmp_path):
    result = CliRunner().invoke(app, ["--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--val-subphases" in result.output and "'none'" in result.output
