"""Stitching (infer/stitch.py): the three modes against plain NumPy references and one whole pass."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal.windows import triang

from mars_cloudmask.infer import stitch as st
from mars_cloudmask.infer.geometry import INVALID, Bounds, plan_tiles
from mars_cloudmask.infer.predict import plan_for, predict_box, predict_whole_pass
from mars_cloudmask.infer.runtime import load_model
from tests.synthetic import make_map
from tests.tiny_model import make_tiny_unet_onnx


def vooban_window(n: int, power: int = 2) -> np.ndarray:
    """docs/spec.md §4.3 written with SciPy, as the original computes it."""
    t = triang(n)
    q = n // 4
    outer = (np.abs(2 * t) ** power) / 2
    outer[q:-q] = 0
    inner = 1 - (np.abs(2 * (t - 1)) ** power) / 2
    inner[:q] = 0
    inner[-q:] = 0
    w = inner + outer
    return w / np.average(w)


@pytest.mark.parametrize("n", [484, 485, 100, 964, 9])
def test_spline_window_matches_scipy_reference(n):
    np.testing.assert_array_equal(st.triangular_window(n), triang(n))
    np.testing.assert_allclose(st.spline_window(n), vooban_window(n), rtol=0, atol=1e-15)
    assert st.spline_window(n).min() > 0  # every tile pixel can win somewhere it alone covers


def original_selection_reference(plan, preds: list[np.ndarray]) -> np.ndarray:
    """The original's way: full (tiles, H, W) window stack, argmax over tiles (first wins ties)."""
    h, w = plan.bounds.height, plan.bounds.width
    w1 = vooban_window(plan.tile_out)
    win2d = w1[:, None] * w1[None, :]
    n = plan.n_tiles
    windows = np.zeros((n, h, w))
    values = np.zeros((n, h, w), np.float32)
    for k, ((y, x), p) in enumerate(zip(plan.origins(), preds, strict=True)):
        hh, ww = min(plan.tile_out, h - y), min(plan.tile_out, w - x)
        windows[k, y : y + hh, x : x + ww] = win2d[:hh, :ww]
        values[k, y : y + hh, x : x + ww] = p[:hh, :ww]
    best = np.argmax(windows, axis=0)
    out = np.take_along_axis(values, best[None], axis=0)[0]
    out[windows.max(axis=0) == 0] = INVALID
    return out, windows


def fold(mode, plan, preds):
    s = st.Stitcher.for_plan(mode, plan)
    for (y, x), p in zip(plan.origins(), preds, strict=True):
        s.add(y, x, p)
    return s.result()


@pytest.mark.parametrize(
    "height, width, tile_out",
    [(250, 330, 100), (97, 431, 100), (60, 70, 100), (700, 1300, 484), (300, 231, 52)],
)
def test_center_equals_the_originals_argmax_selection_ties_included(height, width, tile_out):
    plan = plan_tiles(Bounds(0, width, 0, height), "original", tile_out)
    rng = np.random.default_rng(height + width)
    preds = [rng.random((tile_out, tile_out), dtype=np.float32) for _ in range(plan.n_tiles)]
    ref, windows = original_selection_reference(plan, preds)
    got = fold("center", plan, preds)
    np.testing.assert_array_equal(got, ref)
    if plan.n_tiles > 1:
        top = windows.max(axis=0)
        ties = ((windows == top[None]).sum(axis=0) > 1).sum()
        assert ties > 0, "the case must contain ties for the tie rule to be tested"


def test_blend_is_the_window_weighted_average():
    plan = plan_tiles(Bounds(0, 410, 0, 230), "original", 100)
    rng = np.random.default_rng(3)
    preds = [rng.random((100, 100), dtype=np.float32) for _ in range(plan.n_tiles)]
    w1 = vooban_window(100)
    acc = np.zeros((230, 410))
    wsum = np.zeros((230, 410))
    for (y, x), p in zip(plan.origins(), preds, strict=True):
        win = (w1[:, None] * w1[None, :])[: 230 - y, : 410 - x]
        acc[y : y + 100, x : x + 100] += win * p[: win.shape[0], : win.shape[1]]
        wsum[y : y + 100, x : x + 100] += win
    np.testing.assert_allclose(fold("blend", plan, preds), acc / wsum, rtol=1e-6)


def test_seamless_writes_each_tile_where_it_falls():
    plan = plan_tiles(Bounds(0, 300, 0, 120), "seamless", 100)
    preds = [np.full((100, 100), k, np.float32) for k in range(plan.n_tiles)]
    out = fold("seamless", plan, preds)
    assert out.shape == (120, 300) and (out >= 0).all()
    # with abutting tiles on the 16-px grid, pixel (y, x) comes from the last tile covering it
    assert out[0, 0] == 0 and out[-1, -1] == plan.n_tiles - 1


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown stitch mode"):
        st.Stitcher("smooth", (10, 10), 4)


