"""infer.channels: the extra input channels, known values on tiny north-up arrays."""

from __future__ import annotations

import numpy as np
import pytest

from mars_cloudmask.infer.background import Background
from mars_cloudmask.infer.channels import (
    ChannelError,
    extra_channels,
    latitude_channel,
    local_median_blue,
    model_input,
    parse_spec,
)


def rgb_of(blue: list[list[int]]) -> np.ndarray:
    b = np.asarray(blue, dtype=np.uint8)
    rgb = np.full(b.shape + (3,), 100, dtype=np.uint8)
    rgb[..., 2] = b
    rgb[b == 0] = 0
    return rgb


def bg_of(**planes: list[list[float]]) -> Background:
    pl = {int(k[1:]): np.asarray(v, dtype=np.float32) for k, v in planes.items()}
    shape = next(iter(pl.values())).shape
    return Background(pl, np.ones(shape, dtype=np.uint16), 1)


def test_spec_parsing():
    assert parse_spec("rgb").extras == () and parse_spec("rgb").n_channels == 3
    spec = parse_spec("rgb, bdiff10,bdiff50")
    assert spec.extras == ("bdiff10", "bdiff50") and spec.n_channels == 5
    assert spec.percentiles() == [10, 50] and spec.needs_background
    assert spec.text == "rgb,bdiff10,bdiff50"
    assert not parse_spec("rgb,lat").needs_background
    for bad, reason in (
        ("bdiff10", "start with 'rgb'"),
        ("rgb,blue", "unknown channel"),
        ("rgb,lat,lat", "twice"),
        ("rgb,bdiff100", "unknown channel"),
    ):
        with pytest.raises(ChannelError, match=reason):
            parse_spec(bad)


def test_blue_difference_is_offset_by_128_clipped_and_neutral_without_data():
    rgb = rgb_of([[100, 250, 40, 0]])
    bg = bg_of(p10=[[80.4, 60.0, 200.0, 50.0]])
    out = extra_channels(rgb, parse_spec("rgb,bdiff10"), bg)
    assert out.shape == (1, 4, 1) and out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [148, 255, 0, 128]  # +19.6 -> 148, +190 clipped, -160 clipped, no data


def test_blue_difference_is_neutral_where_the_background_has_no_data():
    out = extra_channels(rgb_of([[100]]), parse_spec("rgb,bdiff50"), bg_of(p50=[[np.nan]]))
    assert out[0, 0, 0] == 128


def test_blue_ratio_is_64_per_unit():
    rgb = rgb_of([[100, 200, 100, 100]])
    bg = bg_of(p30=[[100.0, 50.0, 400.0, np.nan]])
    out = extra_channels(rgb, parse_spec("rgb,bratio30"), bg)
    assert out[0, :, 0].tolist() == [64, 255, 16, 64]  # 1.0, 4.0 -> 256 clipped, 0.25, no background


def test_latitude_runs_from_north_at_the_top():
    lat = latitude_channel((1801, 2))
    assert lat[0, 0] == 255 and lat[900, 1] == 128 and lat[1800, 0] == 0
    assert np.all(np.diff(lat[:, 0].astype(int)) <= 0)


def test_model_input_stacks_rgb_first_and_rgb_alone_is_unchanged():
    rgb = rgb_of([[100, 120]])
    assert model_input(rgb, parse_spec("rgb")) is rgb
    x = model_input(rgb, parse_spec("rgb,bdiff10,lat"), bg_of(p10=[[90.0, 90.0]]))
    assert x.shape == (1, 2, 5) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[..., :3], rgb)
    assert x[0, :, 3].tolist() == [138, 158]


def test_season_channels_are_constant_planes_of_ls():
    from mars_cloudmask.infer.channels import season_channel

    x = extra_channels(rgb_of([[100, 100]]), parse_spec("rgb,sinls,cosls"), ls=90.0)
    assert x[0, :, 0].tolist() == [255, 255] and x[0, :, 1].tolist() == [128, 128]
    assert season_channel((1, 1), 270.0, "sinls")[0, 0] == 1 and season_channel((1, 1), 180.0, "cosls")[0, 0] == 1
    with pytest.raises(ChannelError, match="sinls needs the map's Ls"):
        extra_channels(rgb_of([[100]]), parse_spec("rgb,sinls"))


