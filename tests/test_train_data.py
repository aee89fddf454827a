"""train_kit.data: the labelled layout, its checks, and tiles cut with infer.geometry.

Also home of :func:`write_labelled`, the synthetic labelled folder the other train tests use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mars_cloudmask.infer.geometry import INVALID, MARGIN, build_canvas, plan_tiles, tile_input
from mars_cloudmask.infer.netcdf import write_mask
from mars_cloudmask.train_kit.data import (
    DataError,
    Split,
    augment,
    grid_tiles,
    load_sample,
    random_tile,
    scan_archive,
    scan_labelled,
    split_by_day,
    split_record,
    split_samples,
    target_bounds,
)
from tests.synthetic import make_map

BOX = (700, 860, 1000, 1400)  # rows, cols of the labelled area in the synthetic days
TILE_OUT = 52  # small tiles (4 mod 16) keep the tests fast; input = 52 + 184 = 236


def synthetic_day(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic map with bluish clouds painted in :data:`BOX`, and its label (north-up).

    Label: -999 outside the box and on black pixels, 200 (cloudy DN) where blue >= 200, else 0.
    """
    import io

    from PIL import Image

    rgb = make_map(seed=seed, stripes=1, clouds=0)
    rng = np.random.default_rng(seed)
    y0, y1, x0, x1 = BOX
    yy, xx = np.mgrid[y0:y1, x0:x1]
    for _ in range(3):
        cy, cx, r = rng.uniform(y0, y1), rng.uniform(x0, x1), rng.uniform(15, 40)
        blob = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        rgb[y0:y1, x0:x1][blob] = (210, 215, 240)
    # what a JPEG round trip gives back is what the label must describe
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95)
    rgb = np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    label = np.full(rgb.shape[:2], INVALID, dtype=np.float32)
    box = rgb[y0:y1, x0:x1]
    lab = np.where(box[..., 2] >= 200, 200.0, 0.0).astype(np.float32)
    lab[box.min(axis=2) < 30] = INVALID
    label[y0:y1, x0:x1] = lab
    return rgb, label


def write_labelled(folder: Path, days=(1, 2, 3), list_days=None, prefix: str = "P01") -> Path:
    """A labelled folder (``list_ls.txt``, ``mdgms/``, ``cloudmask/``) of synthetic days named
    ``<prefix>dayNN`` (as ``labels/P01``: ``P01day07``)."""
    from PIL import Image

    (folder / "mdgms").mkdir(parents=True, exist_ok=True)
    (folder / "cloudmask").mkdir(parents=True, exist_ok=True)
    rows = []
    for d in days:
        name = f"{prefix}day{d:02d}"
        rgb, label = synthetic_day(seed=d)
        Image.fromarray(rgb).save(folder / "mdgms" / f"{name}.jpeg", quality=95)
        write_mask(folder / "cloudmask" / f"cloudmask_{name}.ncdf", label, complevel=1)
    for d in list_days if list_days is not None else days:
        rows.append(f"{prefix}day{d:02d}      28      {132.5 + 0.4 * d:.3f}")
    (folder / "list_ls.txt").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    return write_labelled(tmp_path_factory.mktemp("labels") / "P01", days=(1, 2))


def test_scan_and_split_by_day(labelled):
    samples = scan_labelled(labelled)
    assert [s.name for s in samples] == ["P01day01", "P01day02"]
    assert samples[0].ls == pytest.approx(132.9)
    train, val = split_by_day(samples, [2])
    assert [s.name for s in train] == ["P01day01"] and [s.name for s in val] == ["P01day02"]


