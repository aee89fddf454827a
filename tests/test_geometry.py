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
    assert inp.type == "tensor(uint8)" and inp.shape[3] == 3
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
