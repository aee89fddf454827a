"""The Python API for one map (infer/predict.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mars_cloudmask.infer.geometry import INVALID, Bounds, bounds_from_ls, valid_pixels
from mars_cloudmask.infer.predict import predict, threshold_mask
from mars_cloudmask.infer.runtime import load_model


@pytest.fixture(scope="module")
def model(tiny_model):
    return load_model(tiny_model, provider="cpu")


@pytest.fixture(scope="module")
def seamless(model, synthetic_map):
    return predict(model, synthetic_map, ls=132.5)


def test_predict_returns_a_north_up_probability_map(seamless, synthetic_map):
    bounds = bounds_from_ls(synthetic_map, 132.5)
    assert seamless.shape == (1801, 3600) and seamless.dtype == np.float32
    valid = valid_pixels(synthetic_map, bounds)
    assert (seamless[~valid] == INVALID).all()
    assert ((seamless[valid] >= 0) & (seamless[valid] <= 1)).all()
    assert valid.sum() > 1_000_000


def test_bounds_instead_of_ls(model, synthetic_map, seamless):
    bounds = bounds_from_ls(synthetic_map, 132.5)
    np.testing.assert_array_equal(predict(model, synthetic_map, bounds=bounds.as_tuple()), seamless)
    small = predict(model, synthetic_map, bounds=Bounds(100, 900, 500, 700))
    assert (small[:500] == INVALID).all() and (small[:, 900:] == INVALID).all()
    assert (small[500:700, 100:900] > INVALID).mean() > 0.5


def test_tile_size_and_batch_do_not_change_seamless(model, synthetic_map, seamless):
    np.testing.assert_allclose(predict(model, synthetic_map, ls=132.5, tile_out=676, batch_size=2), seamless, atol=1e-5)


def test_center_and_blend_cover_the_same_pixels(model, synthetic_map, seamless):
    for mode in ("center", "blend"):
        out = predict(model, synthetic_map, ls=132.5, stitch=mode)
        np.testing.assert_array_equal(out == INVALID, seamless == INVALID)
        # different tile origins give different (but close, same net) values
        assert np.abs(out - seamless)[seamless > INVALID].mean() < 0.1


def test_polar_offset_moves_the_bounds(model, synthetic_map, seamless):
    wider = predict(model, synthetic_map, ls=132.5, polar_offset=0.0)
    assert (wider > INVALID).sum() > (seamless > INVALID).sum()


def test_a_map_without_data_is_all_invalid(model):
    out = predict(model, np.zeros((1801, 3600, 3), np.uint8), ls=100.0)
    assert (out == INVALID).all()


def test_bad_arguments(model, synthetic_map):
    with pytest.raises(ValueError, match="solar longitude"):
        predict(model, synthetic_map)
    with pytest.raises(ValueError, match=r"uint8 \(1801, 3600, 3\)"):
        predict(model, synthetic_map[:100], ls=100.0)
    with pytest.raises(ValueError, match="unknown stitch mode"):
        predict(model, synthetic_map, ls=100.0, stitch="smooth")
    with pytest.raises(ValueError, match="4 mod 16"):
        predict(model, synthetic_map, ls=100.0, tile_out=490)


def test_threshold_mask_keeps_invalid_pixels():
    prob = np.array([[INVALID, 0.2, 0.912, 0.95]], np.float32)
    np.testing.assert_array_equal(threshold_mask(prob, 0.912), [[INVALID, 0.0, 1.0, 1.0]])


def test_the_api_never_imports_tensorflow(tiny_model):
    """Run in a fresh interpreter: other tests in this session may import TensorFlow."""
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from mars_cloudmask.infer.runtime import load_model
        from mars_cloudmask.infer.predict import predict
        from mars_cloudmask.infer.engine import run_folder
        from mars_cloudmask.infer.netcdf import write_mask, read_mask
        from mars_cloudmask.infer.maps import read_map
        from mars_cloudmask.infer import cli
        model = load_model({str(tiny_model)!r}, provider="cpu")
        rgb = np.full((1801, 3600, 3), 120, np.uint8)
        out = predict(model, rgb, ls=200.0)
        assert out.shape == (1801, 3600)
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx"))
        print("IMPORTED:", bad)
        assert not bad
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "IMPORTED: []" in proc.stdout


def test_seamless_tile_size_minimises_the_input_pixels():
    from mars_cloudmask.infer.geometry import plan_tiles
    from mars_cloudmask.infer.predict import seamless_tile_out

    box = Bounds(0, 3600, 238, 1324)
    t = seamless_tile_out(box)
    assert t % 16 == 4 and 228 <= t <= 868
    cost = plan_tiles(box, "seamless", t).n_tiles * (t + 184) ** 2
    assert cost < plan_tiles(box, "seamless", 484).n_tiles * 668**2
    assert all(plan_tiles(box, "seamless", s).n_tiles * (s + 184) ** 2 >= cost for s in range(228, 869, 16))
    assert seamless_tile_out(Bounds(50, 150, 900, 940)) == 228  # a small box gets a small tile
