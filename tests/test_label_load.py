"""cm-label's inputs (infer/label/load.py): a mask and its map found in a cm-infer output
folder, never outside it; Ls and Mars year from the mask or the _ls.txt; one-line errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mars_cloudmask.infer.geometry import INVALID, valid_pixels
from mars_cloudmask.infer.label.core import CLEAR, CLOUD, NO_DATA
from mars_cloudmask.infer.label.load import LabelInputError, find_in_out, open_session
from mars_cloudmask.infer.maps import read_map
from mars_cloudmask.infer.netcdf import write_mask
from tests.synthetic import make_map, write_map


def make_out(root, day: int = 6, attrs: bool = True):
    """A cm-infer --copy-maps output: OUT/P/P01/{cloudmasks,mdgms}/ and P01_ls.txt; returns (out, map, mask)."""
    sub = root / "P" / "P01"
    map_path = write_map(sub / "mdgms" / f"P01_day{day:02d}_zequat.jpg", make_map(seed=day))
    (sub / "P01_ls.txt").write_text(f"P01_day{day:02d}  28  135.100\n")
    rgb = read_map(map_path)
    prob = np.where(valid_pixels(rgb), rgb[..., 2] / 255.0, INVALID).astype(np.float32)
    meta = {"source_map": map_path.name, "solar_longitude": 135.25, "mars_year": 28, "threshold": 0.8}
    # without attrs: a mask with no Ls or Mars year (its threshold is still required)
    path = sub / "cloudmasks" / f"cloudmask_P01_day{day:02d}.ncdf"
    mask = write_mask(path, prob, meta if attrs else {"threshold": 0.8})
    return root, map_path, mask, prob


def test_find_in_out_finds_the_mask_and_its_copied_map(tmp_path):
    out, map_path, mask, _ = make_out(tmp_path / "out")
    found = find_in_out(out, "P01_day06")
    assert found.mask.samefile(mask) and found.map.samefile(map_path)


def test_find_in_out_refuses_names_and_symlinks_leading_out(tmp_path):
    out, map_path, _, _ = make_out(tmp_path / "out")
    for bad in ("../x", "a/b", "/etc/passwd", ".hidden", ""):
        with pytest.raises(LabelInputError, match="not a map name"):
            find_in_out(out, bad)
    outside = write_map(tmp_path / "elsewhere.jpg", make_map(seed=9))
    map_path.unlink()
    os.symlink(outside, map_path)
    with pytest.raises(LabelInputError, match="refused"):
        find_in_out(out, "P01_day06")


def test_find_in_out_says_what_is_missing(tmp_path):
    out, map_path, _, _ = make_out(tmp_path / "out")
    with pytest.raises(LabelInputError, match="no mask cloudmask_P01_day07.ncdf"):
        find_in_out(out, "P01_day07")
    map_path.unlink()
    with pytest.raises(LabelInputError, match="--copy-maps"):
        find_in_out(out, "P01_day06")
    with pytest.raises(LabelInputError, match="no such output folder"):
        find_in_out(tmp_path / "nope", "P01_day06")


def test_open_session_thresholds_at_the_masks_threshold_and_takes_its_ls(tmp_path):
    out, map_path, mask, prob = make_out(tmp_path / "out")
    s = open_session(mask, map_path, tmp_path / "labels")
    assert (s.name, s.mars_year, s.ls) == ("P01day06", 28, 135.25)
    expected = np.where(prob == INVALID, NO_DATA, np.where(prob >= 0.8, CLOUD, CLEAR))
    np.testing.assert_array_equal(s.base, expected)
    s2 = open_session(mask, map_path, tmp_path / "labels", threshold=0.5, name="P01day99")
    assert s2.name == "P01day99" and (s2.base == CLOUD).sum() > (s.base == CLOUD).sum()


def test_open_session_falls_back_to_the_ls_table_then_says_what_is_missing(tmp_path):
    _, map_path, mask, _ = make_out(tmp_path / "out", attrs=False)
    s = open_session(mask, map_path, tmp_path / "labels")
    assert (s.mars_year, s.ls) == (28, 135.1)
    (map_path.parent.parent / "P01_ls.txt").unlink()
    with pytest.raises(LabelInputError, match="--mars-year"):
        open_session(mask, map_path, tmp_path / "labels")
    assert open_session(mask, map_path, tmp_path / "labels", mars_year=29, ls=10.0).ls == 10.0


def test_open_session_names_a_bad_mask_or_map(tmp_path):
    _, map_path, mask, _ = make_out(tmp_path / "out")
    bad = tmp_path / "bad.ncdf"
    bad.write_bytes(b"not netcdf")
    with pytest.raises(LabelInputError, match=str(bad)):
        open_session(bad, map_path, tmp_path / "labels")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(map_path.read_bytes()[:1000])
    with pytest.raises(LabelInputError, match=str(broken)):
        open_session(mask, broken, tmp_path / "labels")
    with pytest.raises(LabelInputError, match="no such mask"):
        open_session(tmp_path / "none.ncdf", map_path, tmp_path / "labels")
