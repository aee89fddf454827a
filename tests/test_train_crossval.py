"""train_kit.crossval: folds over days, recipes, the resumable results file and the summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mars_cloudmask.infer.geometry import INVALID
from mars_cloudmask.train_kit import crossval
from mars_cloudmask.train_kit.crossval import (
    FoldResult,
    Recipes,
    fold_days,
    format_summary,
    read_results,
    reliability,
    summarise,
    write_results,
)
from mars_cloudmask.train_kit.evaluate import Histograms


def test_folds_spread_across_the_season_and_cover_every_day_once():
    folds = fold_days(range(1, 21), 4)
    assert folds == [[1, 5, 9, 13, 17], [2, 6, 10, 14, 18], [3, 7, 11, 15, 19], [4, 8, 12, 16, 20]]
    assert fold_days([7, 3, 3, 5], 2) == [[3, 7], [5]]
    with pytest.raises(ValueError, match="--folds 5"):
        fold_days([1, 2, 3], 5)
    with pytest.raises(ValueError, match="--folds 1"):
        fold_days([1, 2, 3], 1)


def test_recipes_merge_base_and_candidate_and_refuse_unknown_fields(tmp_path: Path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"base": {"epochs": 12, "width": 8}, "candidates": {"a": {}, "b": {"width": 16}}}))
    rec = Recipes.read(path)
    cfg = rec.config("b", "labels/P01", [1, 5], tmp_path / "run", unused=[20, 19])
    assert (cfg.width, cfg.epochs, cfg.val_days, cfg.test_days) == (16, 12, [1, 5], [19, 20])
    assert rec.config("a", "labels/P01", [1], tmp_path / "run").width == 8
    path.write_text(json.dumps({"candidates": {"a": {"widht": 8}}}))
    with pytest.raises(ValueError, match="widht"):
        Recipes.read(path)
    path.write_text(json.dumps({"candidates": {"a": {"val_days": [1]}}}))  # the folds own the split
    with pytest.raises(ValueError, match="val_days"):
        Recipes.read(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="not a recipes file"):
        Recipes.read(path)


def _hist(cloud_probs: list[float], clear_probs: list[float]) -> Histograms:
    h = Histograms.empty()
    prob = np.array(cloud_probs + clear_probs, np.float32)
    truth = np.array([1.0] * len(cloud_probs) + [0.0] * len(clear_probs), np.float32)
    h.add(prob, truth)
    return h


def test_results_file_round_trips_and_refuses_a_damaged_one(tmp_path: Path):
    fr = FoldResult("w8", 1, [2, 6], {"P01_day02": _hist([0.9, 0.7], [0.1]), "P01_day06": _hist([0.2], [0.8])}, 12.0)
    path = tmp_path / "cv.json"
    write_results(path, {("w8", 1): fr}, {"k": 4})
    back = read_results(path)[("w8", 1)]
    assert back.days == [2, 6] and back.seconds == 12.0
    assert np.array_equal(back.per_day["P01_day02"].cloud, fr.per_day["P01_day02"].cloud)
    assert back.pooled().scores(0.5) == fr.pooled().scores(0.5)
    path.write_text(path.read_text()[:50])
    with pytest.raises(ValueError, match="not a cross-validation results file"):
        read_results(path)
    assert read_results(tmp_path / "missing.json") == {}


def test_summary_pairs_days_over_the_folds_every_candidate_finished():
    # a: perfect on both days; b: misses day02's clouds at any threshold above 0.3.
    a0 = FoldResult("a", 0, [1], {"P01_day01": _hist([0.9], [0.1])})
    a1 = FoldResult("a", 1, [2], {"P01_day02": _hist([0.9, 0.9], [0.1])})
    b0 = FoldResult("b", 0, [1], {"P01_day01": _hist([0.9], [0.1])})
    b1 = FoldResult("b", 1, [2], {"P01_day02": _hist([0.2, 0.9], [0.1])})
    a2 = FoldResult("a", 2, [3], {"P01_day03": _hist([0.9], [0.1])})  # b has no fold 2: left out of the comparison
    s = summarise({("a", 0): a0, ("a", 1): a1, ("b", 0): b0, ("b", 1): b1, ("a", 2): a2})
    assert s["folds_compared"] == [0, 1]
    a, b = s["candidates"]["a"], s["candidates"]["b"]
    assert a["folds"] == [1.0, 1.0] and a["mean"] == 1.0 and a["std"] == 0.0
    # b's pooled best threshold is above 0.1 (a clear pixel) and at most 0.2 (its low cloud): F1 1 on both days
    assert 0.1 < b["threshold"] <= 0.2 and b["folds"] == [1.0, 1.0]
    assert set(a["per_day"]) == {"P01_day01", "P01_day02"}
    pair = s["pairs"]["b - a"]
    assert pair["per_day"] == {"P01_day01": 0.0, "P01_day02": 0.0} and pair["wins"] == pair["losses"] == 0
    text = format_summary(s)
    assert "| a | " in text and "b - a" in text


def test_summary_shows_a_loss_day_by_day():
    a = FoldResult("a", 0, [1, 2], {"P01_day01": _hist([0.9], [0.1]), "P01_day02": _hist([0.9], [0.1])})
    b = FoldResult("b", 0, [1, 2], {"P01_day01": _hist([0.9], [0.1]), "P01_day02": _hist([0.9], [0.95])})
    s = summarise({("a", 0): a, ("b", 0): b})
    pair = s["pairs"]["b - a"]
    assert pair["per_day"]["P01_day01"] == 0.0 and pair["per_day"]["P01_day02"] < 0
    assert (pair["wins"], pair["losses"]) == (0, 1) and pair["mean"] < 0


def test_reliability_bins_predicted_against_observed():
    fr = FoldResult("a", 0, [1], {"d": _hist([0.92, 0.92, 0.92], [0.92, 0.12])})
    r = reliability({("a", 0): fr}, "a", bins=10)
    assert r["pixels"][9] == 4 and r["observed"][9] == pytest.approx(0.75)
    assert r["predicted"][9] == pytest.approx(0.9205)
    assert r["pixels"][1] == 1 and r["observed"][1] == 0.0
    assert sum(r["pixels"]) == 5


def test_run_cv_trains_only_what_the_results_file_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Resume: a (candidate, fold) already in the results file is neither trained nor scored again,
    and every finished fold is written at once (a stop in the next fold loses nothing)."""
    import mars_cloudmask.train_kit.data as data_mod
    import mars_cloudmask.train_kit.train as train_mod

    trained: list[tuple[int, list[int], list[int]]] = []
    def fake_train(cfg, log=print):
        trained.append((cfg.width, cfg.val_days, cfg.test_days))

    monkeypatch.setattr(train_mod, "train", fake_train)

    class Day:
        def __init__(self, d: int) -> None:
            self.name = f"P01day{d:02d}"

    monkeypatch.setattr(data_mod, "scan_labelled", lambda folder: [Day(d) for d in range(1, 9)])

    def fake_score(model_path, run, data, days, oof_dir, polar_offset=-3.0, log=print):
        if len(trained) == 3:
            raise KeyboardInterrupt  # the session stops while the third run is being scored
        return {f"P01_day{d:02d}": _hist([0.9], [0.1]) for d in days}

    monkeypatch.setattr(crossval, "score_fold", fake_score)
    rec = Recipes({"epochs": 1}, {"a": {"width": 4}, "b": {"width": 8}})
    results = tmp_path / "cv.json"
    with pytest.raises(KeyboardInterrupt):
        crossval.run_cv(rec, tmp_path, tmp_path / "runs", results, k=2, days=range(1, 7), log=lambda m: None)
    # fold 0 for a and b finished and was written; days 7-8 are outside --days, so set aside
    assert trained == [(4, [1, 3, 5], [7, 8]), (8, [1, 3, 5], [7, 8]), (4, [2, 4, 6], [7, 8])]
    assert sorted(read_results(results)) == [("a", 0), ("b", 0)]
    trained.clear()
    done = crossval.run_cv(rec, tmp_path, tmp_path / "runs", results, k=2, days=range(1, 7), log=lambda m: None)
    assert trained == [(4, [2, 4, 6], [7, 8]), (8, [2, 4, 6], [7, 8])]
    assert sorted(done) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert sorted(read_results(results)) == sorted(done)