def test_target_box_and_tiles_use_the_shared_geometry(labelled):
    tm = load_sample(scan_labelled(labelled)[0], tile_out=TILE_OUT)
    assert target_bounds(tm.target).as_tuple() == (0, BOX[3] - BOX[2], 0, BOX[1] - BOX[0])  # box at the canvas origin
    # the image canvas is exactly infer.geometry's canvas for the label's box
    from mars_cloudmask.infer.maps import read_map

    rgb = read_map(tm.sample.image)
    from mars_cloudmask.infer.geometry import Bounds

    plan = plan_tiles(Bounds(BOX[2], BOX[3], BOX[0], BOX[1]), "seamless", TILE_OUT)
    np.testing.assert_array_equal(tm.image, build_canvas(rgb, plan))
    img, t = tm.tile(48, 96)
    np.testing.assert_array_equal(img, tile_input(tm.image, plan, 48, 96))
    # target pixel (0, 0) of that tile is map pixel (ymin + 48, xmin + 96), the tile's centre area
    assert img.shape == (TILE_OUT + 2 * MARGIN,) * 2 + (3,) and t.shape == (TILE_OUT, TILE_OUT)
    assert set(np.unique(t)) <= {INVALID, 0.0, 1.0}
    cloudy = t == 1
    centre = img[MARGIN : MARGIN + TILE_OUT, MARGIN : MARGIN + TILE_OUT]
    if cloudy.any():
        assert centre[cloudy][:, 2].min() >= 200  # labels sit on the blue pixels they describe


def test_grid_tiles_score_each_box_pixel_once(labelled):
    tm = load_sample(scan_labelled(labelled)[0], tile_out=TILE_OUT)
    images, targets = grid_tiles([tm])
    h, w = BOX[1] - BOX[0], BOX[3] - BOX[2]
    valid_in_box = int((tm.target[:h, :w] >= 0).sum())
    assert int((targets >= 0).sum()) == valid_in_box
    assert images.dtype == np.uint8 and targets.shape[-1] == 1


def test_flips_move_image_and_target_together():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (236, 236, 3), dtype=np.uint8)
    t = np.zeros((52, 52), np.float32)
    t[0, 0] = 1
    for flip, where in ((0, (0, 0)), (1, (51, 0)), (2, (0, 51)), (3, (51, 51))):
        a, b = augment(img, t, flip)
        assert b[where] == 1
        corner = (235 if flip & 1 else 0, 235 if flip & 2 else 0)
        assert a[corner].tolist() == img[0, 0].tolist()


def test_random_tiles_hold_valid_pixels(labelled):
    tm = load_sample(scan_labelled(labelled)[1], tile_out=TILE_OUT)
    rng = np.random.default_rng(1)
    for _ in range(5):
        _, t = random_tile(tm, rng)
        assert (t >= 0).mean() >= 0.05


# --------------------------------------------------------------------------- bad input
def test_empty_folder(tmp_path):
    (tmp_path / "P01").mkdir()
    with pytest.raises(DataError, match="empty data folder"):
        scan_labelled(tmp_path / "P01")


def test_map_without_label(tmp_path):
    folder = write_labelled(tmp_path / "P01", days=(1, 2))
    (folder / "cloudmask" / "cloudmask_P01day02.ncdf").unlink()
    with pytest.raises(DataError, match=r"P01day02\.jpeg: map without a label"):
        scan_labelled(folder)


def test_label_without_map(tmp_path):
    folder = write_labelled(tmp_path / "P01", days=(1, 2))
    (folder / "mdgms" / "P01day01.jpeg").unlink()
    with pytest.raises(DataError, match=r"cloudmask_P01day01\.ncdf: label without a map"):
        scan_labelled(folder)


def test_day_missing_from_list_ls(tmp_path):
    folder = write_labelled(tmp_path / "P01", days=(1, 2), list_days=(1,))
    with pytest.raises(DataError, match=r"P01day02\.jpeg: day P01day02 missing from .*list_ls\.txt"):
        scan_labelled(folder)


def test_label_upside_down(tmp_path):
    from PIL import Image

    folder = write_labelled(tmp_path / "P01", days=(1,))
    rgb, label = synthetic_day(seed=1)
    rgb[1000:] = 0  # no data south of row 1000: the mirrored box (rows 941..1100) is mostly black
    Image.fromarray(rgb).save(folder / "mdgms" / "P01day01.jpeg", quality=95)
    write_mask(folder / "cloudmask" / "cloudmask_P01day01.ncdf", label[::-1].copy(), complevel=1)
    with pytest.raises(DataError, match=r"cloudmask_P01day01\.ncdf: mask looks upside down"):
        load_sample(scan_labelled(folder)[0], tile_out=TILE_OUT)