def test_missing_background_or_percentile_is_named():
    with pytest.raises(ChannelError, match="needs a background"):
        extra_channels(rgb_of([[100]]), parse_spec("rgb,bdiff10"))
    with pytest.raises(ChannelError, match=r"bdiff30: background has percentiles \[10\], not 30"):
        extra_channels(rgb_of([[100]]), parse_spec("rgb,bdiff30"), bg_of(p10=[[1.0]]))


def test_cos_incidence_follows_the_sun():
    from mars_cloudmask.infer.channels import OBLIQUITY_DEG, cos_incidence

    # equinox (Ls 0), equator, noon: the sun overhead; at 15:00 it is 45 degrees down the sky
    assert cos_incidence(np.array([0.0]), 0.0, local_time_h=12.0)[0] == pytest.approx(1.0)
    assert cos_incidence(np.array([0.0]), 0.0)[0] == pytest.approx(np.cos(np.radians(45.0)))
    # northern summer solstice (Ls 90): overhead at noon at the sub-solar latitude, the south pole dark
    assert cos_incidence(np.array([OBLIQUITY_DEG]), 90.0, local_time_h=12.0)[0] == pytest.approx(1.0)
    assert cos_incidence(np.array([-90.0]), 90.0)[0] < 0


def test_incidence_channel_is_row_wise_and_needs_ls():
    from mars_cloudmask.infer.channels import incidence_channel

    plane = incidence_channel((1801, 3), 90.0)  # north-up rows at the MDGM's 0.1 deg: row 0 is 90 N
    assert plane.dtype == np.uint8 and (plane == plane[:, :1]).all()
    assert plane[0, 0] > 128 > plane[-1, 0]  # northern summer: the north lit, the south pole in the dark
    x = extra_channels(rgb_of([[100]]), parse_spec("rgb,cosi"), ls=90.0)
    assert x.shape == (1, 1, 1)
    with pytest.raises(ChannelError, match="cosi needs the map's Ls"):
        extra_channels(rgb_of([[100]]), parse_spec("rgb,cosi"))


def test_local_median_of_a_uniform_map_is_its_blue_and_blocal_is_neutral():
    rgb = rgb_of([[120] * 40] * 20)
    np.testing.assert_allclose(local_median_blue(rgb, cell=4, half_cells=2), 120.0)
    assert (extra_channels(rgb, parse_spec("rgb,blocal")) == 128).all()


def test_local_median_ignores_a_small_bright_cloud_and_pixels_without_data():
    blue = np.full((8, 40), 100)
    blue[0:4, 8:12] = 220  # one bright cell among the 5 of its window
    blue[4:8, 20:24] = 0  # one cell without data
    rgb = rgb_of(blue.tolist())
    med = local_median_blue(rgb, cell=4, half_cells=2)
    np.testing.assert_allclose(med, 100.0)  # median of 5 cells, 1 of them bright; the empty cell left out
    out = extra_channels(rgb, parse_spec("rgb,blocal"))[..., 0]  # full-size cells (10 px): same here
    assert out[1, 9] == 128 + 120 and out[6, 21] == 128  # the cloud stands out; no data is neutral


def test_local_median_wraps_in_longitude_and_leaves_rows_far_from_data_nan():
    # cells of 3 px (pixel 3j + 1 is cell j's centre), 3 rows of cells x 10 columns:
    # top row 100, middle row 50 + 10 x column, bottom row no data
    blue = np.zeros((9, 30), int)
    blue[0:3] = 100
    blue[3:6] = np.repeat(50 + 10 * np.arange(10), 3)
    med = local_median_blue(rgb_of(blue.tolist()), cell=3, half_cells=1)
    assert med[4, 1] == pytest.approx(60.0)  # cell 0 sees cells 9, 0, 1 (140, 50, 60): wrapped
    assert med[4, 13] == pytest.approx(90.0)  # cell 4 sees 80, 90, 100
    assert med[1, 4] == pytest.approx(100.0)
    assert med[6, 13] == pytest.approx(90.0)  # between a middle cell and an empty one: the empty is left out
    assert np.isnan(med[7:]).all()  # pixel centres at or beyond the empty row's centres
