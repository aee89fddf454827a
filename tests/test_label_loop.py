"""benchmarks.label_loop: the correct-then-fine-tune loop's day sets, its JSON record and resume.

A tiny synthetic labelled folder (5 days), width 2, a few steps; the whole-map scorer is
replaced by one that checks the model file exists and returns fixed histograms.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mars_cloudmask.benchmarks import label_loop as loop
from mars_cloudmask.train_kit.checkpoint import LAST
from mars_cloudmask.train_kit.evaluate import Histograms
from tests.test_train_data import TILE_OUT, write_labelled

TINY = {
    "width": 2, "depth": 4, "epochs": 2, "batch_size": 4, "steps_per_epoch": 2, "lr": 1e-2,
    "lr_schedule": "cosine", "patience": 2, "w0": 0.5, "tile_out": TILE_OUT, "seed": 0, "keep_epochs": False,
}
TINY_FINETUNE = {"lr": 5e-3, "epochs": 1, "patience": 1}
ADDED = {0: (), 1: (3,), 2: (3, 4)}
KW = dict(ks=(0, 1, 2), base_days=(1, 2), added=ADDED, eval_days=(5,), recipe=TINY, finetune=TINY_FINETUNE)


def test_real_day_sets():
    """Base 01-05; k days spread over 06-15 added; days 16-20 never trained on."""
    assert loop.train_days(None) == [1, 2, 3, 4, 5]
    assert loop.train_days(0) == [1, 2, 3, 4, 5]
    assert loop.train_days(1) == [1, 2, 3, 4, 5, 10]
    assert loop.train_days(2) == [1, 2, 3, 4, 5, 8, 12]
    assert loop.train_days(4) == [1, 2, 3, 4, 5, 6, 9, 12, 15]
    for k in loop.ADDED_DAYS:
        assert len(loop.ADDED_DAYS[k]) == k
        assert not set(loop.train_days(k)) & set(loop.EVAL_DAYS)
    assert {**loop.RECIPE, **loop.FINETUNE}["epochs"] == 6 and loop.RECIPE["width"] == 8


def test_step_config_sets_aside_every_other_day_and_needs_no_validation():
    from mars_cloudmask.train_kit.train import check_unvalidated

    cfg = loop.step_config(Path("labels"), Path("runs/k1"), [1, 2, 3, 4, 5, 10], list(range(1, 21)),
                           loop.RECIPE, init=Path("runs/base") / LAST, finetune=loop.FINETUNE)
    assert cfg.val_days == [] and cfg.test_days == [6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    assert (cfg.lr, cfg.epochs, cfg.patience, cfg.width, cfg.init) == (5e-4, 6, 6, 8, str(Path("runs/base/last.keras")))
    check_unvalidated(cfg)  # cosine, patience >= epochs: allowed without validation days


def test_summarise_pools_pixels_and_keeps_each_day():
    a, b = Histograms.empty(), Histograms.empty()
    a.add(np.array([0.9, 0.9, 0.1]), np.array([1.0, 1.0, 0.0]))  # perfect day
    b.add(np.array([0.1, 0.9]), np.array([1.0, 0.0]))  # all wrong
    s = loop.summarise({"P01_day17": b, "P01_day16": a})
    assert s["per_day"] == {"P01_day16": {"0.67": 1.0, "0.5": 1.0}, "P01_day17": {"0.67": 0.0, "0.5": 0.0}}
    assert s["f1"]["0.67"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1), abs=1e-4)  # tp 2, fp 1, fn 1


@pytest.fixture
def data(tmp_path) -> Path:
    write_labelled(tmp_path / "data" / "labels" / "P01", days=(1, 2, 3, 4, 5))
    return tmp_path / "data"


def fake_scorer(calls: list):
    def score(model, run, data, days):
        assert Path(model).is_file(), model
        calls.append(Path(run).name)
        h = Histograms.empty()
        h.add(np.array([0.8, 0.2, 0.6]), np.array([1.0, 0.0, 1.0]))
        return {f"P01_day{d:02d}": h for d in days}

    return score


def counting_trainer(calls: list):
    def trainer(cfg, log):
        calls.append(Path(cfg.out).name)
        return loop._train(cfg, log)

    return trainer


def test_loop_trains_records_and_resumes(data, tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "loop.json"
    trained: list[str] = []
    scored: list[str] = []

    def go() -> None:
        loop.run_loop(data, runs, out, scorer=fake_scorer(scored), trainer=counting_trainer(trained),
                      log=lambda _: None, **KW)

    go()
    assert trained == scored == ["base", "k0", "k1", "k2"]
    rec = json.loads(out.read_text())
    steps = rec["steps"]
    assert {n: s["train_days"] for n, s in steps.items()} == {
        "base": [1, 2], "k0": [1, 2], "k1": [1, 2, 3], "k2": [1, 2, 3, 4]}
    assert rec["eval_days"] == [5] and rec["added_days"] == {"0": [], "1": [3], "2": [3, 4]}
    base_last = str(runs / "base" / LAST)
    assert steps["base"]["config"]["init"] is None and steps["base"]["config"]["epochs"] == 2
    for name in ("k0", "k1", "k2"):
        assert steps[name]["config"]["init"] == base_last and steps[name]["config"]["epochs"] == 1
        assert steps[name]["config"]["lr"] == 5e-3
    for name, s in steps.items():
        split = json.loads((runs / name / "run.json").read_text())["split"]
        assert split["train"] == [f"P01day{d:02d}" for d in s["train_days"]] and split["val"] == []
        assert s["minutes"] >= 0 and s["resumed"] is False
        assert set(s["f1"]) == {"0.67", "0.5"} and list(s["per_day"]) == ["P01_day05"]

    # a second call trains and scores nothing
    go()
    assert trained == scored == ["base", "k0", "k1", "k2"]

    # a step recorded as trained but not scored is only scored
    rec = json.loads(out.read_text())
    del rec["steps"]["k1"]["f1"]
    out.write_text(json.dumps(rec))
    go()
    assert trained == ["base", "k0", "k1", "k2"] and scored[-1] == "k1" and len(scored) == 5
    assert "f1" in json.loads(out.read_text())["steps"]["k1"]

    png = loop.plot_loop(json.loads(out.read_text()), tmp_path / "img" / "loop.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_interrupted_training_resumes_from_its_run_folder(data, tmp_path):
    """A run folder left by a killed training (not in the JSON) is resumed, not restarted."""
    runs, out = tmp_path / "runs", tmp_path / "loop.json"
    from mars_cloudmask.train_kit.train import train

    cfg = loop.step_config(data / "labels" / "P01", runs / "base", [1, 2], [1, 2, 3, 4, 5], {**TINY, "epochs": 2})
    train(cfg, log=lambda _: None)  # finished, but the loop never recorded it
    scored: list = []
    loop.run_loop(data, runs, out, scorer=fake_scorer(scored), log=lambda _: None, **{**KW, "ks": (0,)})
    steps = json.loads(out.read_text())["steps"]
    assert steps["base"]["resumed"] is True and steps["k0"]["resumed"] is False
    history = json.loads((runs / "base" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]  # not trained again


def test_missing_labels_is_one_line(tmp_path, capsys):
    assert loop.main(["--data", str(tmp_path), "--runs", str(tmp_path / "r"), "--out", str(tmp_path / "o.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "labels" / "P01") in err
    assert not (tmp_path / "o.json").exists()


def test_card_table_has_a_row_per_scored_step_in_k_order():
    def step(k, days, f1):
        return {"k": k, "train_days": days, "minutes": 2.0, "f1": {"0.67": f1, "0.5": f1 - 0.01},
                "per_day": {"P01_day16": {"0.67": f1, "0.5": f1}}}

    record = {"base_days": [1, 2, 3, 4, 5], "steps": {
        "k1": step(1, [1, 2, 3, 4, 5, 10], 0.8), "base": step(None, [1, 2, 3, 4, 5], 0.7),
        "k0": step(0, [1, 2, 3, 4, 5], 0.75), "k2": {"k": 2, "train_days": [1, 2, 3, 4, 5, 8, 12], "minutes": 3.0}}}
    lines = loop.card_table(record).splitlines()
    assert lines[0] == "| model | days added | F1 at 0.67 | F1 at 0.5 | day 16 | minutes |"
    assert [ln.split(" | ")[0] for ln in lines[2:]] == ["| base (01-05, 12 epochs)", "| k = 0", "| k = 1"]
    assert lines[4] == "| k = 1 | 10 | 0.8000 | 0.7900 | 0.800 | 2.0 |"


def test_plot_draws_the_scored_steps(tmp_path):
    step = {"k": 1, "train_days": [1, 10], "minutes": 2.0, "f1": {"0.67": 0.8, "0.5": 0.79},
            "per_day": {"P01_day16": {"0.67": 0.8, "0.5": 0.79}}}
    record = {"base_days": [1], "eval_days": [16], "steps": {"base": {**step, "k": None}, "k1": step,
                                                             "k2": {"k": 2, "train_days": [1, 8, 12], "minutes": 3.0}}}
    png = loop.plot_loop(record, tmp_path / "loop.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fine_tunes_alone_need_the_base_model(data, tmp_path, capsys):
    args = ["--data", str(data), "--runs", str(tmp_path / "r"), "--out", str(tmp_path / "o.json"), "--ks", "1"]
    assert loop.main([*args, "--no-base"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "r" / "base" / LAST) in err
    assert loop.main([*args[:-1], "3"]) == 1 and "k=[3]" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()
