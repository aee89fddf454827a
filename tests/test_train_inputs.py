"""train_kit.inputs: which maps make each sample's background, and the channels it gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mars_cloudmask.train_kit.data import DataError, Sample
from mars_cloudmask.train_kit.inputs import ChannelInputs


def folder_of_maps(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    for d in range(1, n + 1):
        (root / f"P01_day{d:02d}_zequat.jpg").write_bytes(b"")
    return root


def label(day: int) -> Sample:
    return Sample(f"P01day{day:02d}", Path(f"P01day{day:02d}.jpeg"), Path("x.ncdf"), 135.0, "label")


def test_all_background_maps_by_default_and_a_seeded_subset_per_day(tmp_path):
    maps = folder_of_maps(tmp_path / "P01", 25)
    whole = ChannelInputs("rgb,bdiff10", [maps])
    assert len(whole.background_files(label(3))) == 25
    five = ChannelInputs("rgb,bdiff10", [maps], subset=5, seed=0)
    a, b = five.background_files(label(3)), five.background_files(label(4))
    assert len(a) == len(b) == 5 and a != b and a == sorted(a)
    assert a == ChannelInputs("rgb,bdiff10", [maps], subset=5, seed=0).background_files(label(3))  # reproducible
    assert a != ChannelInputs("rgb,bdiff10", [maps], subset=5, seed=1).background_files(label(3))
    assert len(ChannelInputs("rgb,bdiff10", [maps], subset=40).background_files(label(3))) == 25


def test_reference_maps_take_their_own_folder_whole(tmp_path):
    p07 = folder_of_maps(tmp_path / "P07", 5)
    ref = Sample("P07_day03", p07 / "P07_day03_zequat.jpg", Path("x.ncdf"), 200.0, "reference")
    inputs = ChannelInputs("rgb,bdiff10", [folder_of_maps(tmp_path / "P01", 25)], subset=2)
    assert inputs.background_files(ref) == sorted(p07.iterdir())


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(DataError, match="need a background"):
        ChannelInputs("rgb,bdiff10")
    with pytest.raises(DataError, match="--background-subset -1"):
        ChannelInputs("rgb,bdiff10", [tmp_path], subset=-1)
    with pytest.raises(DataError, match="no such background map or folder"):
        ChannelInputs("rgb,bdiff10", [tmp_path / "nowhere"]).background_files(label(1))


def test_rgb_alone_is_passed_through_and_channels_are_added(map_tree):
    rgb = np.zeros((1801, 3600, 3), np.uint8)
    assert ChannelInputs("rgb")(label(1), rgb) is rgb
    x = ChannelInputs("rgb,bdiff10,lat", [map_tree / "P" / "P01"])(label(1), rgb)
    assert x.shape == (1801, 3600, 5) and np.all(x[..., 3] == 128)  # an all-black map: no contrast anywhere
