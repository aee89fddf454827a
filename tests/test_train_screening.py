"""Per-pixel screening of candidate inputs (train_kit.screening): the contrast features, exactly,
and one fit-and-score on a synthetic data root."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from mars_cloudmask.infer.channels import extra_channels, parse_spec  # noqa: E402
from mars_cloudmask.infer.geometry import INVALID, row_to_lat  # noqa: E402
from mars_cloudmask.infer.maps import read_map  # noqa: E402
from mars_cloudmask.infer.netcdf import write_mask  # noqa: E402
from mars_cloudmask.train_kit.screening import (  # noqa: E402
    contrast_features,
    pixel_features,
    row_medians,
    screen_set,
    summary_line,
)


def test_row_medians_take_only_valid_pixels_of_each_row():
    v = np.array([[1, 2, 3, 100], [10, 20, 30, 40]], np.float32)[..., None]
    valid = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    m = row_medians(v, valid)
    np.testing.assert_array_equal(m[..., 0], [[2, 2, 2, 2], [25, 25, 25, 25]])


def test_row_medians_in_blocks_fall_back_to_the_row_then_to_zero():
    v = np.array([[1, 3, 50, 70, 9], [5, 5, 5, 5, 5]], np.float32)[..., None]
    valid = np.array([[1, 1, 0, 0, 1], [0, 0, 0, 0, 0]], bool)
    m = row_medians(v, valid, block=2)  # blocks: columns 0-1, 2-3, 4 (shorter)
    # row 0: block 0 median 2, block 1 has no valid pixel -> the row's median of (1, 3, 9) = 3, block 2: 9
    np.testing.assert_array_equal(m[..., 0], [[2, 2, 3, 3, 9], [0, 0, 0, 0, 0]])


def test_contrast_features_are_differences_and_the_blue_ratio():
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, :, 0] = (10, 20, 30)
    rgb[0, :, 2] = (50, 100, 150)
    f = contrast_features(rgb, np.ones((1, 3), bool))
    np.testing.assert_allclose(f[0, :, 0], [-10, 0, 10])  # R minus the row's median 20
    np.testing.assert_allclose(f[0, :, 2], [-50, 0, 50])
    np.testing.assert_allclose(f[0, :, 3], [0.5, 1.0, 1.5])  # B over its median 100


def test_pixel_features_add_position_or_illumination_per_row():
    rgb = np.full((1801, 8, 3), 100, np.uint8)
    valid = np.ones((1801, 8), bool)
    assert pixel_features(rgb, valid, 140.0, "colour").shape == (1801, 8, 6)
    lat = pixel_features(rgb, valid, 140.0, "lat")
    np.testing.assert_allclose(lat[:, 3, 6], row_to_lat(np.arange(1801)), atol=1e-4)  # row 0 is the north
    cosi = pixel_features(rgb, valid, 140.0, "cosi")[:, 0, 6]
    assert cosi[900] > 0.5 and cosi[1800] < 0  # Ls 140: lit at the equator at 15:00, the south pole in its night
    with pytest.raises(ValueError, match="unknown feature set"):
        pixel_features(rgb, valid, 140.0, "altitude")


def test_blocal_set_is_the_unets_channel_as_a_feature():
    rgb = np.full((40, 60, 3), 100, np.uint8)
    rgb[10, 20, 2] = 160  # one bright pixel: 60 DN above the local median of 100
    f = pixel_features(rgb, np.ones((40, 60), bool), 140.0, "blocal")
    assert f.shape == (40, 60, 7)
    np.testing.assert_array_equal(f[..., 6], extra_channels(rgb, parse_spec("rgb,blocal"))[..., 0])
    assert f[10, 20, 6] == 128 + 60 and f[0, 0, 6] == 128


def write_data_root(root):
    """A data root as in ../shared/data: mdgm/P/P01 days 1-3 with labels (cloud where blue > 200),
    mdgm/P/P05 one map with the original's mask (the same rule)."""
    from tests.synthetic import write_map_tree

    def truth(rgb):
        t = (rgb[..., 2] > 200).astype(np.float32)
        t[rgb[..., 2] < 30] = INVALID
        return t

    for day, path in zip((1, 2, 3), write_map_tree(root / "mdgm", days=(1, 2, 3)), strict=True):
        write_mask(root / "labels" / "P01" / "cloudmask" / f"cloudmask_P01day{day:02d}.ncdf", truth(read_map(path)))
    (path,) = write_map_tree(root / "mdgm", subphase="P05", days=(1,), ls_start=193.0, seed=7)
    write_mask(root / "reference" / "P" / "P05" / "cloudmask_P05_day01.ncdf", truth(read_map(path)))


def test_screen_set_fits_on_training_days_and_scores_test_days_and_agreement(tmp_path):
    write_data_root(tmp_path)
    result = screen_set(
        tmp_path,
        "zonal",
        train_days=(1, 2),
        test_days=(3,),
        subphases=("P05", "P09"),
        samples_per_day=4000,
        max_iter=20,
    )
    assert result["n_train_pixels"] == 8000
    assert result["test"]["f1"] > 0.95, result  # the rule is in the pixels: the trees find it
    assert list(result["agreement"]) == ["P05"]  # P09 has no maps here: left out, not scored as 0
    assert result["agreement"]["P05"]["f1"] > 0.95
    test_f1, p05_f1 = result["test"]["f1"], result["agreement"]["P05"]["f1"]
    assert summary_line(result) == f"zonal: test F1 {test_f1:.4f} | agreement P05 {p05_f1:.3f}"
