"""Geometry (infer/geometry.py) and the test helpers it relies on: examples of use."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from mars_cloudmask.infer import geometry as g
from tests.synthetic import make_map


def test_tiny_model_honours_the_contract(tiny_model):
    sess = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.type == "tensor(uint8)" and inp.shape[3] == 3 and out.type == "tensor(float)"
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["tile_in"] == "668" and meta["margin"] == "92"
    rng = np.random.default_rng(0)
    for h, w in [(188, 188), (668, 668), (188 + 16 * 7, 668 + 16 * 3)]:
        y = sess.run(None, {inp.name: rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)})[0]
        assert y.shape == (2, h - 184, w - 184, 1) and y.dtype == np.float32
        assert 0 < y.min() and y.max() < 1


def test_tiny_model_is_equivariant_for_shifts_of_16(tiny_model):
    sess = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    img = np.random.default_rng(1).integers(0, 256, (1, 668 + 48, 668 + 32, 3), dtype=np.uint8)
    whole = sess.run(None, {"image": img})[0][0, ..., 0]
    tile = sess.run(None, {"image": img[:, 48 : 48 + 668, 16 : 16 + 668]})[0][0, ..., 0]
    np.testing.assert_allclose(tile, whole[48 : 48 + 484, 16 : 16 + 484], atol=1e-6)
    assert whole.std() > 1e-3  # not a constant map: the comparison means something


def test_make_map_has_data_gaps_and_clouds():
    rgb = make_map(seed=2)
    assert rgb.shape == (g.MAP_HEIGHT, g.MAP_WIDTH, 3) and rgb.dtype == np.uint8
    valid = g.valid_pixels(rgb)
    assert 0.3 < valid.mean() < 0.95
    assert not valid[0].any() and not valid[-1].any()  # black polar caps
    assert (rgb[..., 2] > 200).sum() > 10_000  # bright cloud patches


def test_data_columns_match_the_definition():
    rgb = make_map(seed=4)
    rgb[:, :7] = 0
    rgb[5, 3] = (30, 30, 30)  # one data pixel at column 3
    rgb[:, 3590:] = (200, 29, 200)  # a channel below 30: not data
    expected = np.flatnonzero(np.all(rgb >= 30, axis=2).any(axis=0))
    assert g.data_columns(rgb) == (int(expected[0]), int(expected[-1]))
    assert g.data_columns(rgb)[0] == 3 and g.data_columns(rgb)[1] < 3590
    assert g.data_columns(np.zeros((4, 5, 3), np.uint8)) is None


def test_a_deeper_net_gets_a_coarser_grid_and_a_wider_margin():
    # depth 5: 188 px of context per side, equivariant to 32-px shifts (a model says so in its metadata)
    box = g.Bounds(0, 3600, 238, 1324)
    plan = g.plan_tiles(box, "seamless", 484, margin=188, align=32)
    assert (plan.ys % 32 == 0).all() and (plan.xs % 32 == 0).all()
    assert set(np.diff(plan.xs[:-1]).tolist()) == {480}  # abutting outputs, 4 px shared
    assert plan.tile_in == 484 + 2 * 188
    assert plan.canvas_w % 32 == 4 and plan.canvas_h >= box.height
    canvas = g.build_canvas(make_map(seed=2), plan)
    assert canvas.shape == (plan.canvas_h + 376, plan.canvas_w + 376, 3)
    g.check_tile_out(500)  # 4 mod 16: fine at depth 4 ...
    with pytest.raises(ValueError, match=r"output tile size 500 px is not 4 mod 32 \(e\.g\. 484, 676, 964\)"):
        g.plan_tiles(box, "seamless", 500, margin=188, align=32)  # ... not at depth 5


# Known values, computed by hand from docs/spec.md §2:
#   Ls <= 180: s = 90 - |90 - Ls|,  lat_n = 59 + 0.214 s - c,  lat_s = -57 + 0.247 s + c
#   Ls >  180: s = 90 - |270 - Ls|, lat_n = 59 - 0.214 s - c,  lat_s = -57 - 0.247 s + c
#   row = round(900 - lat * 1801 / 180)
@pytest.mark.parametrize(
    "ls, offset, lat_n, lat_s",
    [
        (0.0, 3.0, 56.0, -54.0),  # s = 0: the equinox values
        (90.0, 3.0, 75.26, -31.77),  # northern summer solstice, s = 90: 59 + 19.26 - 3, -57 + 22.23 + 3
        (132.5, 3.0, 66.165, -42.2675),  # s = 47.5 (P01 day01)
        (180.0, 3.0, 56.0, -54.0),  # s = 0 again: both branches meet at Ls 180
        (225.0, 3.0, 46.37, -65.115),  # Ls > 180, s = 45: 59 - 9.63 - 3, -57 - 11.115 + 3
        (270.0, 3.0, 36.74, -76.23),  # southern summer solstice, s = 90
        (270.0, -3.0, 42.74, -82.23),  # a negative offset moves both bounds towards the poles
        (90.0, 0.0, 78.26, -34.77),
    ],
)
def test_polar_latitudes_known_values(ls, offset, lat_n, lat_s):
    assert g.polar_latitudes(ls, offset) == pytest.approx((lat_n, lat_s), abs=1e-9)


@pytest.mark.parametrize(
    "ls, offset, rows",
    [
        (0.0, 3.0, (340, 1440)),  # 900 - 56 * 10.00556 = 339.69; 900 + 54 * 10.00556 = 1440.30
        (90.0, 3.0, (147, 1218)),  # 146.98, 1217.88
        (132.5, 3.0, (238, 1323)),  # 237.98, 1322.91
        (225.0, 3.0, (436, 1552)),  # 436.04, 1551.51
        (270.0, 3.0, (532, 1663)),  # 532.40, 1662.72
    ],
)
def test_polar_rows_known_values(ls, offset, rows):
    assert g.polar_rows(ls, offset) == rows


def test_bounds_from_ls_known_values_on_both_branches():
    rgb = np.zeros((g.MAP_HEIGHT, g.MAP_WIDTH, 3), np.uint8)
    rgb[900, 100:3500] = (60, 60, 60)  # data columns 100..3499 (all channels >= 30)
    rgb[901, 3500] = (60, 29, 60)  # one channel below 30: not a data column
    # Ls 132.5 (<= 180): rows 238..1323 inclusive, so ymax = 1324 (exclusive)
    assert g.bounds_from_ls(rgb, 132.5).as_tuple() == (100, 3500, 238, 1324)
    # Ls 270 (> 180): the northern bound moves south, the southern one towards the pole
    assert g.bounds_from_ls(rgb, 270.0).as_tuple() == (100, 3500, 532, 1664)
    assert g.bounds_from_ls(rgb, 270.0, offset=-3.0).as_tuple() == (100, 3500, 472, 1724)


def test_bounds_from_ls_clips_to_the_map_and_refuses_a_black_map():
    rgb = np.zeros((g.MAP_HEIGHT, g.MAP_WIDTH, 3), np.uint8)
    rgb[:, :] = (60, 60, 60)
    # offset -40 at Ls 90: lat_n = 59 + 19.26 + 40 = 118.26 (past the pole: row 0), lat_s = -74.77 (row 1648)
    assert g.bounds_from_ls(rgb, 90.0, offset=-40.0).as_tuple() == (0, 3600, 0, 1649)
    with pytest.raises(ValueError, match="no data"):
        g.bounds_from_ls(np.zeros_like(rgb), 90.0)
