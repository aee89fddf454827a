"""cm-label's core (infer/label/core.py): edit <-> label arrays, safe paths, the label writer,
and that the training kit reads what it writes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mars_cloudmask.infer.geometry import INVALID, valid_pixels
from mars_cloudmask.infer.label.core import (
    CLEAR,
    CLOUD,
    EDIT_BYTES,
    NO_DATA,
    EditError,
    PathError,
    edit_from_bytes,
    edit_from_values,
    label_from_edit,
    label_name,
    safe_path,
    save_label,
    update_ls_table,
)
from mars_cloudmask.infer.maps import read_map
from mars_cloudmask.infer.netcdf import read_mask
from tests.synthetic import make_map, write_map


def base_edit(rgb: np.ndarray) -> np.ndarray:
    """Valid where the map is valid, cloud where blue >= 200."""
    valid = valid_pixels(rgb)
    values = np.where(valid, (rgb[..., 2] >= 200).astype(np.float32), np.float32(INVALID))
    return edit_from_values(values, 0.5)


@pytest.fixture(scope="module")
def saved_map(tmp_path_factory):
    """A synthetic map written as JPEG and read back (the pixels the label is built on)."""
    path = write_map(tmp_path_factory.mktemp("map") / "P01_day03_zequat.jpg", make_map(seed=3))
    return path, read_map(path)


def test_values_to_edit_prediction_and_label():
    values = np.full((1801, 3600), INVALID, np.float32)
    values[0, :4] = [0.0, 0.46, 0.47, 1.0]
    values[1, 0] = np.nan
    edit = edit_from_values(values, 0.47)
    assert edit[0, :5].tolist() == [CLEAR, CLEAR, CLOUD, CLOUD, NO_DATA]
    assert edit[1, 0] == NO_DATA
    label = values.copy()
    label[0, :4] = [0.0, 54.0, 255.0, 0.0]
    assert edit_from_values(label)[0, :5].tolist() == [CLEAR, CLOUD, CLOUD, CLEAR, NO_DATA]


def test_edit_to_label_is_blue_0_and_minus_999_and_back_exactly(saved_map):
    _, rgb = saved_map
    edit = base_edit(rgb)
    label = label_from_edit(edit, rgb)
    cloud = edit == CLOUD
    assert cloud.any() and (edit == CLEAR).any() and (edit == NO_DATA).any()
    np.testing.assert_array_equal(label[cloud], np.maximum(rgb[..., 2][cloud], 1).astype(np.float32))
    assert (label[edit == CLEAR] == 0).all() and (label[edit == NO_DATA] == INVALID).all()
    np.testing.assert_array_equal(edit_from_values(label), edit)  # edit -> label -> edit
    np.testing.assert_array_equal(label_from_edit(edit_from_values(label), rgb), label)  # label -> edit -> label


def test_a_cloudy_pixel_with_blue_0_is_still_cloud():
    rgb = np.zeros((1801, 3600, 3), np.uint8)
    edit = np.full((1801, 3600), CLEAR, np.uint8)
    edit[5, 5] = CLOUD
    assert label_from_edit(edit, rgb)[5, 5] == 1.0


def test_bytes_from_the_page_are_checked_and_keep_no_data():
    base = np.full((1801, 3600), CLEAR, np.uint8)
    base[0, 0] = NO_DATA
    sent = np.full((1801, 3600), CLOUD, np.uint8)
    edit = edit_from_bytes(sent.tobytes(), base)
    assert edit[0, 0] == NO_DATA and edit[0, 1] == CLOUD
    with pytest.raises(EditError, match="bytes"):
        edit_from_bytes(b"\x00" * (EDIT_BYTES - 1), base)
    sent[3, 3] = 7
    with pytest.raises(EditError, match="values"):
        edit_from_bytes(sent.tobytes(), base)


def test_label_names_and_ls_rows():
    assert label_name("P01_day01") == "P01day01"
    assert label_name("P01day16") == "P01day16"
    assert label_name("custom") == "custom"
    day1, day2 = "P01day01      28      132.500\n", "P01day02      28      132.900\n"
    assert update_ls_table(day1 + day2, "P01day02", 28, 133.0) == day1 + "P01day02      28      133.000\n"
    assert update_ls_table(day1 + day2, "P01day03", 28, 133.4) == day1 + day2 + "P01day03      28      133.400\n"
    assert update_ls_table("", "P01day03", 28, 133.4) == "P01day03      28      133.400\n"


def test_safe_path_refuses_dotdot_absolute_and_symlinks_out(tmp_path):
    root = tmp_path / "labels"
    (root / "mdgms").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    assert safe_path(root, "mdgms/a.jpeg") == root.resolve() / "mdgms" / "a.jpeg"
    for bad in ("../outside/x", "mdgms/../../outside/x", "/etc/passwd", str(outside / "x"), "", "a\x00b"):
        with pytest.raises(PathError):
            safe_path(root, bad)
    os.symlink(outside, root / "cloudmask")
    with pytest.raises(PathError, match="outside"):
        safe_path(root, "cloudmask/cloudmask_x.ncdf")
    os.symlink(outside / "f", root / "mdgms" / "link.jpeg")
    with pytest.raises(PathError, match="outside"):
        safe_path(root, "mdgms/link.jpeg")


def test_save_refuses_a_label_folder_whose_subfolder_links_out(tmp_path, saved_map):
    path, rgb = saved_map
    root = tmp_path / "labels"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "cloudmask")
    with pytest.raises(PathError):
        save_label(root, "P01day03", base_edit(rgb), rgb, path, 28, 133.4)
    assert list((tmp_path / "elsewhere").iterdir()) == []
    for bad in ("../x", "a/b", ".hidden"):
        with pytest.raises(PathError):
            save_label(root, bad, base_edit(rgb), rgb, path, 28, 133.4)


def test_saved_label_is_south_up_on_disk_and_listed(tmp_path, saved_map):
    path, rgb = saved_map
    root = tmp_path / "labels"
    edit = base_edit(rgb)
    edit[200, :] = NO_DATA
    edit[200, 1000] = CLOUD  # one cloud pixel alone on its row, near the top (north)
    paths = save_label(root, "P01day03", edit, rgb, path, 28, 133.4)
    on_disk = read_mask(paths.mask, north_up=False)
    assert on_disk[1800 - 200, 1000] == max(int(rgb[200, 1000, 2]), 1)  # south-up: row 200 is 1600 on disk
    assert (on_disk[1600, :1000] == INVALID).all()
    np.testing.assert_array_equal(read_mask(paths.mask), label_from_edit(edit, rgb))
    assert paths.map.read_bytes() == path.read_bytes()
    assert (root / "list_ls.txt").read_text() == "P01day03      28      133.400\n"
    # saving again replaces the row and the label; nothing temporary is left behind
    edit[200, 1000] = CLEAR
    save_label(root, "P01day03", edit, rgb, path, 28, 133.5)
    assert (root / "list_ls.txt").read_text() == "P01day03      28      133.500\n"
    assert read_mask(paths.mask)[200, 1000] == 0
    assert sorted(p.name for p in root.rglob(".*")) == []


@pytest.mark.parametrize("failing", [0, 1, 2])
def test_a_failed_write_changes_nothing(tmp_path, saved_map, monkeypatch, failing):
    path, rgb = saved_map
    root = tmp_path / "labels"
    paths = save_label(root, "P01day03", base_edit(rgb), rgb, path, 28, 133.4)
    before = {p: p.read_bytes() for p in (paths.map, paths.mask, paths.table)}
    from mars_cloudmask.infer.label import core

    calls = []
    real = core._write_bytes

    def flaky(target, data):
        calls.append(target)
        if len(calls) == failing + 1:
            raise OSError(f"{target}: disk full")
        real(target, data)

    monkeypatch.setattr(core, "_write_bytes", flaky)
    edit = base_edit(rgb)
    edit[edit == CLOUD] = CLEAR
    with pytest.raises(OSError, match="disk full"):
        save_label(root, "P01day03", edit, rgb, path, 28, 140.0)
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in root.rglob(".*")) == []


def test_the_training_kit_reads_the_saved_folder_as_it_is(tmp_path, saved_map):
    from mars_cloudmask.train_kit.data import load_sample, read_target, scan_labelled

    path, rgb = saved_map
    root = tmp_path / "labels"
    edit = base_edit(rgb)
    save_label(root, "P01day03", edit, rgb, path, 28, 133.4)
    samples = scan_labelled(root)
    assert [(s.name, s.ls, s.source) for s in samples] == [("P01day03", 133.4, "label")]
    target = read_target(samples[0])  # north-up, 1 cloud / 0 clear / -1 invalid
    expected = np.where(edit == NO_DATA, -1, edit).astype(np.int8)
    np.testing.assert_array_equal(target, expected)
    tiled = load_sample(samples[0])  # checks the orientation against the map
    assert tiled.valid_fraction() > 0
