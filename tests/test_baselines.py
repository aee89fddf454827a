"""Per-pixel baselines (train_kit.baselines): features, fitted thresholds, an end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("sklearn")

from mars_cloudmask.infer.geometry import INVALID  # noqa: E402
from mars_cloudmask.infer.maps import read_map  # noqa: E402
from mars_cloudmask.infer.netcdf import read_attrs, read_mask, write_mask  # noqa: E402
from mars_cloudmask.train_kit.baselines import (  # noqa: E402
    colour_features,
    fit_blue_threshold,
    fit_probability_threshold,
    predict_map,
    run,
)


def test_colour_features_of_one_pixel():
    f = colour_features(np.array([[100, 50, 150]], np.uint8))
    np.testing.assert_allclose(f[0], [100, 50, 150, 50, 1.5, 50 / 250])


def test_blue_threshold_maximises_f1():
    # cloud: blue 120 (x3), 90 (x1); clear: blue 60 (x4), 95 (x1)
    blue = np.array([120, 120, 120, 90, 60, 60, 60, 60, 95], np.uint8)
    cloud = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    # t <= 90 catches all 4 clouds and the 95 (F1 8/9); 91 <= t <= 95 gives TP 3 FP 1 FN 1 (F1 0.75);
    # 96 <= t <= 120 gives TP 3, FN 1 (F1 6/7): 61..90 wins, the first of them (61) is chosen
    t, f1 = fit_blue_threshold(blue, cloud)
    assert t == 61 and f1 == pytest.approx(8 / 9)


def test_probability_threshold():
    prob = np.array([0.9, 0.8, 0.3, 0.2, 0.1])
    cloud = np.array([1, 1, 1, 0, 0], bool)
    t, f1 = fit_probability_threshold(prob, cloud, steps=10)
    assert f1 == 1.0 and 0.2 < t <= 0.3


def test_predict_map_keeps_invalid_pixels():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 2] = 100
    rgb[0, 0, 2] = 200
    valid = np.ones((4, 4), bool)
    valid[3] = False
    out = predict_map(rgb, valid, "blue", blue_t=150)
    assert out[0, 0] == 1.0 and out[1, 1] == 0.0 and (out[3] == INVALID).all()


def write_labelled_layout(root, days=(1, 2, 3)):
    """Synthetic maps (tests.synthetic) and labels drawn from them: cloud where blue > 200."""
    from tests.synthetic import write_map_tree

    paths = write_map_tree(root / "maps", days=days)
    labels = root / "labels" / "P01"
    rows = []
    for day, path in zip(days, paths, strict=True):
        rgb = read_map(path)
        label = np.where(rgb[..., 2] > 200, rgb[..., 2], 0).astype(np.float32)
        label[rgb[..., 2] < 30] = INVALID
        write_mask(labels / "cloudmask" / f"cloudmask_P01day{day:02d}.ncdf", label)
        rows.append(f"P01day{day:02d}  28  {132.5 + day:.3f}")
    (labels / "list_ls.txt").write_text("\n".join(rows) + "\n")
    return labels, root / "maps" / "P" / "P01"


def test_end_to_end_on_a_synthetic_layout(tmp_path):
    labels, maps = write_labelled_layout(tmp_path)
    summary = run(
        labels, maps, tmp_path / "out", train="1-2", test_windows={"day3": "3"}, samples_per_day=5000, max_iter=20
    )
    assert summary["train_days"] == ["P01_day01", "P01_day02"] and summary["n_train_pixels"] == 10_000
    assert 190 <= summary["blue"]["threshold"] <= 202
    for kind in ("blue", "gbt"):
        path = tmp_path / "out" / kind / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day03.ncdf"
        assert read_attrs(path)["model"] == f"baseline-{kind}"
        mask = read_mask(path)
        assert (mask[:100] == INVALID).all()  # outside the Ls box
        score = summary["scores"]["day3"][kind]
        assert score["days"] == ["P01_day03"] and score["f1"] > 0.95, score
    assert not (tmp_path / "out" / "blue" / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day01.ncdf").exists()
    json.dumps(summary)  # serialisable as written by the command


def test_training_days_must_exist(tmp_path):
    labels, maps = write_labelled_layout(tmp_path, days=(1,))
    with pytest.raises(SystemExit, match="no labelled day"):
        run(labels, maps, tmp_path / "out", train="5-6", test_windows={"t": "1"})


def test_test_days_must_not_be_training_days(tmp_path):
    labels, maps = write_labelled_layout(tmp_path, days=(1,))
    with pytest.raises(SystemExit, match="also training days"):
        run(labels, maps, tmp_path / "out", train="1", test_windows={"t": "1"})


@pytest.mark.slow
def test_real_p01_small_fit_beats_chance_on_day_18(data_dir, tmp_path):
    """Bounded real-data check (2 training days, 20,000 pixels each, 20 boosting rounds, one test
    day); the full figures (15 days, 200,000 pixels, 100 rounds) are in docs/baselines.json."""
    summary = run(
        data_dir / "labels" / "P01",
        data_dir / "mdgm" / "P" / "P01",
        tmp_path / "out",
        train="1-2",
        test_windows={"d18": "18"},
        samples_per_day=20_000,
        max_iter=20,
    )
    assert 80 <= summary["blue"]["threshold"] <= 110  # the labels follow the blue channel (docs/spec.md §7: 93)
    scores = summary["scores"]["d18"]
    assert scores["blue"]["f1"] > 0.7 and scores["gbt"]["f1"] > 0.75, scores
    assert scores["gbt"]["coverage"] > 0.9