SHAPES = {
    "typical Ls box": Bounds(0, 3600, 238, 1324),
    "wide and low": Bounds(100, 3500, 700, 800),
    "tall and narrow": Bounds(1000, 1200, 0, 1801),
    "narrower than one tile": Bounds(50, 150, 900, 940),
    "wrapping a 3-column box at the east edge": Bounds(3597, 3600, 10, 600),
    "touching the top row": Bounds(300, 1400, 0, 500),
    "touching the bottom row": Bounds(2000, 3000, 1500, 1801),
}


@pytest.fixture(scope="module")
def model(tiny_model):
    st.warm_up()
    return load_model(tiny_model, provider="cpu")


@pytest.fixture(scope="module")
def rgb():
    return make_map(seed=5)


@pytest.mark.parametrize("name", list(SHAPES))
def test_seamless_equals_one_whole_map_pass(model, rgb, name):
    bounds = SHAPES[name]
    whole = predict_whole_pass(model, rgb, bounds)
    for tile_out in (484, 676):
        tiled = predict_box(model, rgb, plan_tiles(bounds, "seamless", tile_out), "seamless")
        assert tiled.shape == (bounds.height, bounds.width)
        np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-5, err_msg=f"{name}, tile_out {tile_out}")
    assert whole.std() > 1e-3


@pytest.mark.parametrize("name", ["wide and low", "narrower than one tile", "touching the bottom row"])
@pytest.mark.parametrize("mode", ["center", "blend"])
def test_original_plan_modes_cover_every_box_pixel(model, rgb, name, mode):
    bounds = SHAPES[name]
    box = predict_box(model, rgb, plan_tiles(bounds, "original", 484), mode)
    assert box.shape == (bounds.height, bounds.width)
    assert (box > 0).all() and (box < 1).all()


@pytest.fixture(scope="module", params=[3, 5], ids=["depth3", "depth5"])
def other_depth_model(request, tmp_path_factory):
    """A tiny model of depth 3 (44 px margin, 8-px grid) or 5 (188 px, 32-px grid)."""
    path = make_tiny_unet_onnx(tmp_path_factory.mktemp(f"depth{request.param}") / "m.onnx", seed=1, depth=request.param)
    return load_model(path, provider="cpu")


@pytest.mark.parametrize("name", ["typical Ls box", "narrower than one tile", "touching the bottom row"])
def test_a_model_of_another_depth_is_tiled_on_its_own_grid(other_depth_model, rgb, name):
    bounds, info = SHAPES[name], other_depth_model.info
    plan = plan_for(other_depth_model, bounds, "seamless")
    assert (plan.margin, plan.align) == (info.margin, info.align) and plan.tile_out % info.align == 4 % info.align
    tiled = predict_box(other_depth_model, rgb, plan, "seamless")
    np.testing.assert_allclose(tiled, predict_whole_pass(other_depth_model, rgb, bounds), rtol=0, atol=1e-5)
    assert tiled.std() > 1e-3
    center = predict_box(other_depth_model, rgb, plan_for(other_depth_model, bounds, "center"), "center")
    assert center.shape == tiled.shape and (center > 0).all() and (center < 1).all()


# --------------------------------------------------------------------------- fast start
def _fresh_python(code: str, **env: str):
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )


def test_seamless_stitching_and_its_warm_up_never_import_numba():
    res = _fresh_python(
        "import sys, numpy as np\n"
        "from mars_cloudmask.infer import stitch\n"
        "stitch.warm_up(['seamless'])\n"
        "s = stitch.Stitcher('seamless', (4, 4), 4); s.add(0, 0, np.ones((4, 4), np.float32))\n"
        "assert (s.result() == 1).all()\n"
        "print('numba' in sys.modules)\n"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_kernels_are_cached_in_numba_cache_dir(tmp_path):
    code = "from mars_cloudmask.infer import stitch\nstitch.warm_up(['center', 'blend'])\n"
    res = _fresh_python(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert res.returncode == 0, res.stderr
    cached = sorted(p.name.split("-")[0] for p in tmp_path.rglob("*.nbi"))
    assert cached == [
        "stitch._kernels.locals.blend_finish",
        "stitch._kernels.locals.blend_fold",
        "stitch._kernels.locals.center_fold",
    ]


def test_without_a_writable_cache_the_kernels_still_compile(monkeypatch):
    import numba

    from mars_cloudmask.infer import stitch

    real = numba.njit

    def no_locator(*args, **kwargs):
        if kwargs.get("cache"):

            def fail(func):
                raise RuntimeError(f"cannot cache function {func.__name__!r}: no locator available for file 'x.py'")

            return fail
        return real(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", no_locator)
    monkeypatch.setattr(stitch, "_KERNELS", None)
    s = stitch.Stitcher("center", (4, 4), 4)
    s.add(0, 0, np.full((4, 4), 0.5, np.float32))
    assert (s.result() == 0.5).all()
    monkeypatch.setattr(stitch, "_KERNELS", None)  # the next user compiles with caching again
