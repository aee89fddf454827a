"""train_kit.arms: the tables that compare training arms against version 2's card."""

from __future__ import annotations

import json

import pytest

from mars_cloudmask.train_kit.arms import (
    Arm,
    agreement_table,
    arm_family,
    fraction_table,
    judge,
    main,
    seed_table,
    summary_table,
)


def _result(agreement: dict[str, float], val=0.85, test=0.84) -> dict:
    return {
        "threshold": 0.5,
        "val": {"f1": val},
        "test": {"f1": test, "per_day": {"P01_day18": test - 0.01, "P01_day19": test + 0.01}},
        "agreement": {
            s: {"f1": f, "pred_cloud_fraction": 0.01, "truth_cloud_fraction": 0.002} for s, f in agreement.items()
        },
    }


REFERENCE = {"P02": 0.88, "P05": 0.79, "P09": 0.45, "P11": 0.88}


def test_judge_names_unseen_subphases_more_than_the_margin_below_version_2():
    arm = Arm("a", _result({"P02": 0.86, "P05": 0.75, "P09": 0.05, "P11": 0.80}), frozenset({"P11"}))
    verdict = judge(arm, REFERENCE)
    # P02 is 0.02 below (allowed), P05 0.04 below (not), P09 is judged by fraction, P11 was trained on
    assert verdict["below_reference"] == ["P05"]
    assert verdict["unseen"] == 3 and verdict["unseen_median"] == 0.75


def test_tables_show_each_arm_and_bracket_trained_subphases():
    a = Arm("bdiff", _result({"P02": 0.87, "P09": 0.3}))
    b = Arm("weak", _result({"P02": 0.91, "P09": 0.4}), frozenset({"P02"}))
    summary = summary_table([a, b], REFERENCE)
    assert "| bdiff | 0.50 | 0.8500 | 0.8400 (0.830, 0.850) |" in summary
    per_sub = agreement_table([a, b], REFERENCE)
    assert "| P02 | 0.880 | 0.870 | [0.910] |" in per_sub
    assert "| P05 | 0.790 | - | - |" in per_sub
    assert "| weak | 0.0100 / 0.0020 | - |" in fraction_table([a, b])


def test_seed_table_groups_the_seeds_of_one_arm_and_splits_steady_from_seed_dependent_losses():
    assert arm_family("v3-rgb-s1") == "v3-rgb" and arm_family("v3-rgb") == "v3-rgb"
    s0 = Arm("v3-bdiff-s0", _result({"P02": 0.80, "P05": 0.70, "P11": 0.86}, val=0.84, test=0.82))
    s1 = Arm("v3-bdiff-s1", _result({"P02": 0.87, "P05": 0.74, "P11": 0.90}, val=0.86, test=0.83))
    weak = Arm("v3-weak-s0", _result({"P02": 0.88, "P05": 0.80, "P11": 0.99}), frozenset({"P11"}))
    table = seed_table([s0, weak, s1], REFERENCE)
    # the median is over P02 and P05 (P11 is a weak target of one run): version 2 (0.88 + 0.79) / 2
    assert "agreement median (2 subphases unseen by all)" in table
    assert "| version 2 (card) | 1 | - | - | 0.8350 | - | - |" in table
    # P05 is below 0.79 - 0.03 in both seeds, P02 below 0.88 - 0.03 in seed 0 only
    row = "| v3-bdiff | 2 | 0.8400, 0.8600 -> 0.8500 | 0.8200, 0.8300 -> 0.8250 | 0.7500, 0.8050 -> 0.7775"
    row += " | P05 | P02 |"
    assert row in table
    assert "| v3-weak | 1 | 0.8500 | 0.8400 | 0.8400 | none | - |" in table
    assert table.index("v3-bdiff") < table.index("v3-weak")  # first-seen order


def test_main_reads_run_folders_and_the_card(tmp_path, capsys):
    run = tmp_path / "v3-weak-s0"
    run.mkdir()
    (run / "eval.json").write_text(json.dumps(_result({"P02": 0.9, "P05": 0.6})))
    (run / "run.json").write_text(json.dumps({"reference": ["/data/reference/P/P02"]}))
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"agreement_with_original": {s: {"f1": f} for s, f in REFERENCE.items()}}))
    assert main([str(run / "eval.json"), "--card", str(card)]) == 0
    out = capsys.readouterr().out
    assert "| v3-weak-s0 | 0.50 | 0.8500 | 0.8400 (0.830, 0.850) | 0.6000 (1) | P05 |" in out
    assert "[0.900]" in out


def test_main_plots_test_f1_against_agreement_when_asked(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    evals = []
    for name, test in (("v3-rgb-s0", 0.82), ("v3-rgb-s1", 0.83), ("v3-lat-s0", 0.86)):
        run = tmp_path / name
        run.mkdir()
        (run / "eval.json").write_text(json.dumps(_result({"P02": 0.88, "P05": 0.7}, test=test)))
        evals.append(str(run / "eval.json"))
    card = tmp_path / "card.json"
    rows = {s: {"f1": f} for s, f in REFERENCE.items()}
    card.write_text(json.dumps({"agreement_with_original": rows, "labels": {"test": {"model": {"f1": 0.848}}}}))
    png = tmp_path / "arms.png"
    assert main([*evals, "--card", str(card), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    names = ["arms.png", "card.json", "v3-lat-s0", "v3-rgb-s0", "v3-rgb-s1"]  # no temporary left
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert "| v3-rgb | 2 |" in capsys.readouterr().out
