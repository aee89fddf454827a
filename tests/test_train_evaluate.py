"""train_kit.evaluate: pooled threshold scores and whole-map prediction through the shared tiling."""

from __future__ import annotations

import numpy as np
import pytest

from mars_cloudmask.infer.geometry import INVALID, bounds_from_ls, valid_pixels
from mars_cloudmask.train_kit.evaluate import Histograms, predict_map


def test_scores_at_a_threshold_count_pixels_valid_on_both_sides():
    prob = np.array([0.9, 0.6, 0.4, 0.2, 0.8, INVALID], np.float32)
    truth = np.array([1.0, 0.0, 1.0, 0.0, -999.0, 1.0], np.float32)
    h = Histograms.empty()
    h.add(prob, truth)
    s = h.scores(0.5)  # tp 1 (0.9), fp 1 (0.6), fn 1 (0.4), tn 1 (0.2); the last two pixels are out
    assert s["pixels"] == 4
    assert s["f1"] == pytest.approx(0.5) and s["precision"] == pytest.approx(0.5) and s["recall"] == pytest.approx(0.5)
    assert s["pred_cloud_fraction"] == pytest.approx(0.5) and s["truth_cloud_fraction"] == pytest.approx(0.5)
    assert h.scores(0.3)["f1"] == pytest.approx(0.8)  # tp 2, fp 1, fn 0
    assert h.best_threshold() == pytest.approx(0.21)  # the lowest grid value above 0.2 catches both clouds alone


def test_threshold_is_inclusive_like_cm_infer():
    h = Histograms.empty()
    h.add(np.array([0.47], np.float32), np.array([1.0], np.float32))
    assert h.scores(0.47)["recall"] == 1.0 and h.scores(0.48)["recall"] == 0.0


def test_predict_map_puts_each_tile_where_its_input_came_from(synthetic_map):
    """A fake net returning the blue of its input's centre (the net's margin cropped) must give
    back the map's own blue / 255 inside the Ls box, -999 elsewhere: the tiling is exact."""
    margin, align, tile_out = 92, 16, 484

    def centre_blue(tiles: np.ndarray) -> np.ndarray:
        return tiles[:, margin:-margin, margin:-margin, 2].astype(np.float32) / 255.0

    prob = predict_map(synthetic_map, 135.0, centre_blue, margin, align, polar_offset=-3.0, tile_out=tile_out)
    b = bounds_from_ls(synthetic_map, 135.0, -3.0)
    valid = valid_pixels(synthetic_map, b)
    np.testing.assert_allclose(prob[valid], synthetic_map[..., 2][valid] / 255.0, atol=1e-6)
    assert np.all(prob[~valid] == INVALID) and valid.sum() > 1_000_000


def test_evaluate_does_not_import_the_training_cli():
    """Issue 33: cli imports evaluate, so evaluate (run as ``python -m ...train_kit.evaluate``)
    must not import cli back; its command lives in evaluate."""
    from tests.imports import imports_module

    assert not imports_module("train_kit.evaluate", "train_kit.cli")
    assert not imports_module("train_kit.cli", "train_kit.evaluate")


def test_evaluate_module_runs_as_a_command():
    """``python -m mars_cloudmask.train_kit.evaluate --help`` (README) still shows the command."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "mars_cloudmask.train_kit.evaluate", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "--data" in done.stdout and "--out" in done.stdout and "--background-subset" in done.stdout
