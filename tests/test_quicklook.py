"""Quicklook PNGs (``cm-infer --quicklook``): small, tinted, dimmed, atomic, never matplotlib."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mars_cloudmask.infer.geometry import INVALID, MAP_HEIGHT, MAP_WIDTH
from mars_cloudmask.infer.quicklook import (
    CLOUD_TINT,
    LEGEND_BACKGROUND,
    LEGEND_HEIGHT,
    QUICKLOOK_FACTOR,
    composite,
    legend_lines,
    save_quicklook,
)


def grey_map_and_mask() -> tuple[np.ndarray, np.ndarray]:
    """A uniform grey map; mask: invalid top 400 rows, cloud (0.99) in a block, clear (0.1) elsewhere."""
    rgb = np.full((MAP_HEIGHT, MAP_WIDTH, 3), 120, dtype=np.uint8)
    mask = np.full((MAP_HEIGHT, MAP_WIDTH), 0.1, dtype=np.float32)
    mask[:400] = INVALID
    mask[800:1000, 1000:1400] = 0.99
    return rgb, mask


def test_quicklook_is_small_with_clouds_tinted_and_invalid_dimmed(tmp_path):
    rgb, mask = grey_map_and_mask()
    out = save_quicklook(tmp_path / "ql" / "P01_day01.png", rgb, mask, threshold=0.912)
    assert out == tmp_path / "ql" / "P01_day01.png"
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.size == (900, 451 + LEGEND_HEIGHT)  # 3600 x 1801 shrunk 4x, over the legend strip
        px = np.asarray(im).astype(int)
    s = QUICKLOOK_FACTOR
    cloud = px[900 // s, 1200 // s]
    clear = px[1200 // s, 2000 // s]
    invalid = px[100 // s, 2000 // s]
    assert list(clear) == [120, 120, 120]  # clear valid pixels keep the map's colour
    # cloud pixels move towards the tint colour (magenta: red and blue up, green down)
    assert cloud[0] > 150 and cloud[2] > 150 and cloud[1] < 100
    assert np.abs(cloud - np.array(CLOUD_TINT)).sum() < np.abs(clear - np.array(CLOUD_TINT)).sum()
    assert (invalid < 60).all()  # dimmed to 30 %
    assert not list(out.parent.glob(".*"))  # no temporary file left beside it


def test_legend_says_what_the_picture_is_and_what_its_colours_mean():
    head, key = legend_lines("P01_day16  |  MY 28  |  Ls 133.4", 0.47, 0.1972, 0.0411)
    assert head == "P01_day16  |  MY 28  |  Ls 133.4  |  threshold 0.47"
    assert key.startswith("cloud: 19.7 % of valid pixels") and key.endswith("invalid (dimmed): 4.1 % of the map")
    assert legend_lines("", 0.5, float("nan"), 1.0) == (
        "threshold 0.5", "cloud: n/a of valid pixels        invalid (dimmed): 100.0 % of the map"
    )


def test_quicklook_carries_a_legend_strip_with_the_cloud_swatch(tmp_path):
    """A quicklook PNG had no title, Ls, threshold or legend (issue 35): it now ends in a strip
    whose text is drawn over the legend background and whose swatch is the cloud tint."""
    rgb, mask = grey_map_and_mask()
    with Image.open(save_quicklook(tmp_path / "cloudmask_P01_day01.png", rgb, mask, 0.912)) as im:
        px = np.asarray(im)
    strip = px[451:]
    assert strip.shape[0] == LEGEND_HEIGHT
    assert (strip == np.array(LEGEND_BACKGROUND, np.uint8)).all(axis=-1).mean() > 0.8  # mostly background
    assert (strip > 200).all(axis=-1).sum() > 100  # light text
    assert (strip == np.array(CLOUD_TINT, np.uint8)).all(axis=-1).sum() >= 100  # the 11 x 11 px swatch
    assert (px[:451] != np.array(LEGEND_BACKGROUND, np.uint8)).any(axis=-1).all()  # the map is untouched above


def test_quicklook_threshold_decides_what_is_cloud(tmp_path):
    rgb, mask = grey_map_and_mask()
    with Image.open(save_quicklook(tmp_path / "a.png", rgb, mask, threshold=0.05)) as im:
        px = np.asarray(im).astype(int)
    assert px[1200 // 4, 2000 // 4][1] < 100  # the 0.1 pixels are now cloud too


def test_quicklook_never_imports_matplotlib(tmp_path):
    """What keeps it a small fraction of a map's run (its time: ``python -m mars_cloudmask.benchmarks.science``)."""
    from tests.test_science_layout import modules_loaded_by, science_or_matplotlib

    loaded = modules_loaded_by(
        "import numpy as np\n"
        "from mars_cloudmask.infer.quicklook import save_quicklook\n"
        f"save_quicklook({str(tmp_path / 'q.png')!r}, np.full((1801, 3600, 3), 120, np.uint8),"
        " np.full((1801, 3600), 0.99, np.float32), 0.5)"
    )
    assert "PIL.PngImagePlugin" in loaded and (tmp_path / "q.png").stat().st_size > 0
    assert science_or_matplotlib(loaded) == []


def test_quicklook_rejects_mismatched_shapes(tmp_path):
    rgb, mask = grey_map_and_mask()
    with pytest.raises(ValueError, match="shape"):
        save_quicklook(tmp_path / "x.png", rgb[:100], mask, 0.5)
    assert not (tmp_path / "x.png").exists()


def test_composite_tints_in_proportion_to_block_coverage():
    rgb = np.zeros((8, 8, 3), np.uint8)
    valid = np.ones((8, 8), bool)
    layer = np.zeros((8, 8), bool)
    layer[:4, :2] = True  # half of the top-left 4x4 block
    out = composite(rgb, valid, [(layer, (200, 0, 0))], factor=4, alpha=1.0)
    assert out.shape == (2, 2, 3)
    assert tuple(out[0, 0]) == (100, 0, 0) and tuple(out[1, 1]) == (0, 0, 0)


def test_quicklook_of_a_real_map(data_dir, tmp_path):
    from mars_cloudmask.infer.maps import read_map
    from mars_cloudmask.infer.netcdf import read_mask

    rgb = read_map(data_dir / "mdgm" / "P" / "P01" / "P01_day16_zequat.jpg")
    mask = read_mask(data_dir / "reference" / "P" / "P01" / "cloudmask_P01_day16.ncdf")
    out = save_quicklook(Path(tmp_path) / "real.png", rgb, mask, 0.912)
    assert out.stat().st_size < 1_000_000  # a month of these is browsable