def test_label_of_wrong_size(tmp_path):
    import netCDF4

    folder = write_labelled(tmp_path / "P01", days=(1,))
    path = folder / "cloudmask" / "cloudmask_P01day01.ncdf"
    path.unlink()
    with netCDF4.Dataset(path, "w", format="NETCDF4_CLASSIC") as ds:
        ds.createDimension("x", 1800)
        ds.createDimension("y", 900)
        ds.createVariable("cloudmask", "f4", ("y", "x"))[:, :] = np.zeros((900, 1800), np.float32)
    with pytest.raises(DataError, match=r"cloudmask_P01day01\.ncdf: mask is 1800 x 900"):
        load_sample(scan_labelled(folder)[0], tile_out=TILE_OUT)


# --------------------------------------------------------------------------- extra channels
def test_brightness_scales_rgb_and_leaves_extra_channels_alone():
    img = np.full((4, 4, 5), 100, dtype=np.uint8)
    img[..., 3:] = 128
    a, _ = augment(img, np.zeros((2, 2), np.float32), 0, brightness=1.1)
    assert a.shape == (4, 4, 5)
    assert np.all(a[..., :3] == 110) and np.all(a[..., 3:] == 128)


def test_inputs_add_channels_before_tiling(labelled):
    """A sample loaded with an input function is tiled with all its channels, RGB first."""
    from mars_cloudmask.infer.channels import latitude_channel

    sample = scan_labelled(labelled)[0]
    plain = load_sample(sample, tile_out=TILE_OUT)
    with_lat = load_sample(
        sample,
        tile_out=TILE_OUT,
        inputs=lambda s, rgb: np.concatenate([rgb, latitude_channel(rgb.shape[:2])[..., None]], -1),
    )
    assert with_lat.image.shape == plain.image.shape[:2] + (4,)
    np.testing.assert_array_equal(with_lat.image[..., :3], plain.image)
    img, _ = with_lat.tile(0, 0)
    assert img.shape == (TILE_OUT + 2 * MARGIN, TILE_OUT + 2 * MARGIN, 4)
    # the tile's first row is map row BOX[0] - MARGIN: its latitude channel says so
    expected = latitude_channel((1801, 1))[BOX[0] - MARGIN, 0]
    assert img[0, 0, 3] == expected


# --------------------------------------------------------------------------- label archives
def stub_subphase(folder: Path, prefix: str, days) -> Path:
    """A subphase folder in the ``labels/P01`` layout whose files are empty: enough for scanning."""
    (folder / "mdgms").mkdir(parents=True)
    (folder / "cloudmask").mkdir()
    for d in days:
        (folder / "mdgms" / f"{prefix}day{d:02d}.jpeg").touch()
        (folder / "cloudmask" / f"cloudmask_{prefix}day{d:02d}.ncdf").touch()
    (folder / "list_ls.txt").write_text("".join(f"{prefix}day{d:02d} 29 {10 + d:.3f}\n" for d in days))
    return folder


@pytest.fixture
def archive(tmp_path) -> Path:
    """A label archive root of three subphases, P02 (days 1-4), P03 (1-3) and B01 (1-2)."""
    root = tmp_path / "labels"
    stub_subphase(root / "P02", "P02", range(1, 5))
    stub_subphase(root / "P03", "P03", range(1, 4))
    stub_subphase(root / "B01", "B01", range(1, 3))
    (root / "notes").mkdir()  # not a subphase folder: skipped
    (root / "README.txt").write_text("the archive\n")
    return root


def _names(samples) -> list[str]:
    return [s.name for s in samples]


def test_scan_archive_reads_every_subphase_folder_of_a_root(archive):
    samples = scan_archive([archive])
    assert _names(samples) == [f"B01day0{d}" for d in (1, 2)] + [f"P02day0{d}" for d in (1, 2, 3, 4)] + [
        f"P03day0{d}" for d in (1, 2, 3)
    ]
    assert {s.subphase for s in samples} == {"P02", "P03", "B01"}
    assert all(s.subphase == s.name[:3] for s in samples)
    assert samples[0].ls == pytest.approx(11.0)


def test_a_subphase_folder_as_data_is_scanned_as_before(archive, labelled):
    assert scan_archive([labelled]) == scan_labelled(labelled)
    assert {s.subphase for s in scan_labelled(labelled)} == {"P01"}
    assert _names(scan_archive([archive / "P03"])) == ["P03day01", "P03day02", "P03day03"]