def test_save_oof_map_keeps_thousandths_and_invalid(tmp_path: Path):
    prob = np.array([[0.0, 0.4704, 1.0, INVALID]], np.float32)
    crossval.save_oof_map(tmp_path / "d.npz", prob)
    q = np.load(tmp_path / "d.npz")["prob_thousandths"]
    assert q.dtype == np.uint16 and q.tolist() == [[0, 470, 1000, 65535]]
    assert not list(tmp_path.glob("*.tmp*"))


def test_cm_cv_refit_trains_the_chosen_candidate_on_every_day_without_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The refit of issue 31: the chosen recipe, every day of --days, no validation days, the rest set aside."""
    from typer.testing import CliRunner

    import mars_cloudmask.train_kit.data as data_mod
    import mars_cloudmask.train_kit.train as train_mod
    from mars_cloudmask.train_kit.cli import cv_app

    trained = []
    monkeypatch.setattr(train_mod, "train", lambda cfg, log=print: trained.append(cfg))

    class Day:
        def __init__(self, d: int) -> None:
            self.name = f"P01day{d:02d}"

    monkeypatch.setattr(data_mod, "scan_labelled", lambda folder: [Day(d) for d in range(1, 23)])
    recipes = tmp_path / "r.json"
    recipes.write_text(json.dumps({"base": {"epochs": 12, "lr_schedule": "cosine", "patience": 12},
                                   "candidates": {"w8": {"width": 8}, "w16": {"width": 16}}}))
    where = ["--data", str(tmp_path), "--out", str(tmp_path / "o")]
    run = CliRunner().invoke(cv_app, ["refit", str(recipes), "w16", *where])
    assert run.exit_code == 0, run.output
    (cfg,) = trained
    assert (cfg.width, cfg.epochs, cfg.val_days, cfg.test_days) == (16, 12, [], [21, 22])
    bad = CliRunner().invoke(cv_app, ["refit", str(recipes), "w32", *where])
    assert bad.exit_code == 1 and "w32: not a candidate" in bad.output
