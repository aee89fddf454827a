"""train_kit.loss and train_kit.metrics: -999 pixels count nowhere; the weights and scores."""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from mars_cloudmask.train_kit.loss import IGNORE, MaskedWeightedBCE, cloudy_fraction, edge_band
from mars_cloudmask.train_kit.metrics import MaskedScore, confusion_counts, scores_from_counts


def _case(seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((3, 8, 8, 1)) < 0.3).astype(np.float32)
    y[:, :2] = IGNORE
    p = rng.uniform(0.01, 0.99, y.shape).astype(np.float32)
    return y, p


def test_ignored_pixels_do_not_change_the_loss():
    y, p = _case()
    loss = MaskedWeightedBCE(w0=0.2)
    a = ops.convert_to_numpy(loss(y, p))
    p2 = p.copy()
    p2[:, :2] = 0.999  # any prediction on ignored pixels
    assert ops.convert_to_numpy(loss(y, p2)) == pytest.approx(a, rel=1e-6)


def test_weighted_bce_by_hand():
    y = np.array([[1.0, 0.0, IGNORE, 0.0]], np.float32)
    p = np.array([[0.8, 0.3, 0.5, 0.1]], np.float32)
    w0 = 0.25
    expected = (-(1 - w0) * np.log(0.8) - w0 * np.log(0.7) - w0 * np.log(0.9)) / 3
    got = ops.convert_to_numpy(MaskedWeightedBCE(w0)(y, p))
    assert got == pytest.approx(expected, rel=1e-5)
    with_dice = ops.convert_to_numpy(MaskedWeightedBCE(w0, dice_weight=1.0)(y, p))
    dice = (2 * 0.8 + 1) / ((0.8 + 0.3 + 0.1) + 1 + 1)
    assert with_dice == pytest.approx(expected + 1 - dice, rel=1e-5)


def test_focal_term_scales_each_pixel_by_its_error():
    y = np.array([[1.0, 0.0, IGNORE, 0.0]], np.float32)
    p = np.array([[0.8, 0.3, 0.5, 0.1]], np.float32)
    w0, g = 0.25, 2.0
    expected = (-(1 - w0) * 0.2**g * np.log(0.8) - w0 * 0.3**g * np.log(0.7) - w0 * 0.1**g * np.log(0.9)) / 3
    got = ops.convert_to_numpy(MaskedWeightedBCE(w0, focal_gamma=g)(y, p))
    assert got == pytest.approx(expected, rel=1e-5)


def test_edge_band_marks_both_sides_of_a_cloud_edge_only():
    y = np.zeros((1, 4, 6, 1), np.float32)
    y[0, :, 3:] = 1.0  # cloud on the right half: the edge runs between columns 2 and 3
    y[0, 0, :] = IGNORE  # an ignored row touches nothing
    band = ops.convert_to_numpy(edge_band(y, radius=1))[0, :, :, 0]
    expected = np.zeros((4, 6), np.float32)
    expected[1:, 2:4] = 1.0
    np.testing.assert_array_equal(band, expected)
    wide = ops.convert_to_numpy(edge_band(y, radius=2))[0, :, :, 0]
    assert wide[1:, 1:5].all() and not wide[:, [0, 5]].any() and not wide[0].any()


def test_edge_weight_scales_the_band_pixels():
    y = np.zeros((1, 4, 6, 1), np.float32)
    y[0, :, 3:] = 1.0
    p = np.full(y.shape, 0.6, np.float32)
    w0 = 0.5
    per_pixel = np.where(y > 0.5, -np.log(0.6), -np.log(0.4)) * w0
    band = np.zeros(y.shape, bool)
    band[0, :, 2:4] = True
    for ew in (0.0, 0.5, 3.0):
        expected = (per_pixel * np.where(band, ew, 1.0)).sum() / y.size
        got = ops.convert_to_numpy(MaskedWeightedBCE(w0, edge_weight=ew)(y, p))
        assert got == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="edge_weight needs"):
        MaskedWeightedBCE(w0, edge_weight=0.5)(y[..., 0].reshape(1, -1), p[..., 0].reshape(1, -1))


def test_loss_options_survive_serialisation():
    loss = MaskedWeightedBCE(0.3, dice_weight=0.5, focal_gamma=1.5, edge_weight=0.25, edge_radius=2)
    again = MaskedWeightedBCE.from_config(loss.get_config())
    kept = (again.w0, again.dice_weight, again.focal_gamma, again.edge_weight, again.edge_radius)
    assert kept == (0.3, 0.5, 1.5, 0.25, 2)
    with pytest.raises(ValueError):
        MaskedWeightedBCE(0.3, edge_radius=0)


def test_w0_is_the_cloudy_fraction_of_valid_pixels():
    masks = [np.array([[1, 0, IGNORE], [0, 0, 1]], np.float32), np.array([[IGNORE, 1]], np.float32)]
    assert cloudy_fraction(masks) == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="no valid pixel"):
        cloudy_fraction([np.full((2, 2), IGNORE)])


def test_streaming_metrics_match_numpy_counts():
    y, p = _case(1)
    counts = confusion_counts(y, p, 0.5)
    expected = scores_from_counts(*counts)
    assert counts.sum() == int((y >= 0).sum())
    for score, value in expected.items():
        metric = MaskedScore(score, 0.5)
        metric.update_state(y[:2], p[:2])  # two batches accumulate
        metric.update_state(y[2:], p[2:])
        assert float(ops.convert_to_numpy(metric.result())) == pytest.approx(value, abs=1e-6)
        metric.reset_state()
        assert float(ops.convert_to_numpy(metric.result())) == 0.0


def test_scores_by_hand():
    s = scores_from_counts(tp=6, fp=2, fn=4, tn=8)
    assert s == pytest.approx({"accuracy": 14 / 20, "iou": 6 / 12, "precision": 6 / 8, "recall": 6 / 10, "f1": 12 / 18})


def test_a_run_trains_with_the_loss_its_config_names():
    from mars_cloudmask.train_kit.config import TrainConfig, run_loss

    cfg = TrainConfig(data=[], out="", val_days=[16], dice_weight=0.5, focal_gamma=2.0, edge_weight=0.0, edge_radius=2)
    loss = run_loss(cfg, w0=0.4)
    assert (loss.w0, loss.dice_weight, loss.focal_gamma, loss.edge_weight, loss.edge_radius) == (0.4, 0.5, 2.0, 0.0, 2)