def test_several_roots_and_folders_are_scanned_in_order(archive, tmp_path):
    other = stub_subphase(tmp_path / "more" / "P04", "P04", (5,)).parent
    samples = scan_archive([archive / "P03", other])
    assert [(s.subphase, s.name) for s in samples] == [
        ("P03", "P03day01"), ("P03", "P03day02"), ("P03", "P03day03"), ("P04", "P04day05")
    ]


def test_an_archive_root_without_a_subphase_folder_is_refused(tmp_path):
    (tmp_path / "labels" / "notes").mkdir(parents=True)
    with pytest.raises(DataError, match=r"labels: no subphase folder in it .*and it is not one itself"):
        scan_archive([tmp_path / "labels"])
    with pytest.raises(DataError, match=r"nowhere: no such data folder"):
        scan_archive([tmp_path / "nowhere"])


def test_one_subphase_in_two_roots_is_refused(archive, tmp_path):
    stub_subphase(tmp_path / "more" / "P03", "P03", (7,))
    with pytest.raises(DataError, match=r"more/P03: subphase P03 is already in .*labels/P03"):
        scan_archive([archive, tmp_path / "more"])


def test_one_day_name_in_two_subphases_is_refused(tmp_path):
    stub_subphase(tmp_path / "a" / "PA", "P01", (1, 2))
    stub_subphase(tmp_path / "a" / "PB", "P01", (2, 3))
    with pytest.raises(DataError, match=r"PB/mdgms/P01day02\.jpeg: day P01day02 is also in subphase PA"):
        scan_archive([tmp_path / "a"])


def test_a_bad_subphase_folder_in_an_archive_is_named(archive):
    (archive / "P03" / "cloudmask" / "cloudmask_P03day02.ncdf").unlink()
    with pytest.raises(DataError, match=r"P03/mdgms/P03day02\.jpeg: map without a label"):
        scan_archive([archive])


def test_split_by_whole_subphase_and_by_day_within_the_others(archive):
    samples = scan_archive([archive])
    # test: all of P03, and days 4 of the others; val: all of B01, and day 1 of the others (P02)
    train, val, test = split_samples(samples, Split([1], [4], ["B01"], ["P03"]), str(archive))
    assert _names(train) == ["P02day02", "P02day03"]
    assert _names(val) == ["B01day01", "B01day02", "P02day01"]
    assert _names(test) == ["P02day04", "P03day01", "P03day02", "P03day03"]
    assert split_record(train, val, test) == {
        "B01": {"train": [], "val": [1, 2], "test": []},
        "P02": {"train": [2, 3], "val": [1], "test": [4]},
        "P03": {"train": [], "val": [], "test": [1, 2, 3]},
    }
    # leave one season out, no day split
    train, val, test = split_samples(samples, Split(val_subphases=["P02"]), str(archive))
    assert {s.subphase for s in train} == {"B01", "P03"} and {s.subphase for s in val} == {"P02"} and not test


def test_a_day_split_alone_applies_within_every_subphase(archive):
    train, val, test = split_samples(scan_archive([archive]), Split([2], [3]), "x")
    assert _names(val) == ["B01day02", "P02day02", "P03day02"]
    assert _names(test) == ["P02day03", "P03day03"]
    assert len(train) == 4


@pytest.mark.parametrize(
    "split, message",
    [
        (Split([1], val_subphases=["P09"]), r"--val-subphases P09: no such subphase in ARCH \(it has B01, P02, P03\)"),
        (Split([1], test_subphases=["P03", "Q1"]), r"--test-subphases Q1: no such subphase in ARCH"),
        (Split(val_subphases=["P02", "P03"], test_subphases=["P03"]), r"--val-subphases and --test-subphases both "
         r"name P03"),
        (Split(val_subphases=["B01", "P02"], test_subphases=["P03"]), r"no training day left in ARCH"),
        (Split([3], test_subphases=["P02", "P03"]), r"none of the validation days \[3\] is in ARCH outside"),
    ],
)
def test_impossible_splits_are_refused_in_one_line(archive, split, message):
    with pytest.raises(DataError, match=message) as err:
        split_samples(scan_archive([archive]), split, "ARCH")
    assert "\n" not in str(err.value)
