"""Finding, naming and reading maps (``infer/maps.py``): the layouts and faults real archives bring."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mars_cloudmask.infer.maps import (
    LsEntry,
    MapError,
    MapJob,
    day_key,
    find_jobs,
    find_maps,
    ls_entry,
    map_name,
    read_ls_table,
    read_map,
)
from tests.synthetic import blocky_map, corrupt_jpegs, jpeg_bytes, write_map


def touch_map(path: Path) -> Path:
    """A file with a map's name (finding maps never decodes them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8 not decoded by find_jobs")
    return path


def ls_table(folder: Path, rows: dict[str, float], name: str | None = None, year: int = 28) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{folder.name}_ls.txt")
    path.write_text("".join(f"{k}   {year}   {v:.3f}\n" for k, v in rows.items()))
    return path


@pytest.fixture(scope="module")
def good_jpeg() -> bytes:
    """A map-sized (3600 x 1801) JPEG, fast to build."""
    return jpeg_bytes(blocky_map(seed=3))


# --------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    "file, name, key",
    [
        ("P01_day01_zequat.jpg", "P01_day01", "P01_day01"),
        ("P01_day01_zequat_v2.jpg", "P01_day01_zequat_v2", "P01_day01"),
        ("P01_day01_zequat (1).jpg", "P01_day01_zequat (1)", "P01_day01"),
        ("P01_day10_zequat.jpg", "P01_day10", "P01_day10"),
        ("P01_day101_zequat.jpg", "P01_day101", "P01_day101"),
        ("P01day16.jpeg", "P01day16", "P01day16"),
        ("P01_day02.JPG", "P01_day02", "P01_day02"),
        ("mosaic.jpg", "mosaic", "mosaic"),
    ],
)
def test_a_map_is_named_by_its_whole_stem_and_looks_up_its_day(file, name, key):
    assert map_name(file) == name
    assert day_key(name) == key


def test_day10_and_day101_and_a_v2_get_outputs_of_their_own_and_the_v2_gets_day01s_ls(tmp_path):
    sub = tmp_path / "P" / "P01"
    ls_table(sub, {"P01_day01": 132.5, "P01_day10": 136.1, "P01_day101": 170.0})
    for f in ("P01_day01_zequat.jpg", "P01_day01_zequat_v2.jpg", "P01_day10_zequat.jpg", "P01_day101_zequat.jpg"):
        touch_map(sub / f)
    jobs, errors = find_jobs([tmp_path / "P"])
    assert errors == []
    outputs = [str(j.relative_output()) for j in jobs]
    assert outputs == [
        "P/P01/cloudmasks/cloudmask_P01_day01.ncdf",
        "P/P01/cloudmasks/cloudmask_P01_day01_zequat_v2.ncdf",
        "P/P01/cloudmasks/cloudmask_P01_day10.ncdf",
        "P/P01/cloudmasks/cloudmask_P01_day101.ncdf",
    ]
    assert [ls_entry(j).ls for j in jobs] == pytest.approx([132.5, 132.5, 136.1, 170.0])
    assert jobs[0].relative_output(".png") == Path("P/P01/cloudmasks/cloudmask_P01_day01.png")


def test_two_files_that_would_write_one_output_are_both_refused_with_one_line_each(tmp_path):
    sub = tmp_path / "P" / "P01"
    a, b = touch_map(sub / "P01_day03.jpg"), touch_map(sub / "P01_day03.JPG")
    c = touch_map(sub / "P01_day04_zequat.jpg")
    d = touch_map(sub / "P01_day04.jpeg")
    keep = touch_map(sub / "P01_day05_zequat.jpg")
    jobs, errors = find_jobs([tmp_path])
    assert [j.path for j in jobs] == [keep]
    assert len(errors) == 4 and all("\n" not in e for e in errors)
    for one, other in ((a, b), (b, a), (c, d), (d, c)):
        line = next(e for e in errors if e.startswith(f"{one}:"))
        assert str(other) in line and "same output" in line
    with pytest.raises(MapError, match="same output"):
        find_maps(tmp_path)


def test_one_map_through_two_different_roots_is_refused_but_the_same_path_twice_is_one_job(tmp_path):
    first = touch_map(tmp_path / "a" / "P" / "P01" / "P01_day01_zequat.jpg")
    second = touch_map(tmp_path / "b" / "P" / "P01" / "P01_day01_zequat.jpg")
    jobs, errors = find_jobs([tmp_path / "a", tmp_path / "a" / "P", first])
    assert [j.path for j in jobs] == [first] and errors == []
    jobs, errors = find_jobs([tmp_path / "a", tmp_path / "b"])
    assert jobs == [] and len(errors) == 2
    assert sorted(e.split(":")[0] for e in errors) == sorted([str(first), str(second)])
    assert all(str(first) in e and str(second) in e for e in errors)


# --------------------------------------------------------------------------- layouts
def test_the_dataverse_layout_with_its_ignored_folders_and_files(tmp_path):
    sub = tmp_path / "P" / "P01"
    ls = ls_table(sub, {"P01_day01": 132.5})
    job = touch_map(sub / "P01_day01_zequat.jpg")
    (sub / "readme.txt").write_text("not a map")
    for ignored in ("list", "cloudmasks", ".hidden", "mdgms"):  # mdgms beside maps: a copy
        touch_map(sub / ignored / "P01_day02_zequat.jpg")
    touch_map(sub / ".P01_day03_zequat.jpg")
    jobs, errors = find_jobs([tmp_path])
    assert errors == [] and len(jobs) == 1
    assert jobs[0] == MapJob(job, "P01_day01", "P", "P01", ls, "P01_day01")
    assert jobs[0].path.is_absolute()


def test_the_copies_cm_infer_writes_into_an_out_inside_the_tree_are_not_read_back(tmp_path):
    original = touch_map(tmp_path / "P" / "P01" / "P01_day01_zequat.jpg")
    out_sub = tmp_path / "masks" / "P" / "P01"  # cm-infer P --out masks --copy-maps, OUT under the root
    touch_map(out_sub / "mdgms" / "P01_day01_zequat.jpg")
    (out_sub / "cloudmasks").mkdir()
    (out_sub / "cloudmasks" / "cloudmask_P01_day01.ncdf").write_bytes(b"")
    jobs, errors = find_jobs([tmp_path])
    assert errors == [] and [j.path for j in jobs] == [original]


@pytest.mark.parametrize("root", ["labels/P01", "labels/P01/mdgms", "labels/P01/mdgms/P01day16.jpeg", "labels"])
def test_the_jpeg_copy_layout_takes_the_folder_above_mdgms_as_subphase(tmp_path, root):
    """... and the subphase's letters as its phase: labels/P01/mdgms/ is phase P, not 'labels'."""
    p01 = tmp_path / "labels" / "P01"
    ls = ls_table(p01, {"P01day15": 138.0, "P01day16": 138.4}, name="list_ls.txt")
    touch_map(p01 / "mdgms" / "P01day16.jpeg")
    (p01 / "cloudmask").mkdir()
    jobs, errors = find_jobs([tmp_path / root])
    assert errors == [] and len(jobs) == 1
    job = jobs[0]
    assert (job.name, job.ls_name, job.phase, job.subphase, job.ls_file) == (
        "P01day16",
        "P01day16",
        "P",
        "P01",
        ls,
    )
    # a label archive's maps go where the Dataverse maps of P01 go (issue 35: not OUT/labels/P01)
    assert job.relative_output() == Path("P/P01/cloudmasks/cloudmask_P01day16.ncdf")
    assert ls_entry(job).ls == pytest.approx(138.4)


def test_missing_roots_and_a_single_file_that_is_not_a_jpeg_are_one_line_each(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    good = touch_map(tmp_path / "P" / "P01" / "P01_day01_zequat.jpg")
    jobs, errors = find_jobs([tmp_path / "nothing", tmp_path / "notes.txt", good])
    assert [j.path for j in jobs] == [good]
    assert errors == [
        f"{tmp_path / 'nothing'}: no such file or folder",
        f"{tmp_path / 'notes.txt'}: not a JPEG map (expected .jpg or .jpeg)",
    ]


# --------------------------------------------------------------------------- symbolic links
def test_a_symlinked_map_is_named_and_placed_by_the_link_and_takes_the_links_ls(tmp_path):
    p03 = tmp_path / "P" / "P03"
    ls_table(p03, {"P03_day01": 140.0})
    target = touch_map(p03 / "P03_day01_zequat.jpg")
    p77 = tmp_path / "P" / "P77"
    p77_ls = ls_table(p77, {"P77_day01": 300.0})
    link = p77 / "P77_day01_zequat.jpg"
    link.symlink_to(target)
    jobs, errors = find_jobs([p77])
    assert errors == [] and len(jobs) == 1
    job = jobs[0]
    assert job.path == link and job.ls_file == p77_ls
    assert job.relative_output() == Path("P/P77/cloudmasks/cloudmask_P77_day01.ncdf")
    assert ls_entry(job).ls == pytest.approx(300.0)
    jobs, errors = find_jobs([link])  # given as a single file: the same
    assert errors == [] and jobs == [job]


def test_a_symlinked_folder_is_followed_and_keeps_the_links_names(tmp_path):
    elsewhere = tmp_path / "disk2" / "P05"
    ls_table(elsewhere, {"P05_day01": 150.0})
    touch_map(elsewhere / "P05_day01_zequat.jpg")
    tree = tmp_path / "maps" / "P"
    touch_map(tree / "P01" / "P01_day01_zequat.jpg")
    (tree / "P05").symlink_to(elsewhere, target_is_directory=True)
    jobs, errors = find_jobs([tmp_path / "maps"])
    assert errors == []
    assert [(j.subphase, j.path) for j in jobs] == [
        ("P01", tree / "P01" / "P01_day01_zequat.jpg"),
        ("P05", tree / "P05" / "P05_day01_zequat.jpg"),
    ]
    assert jobs[1].ls_file == tree / "P05" / "P05_ls.txt"


def test_a_symlink_loop_ends_and_every_map_is_found_once(tmp_path):
    elsewhere = tmp_path / "disk2" / "P05"
    touch_map(elsewhere / "P05_day01_zequat.jpg")
    (elsewhere / "again").symlink_to(elsewhere.parent, target_is_directory=True)  # loop through the link
    tree = tmp_path / "maps" / "P"
    touch_map(tree / "P01" / "P01_day01_zequat.jpg")
    (tree / "P01" / "up").symlink_to(tree, target_is_directory=True)  # loop inside the tree
    (tree / "P05").symlink_to(elsewhere, target_is_directory=True)
    (tree / "P01" / "self.jpg").symlink_to(tree / "P01" / "self.jpg")  # a link to itself
    jobs, errors = find_jobs([tmp_path / "maps"])
    assert [j.name for j in jobs] == ["P01_day01", "P05_day01"]
    assert errors == [f"{tree / 'P01' / 'self.jpg'}: broken symbolic link"]


# --------------------------------------------------------------------------- Ls tables
def test_a_bom_or_latin1_bytes_in_the_ls_table_still_find_the_row(tmp_path):
    sub = tmp_path / "P" / "P01"
    touch_map(sub / "P01_day01_zequat.jpg")
    table = sub / "P01_ls.txt"
    table.write_bytes(b"\xef\xbb\xbfP01_day01   28   132.500\r\nP01_day02   28   132.900\r\n")
    job = find_jobs([sub])[0][0]
    assert ls_entry(job).ls == pytest.approx(132.5)
    table.write_bytes(b"P01_day01\xa028\xa0132.500\nP01_day02   28   132.900   r\xe9vis\xe9\n")  # Latin-1
    assert ls_entry(job).ls == pytest.approx(132.5)
    assert read_ls_table(table)["P01_day02"].ls == pytest.approx(132.9)


@pytest.mark.parametrize(
    "row, reason",
    [
        ("P01_day02   28   nan", "not a finite number"),
        ("P01_day02   28   inf", "not a finite number"),
        ("P01_day02   nan   133.0", "Mars year 'nan' is not an integer"),
        ("P01_day02   28   abc", "not a number"),
        ("P01_day02   28", "expected 'NAME MARS_YEAR LS'"),
        ("P01_day02   28   400", "outside 0-360"),
        ("P01_day02   99999999999999999999   133.0", "Mars year 99999999999999999999 is outside -9999..9999"),
    ],
)
def test_an_unusable_ls_row_fails_only_its_own_map_naming_file_and_line(tmp_path, row, reason):
    sub = tmp_path / "P" / "P01"
    for d in (1, 2):
        touch_map(sub / f"P01_day{d:02d}_zequat.jpg")
    table = sub / "P01_ls.txt"
    table.write_text(f"P01_day01   28   132.5\n{row}\nP01_day03   28   133.4\n")
    day1, day2 = find_jobs([sub])[0]
    assert ls_entry(day1).ls == pytest.approx(132.5)
    with pytest.raises(MapError) as err:
        ls_entry(day2)
    message = str(err.value)
    assert "\n" not in message and reason in message
    assert message.startswith(f"{day2.path}:") and f"{table}:2:" in message
    assert set(read_ls_table(table)) == {"P01_day01", "P01_day03"}


def test_a_row_spelled_differently_for_the_same_day_is_found(tmp_path):
    sub = tmp_path / "P" / "P01"
    ls_table(sub, {"P01day01": 132.5, "P01day10": 136.1}, name="list_ls.txt")  # the labels' spelling
    job = find_jobs([touch_map(sub / "P01_day01_zequat.jpg")])[0][0]
    assert job.ls_name == "P01_day01" and ls_entry(job) == LsEntry("P01day01", 28, 132.5)


def test_a_utf16_table_says_it_is_not_utf8_naming_the_table(tmp_path):
    """Issue 32 item 15: a UTF-16 table said only "no row" (it decoded as Latin-1 with NULs)."""
    sub = tmp_path / "P" / "P01"
    table = touch_map(sub / "P01_day01_zequat.jpg").parent / "P01_ls.txt"
    table.write_bytes("P01_day01   28   132.500\n".encode("utf-16"))
    job = find_jobs([sub])[0][0]
    with pytest.raises(MapError) as err:
        ls_entry(job)
    assert str(err.value) == (
        f"{job.path}: {table}: Ls table is not UTF-8 / ASCII text (it looks like UTF-16/UTF-32 text: "
        "save it as UTF-8 or ASCII)"
    )


def test_no_row_names_the_rows_that_nearly_match(tmp_path):
    """Issue 32 item 15: rows P01_day1 beside P01_day001 (both day 1) said only "no row"."""
    sub = tmp_path / "P" / "P01"
    ls_table(sub, {"P01_day1": 132.5, "P01_day001": 132.6, "P01_day02": 133.0})
    job = find_jobs([touch_map(sub / "P01_day01_zequat.jpg")])[0][0]
    with pytest.raises(MapError) as err:
        ls_entry(job)
    message = str(err.value)
    assert message.startswith(f"{job.path}: no row for P01_day01 in {sub / 'P01_ls.txt'}; ")
    assert "P01_day001, P01_day1" in message and "keep one" in message
    ls_table(sub, {"P01_dy01": 132.5, "P02_day12": 133.0})
    with pytest.raises(MapError, match="similar day: P01_dy01$"):
        ls_entry(job)


def test_a_job_survives_pickling_for_other_processes(tmp_path):
    job = find_jobs([touch_map(tmp_path / "P" / "P01" / "P01_day01_zequat_v2.jpg")])[0][0]
    again = pickle.loads(pickle.dumps(job))
    assert again == job and again.ls_name == "P01_day01"


def test_a_missing_table_or_row_names_the_map(tmp_path):
    sub = tmp_path / "P" / "P01"
    job = find_jobs([touch_map(sub / "P01_day07_zequat.jpg")])[0][0]
    with pytest.raises(MapError, match="no _ls.txt"):
        ls_entry(job)
    ls_table(sub, {"P01_day01": 132.5})
    job = find_jobs([sub])[0][0]
    with pytest.raises(MapError, match=f"no row for P01_day07 in {sub / 'P01_ls.txt'}"):
        ls_entry(job)


# --------------------------------------------------------------------------- decoding
def test_a_good_map_decodes_to_the_same_pixels_as_pillow(tmp_path, good_jpeg):
    path = tmp_path / "P01_day01_zequat.jpg"
    path.write_bytes(good_jpeg)
    rgb = read_map(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (1801, 3600, 3)
    with Image.open(path) as im:
        assert np.array_equal(rgb, np.asarray(im.convert("RGB")))


@pytest.mark.parametrize("kind", ["half_then_eoi", "zeros_mid_stream", "patched_header"])
def test_a_corrupt_jpeg_that_a_lenient_decoder_accepts_is_refused(tmp_path, good_jpeg, kind):
    path = tmp_path / f"{kind}.jpg"
    path.write_bytes(corrupt_jpegs(good_jpeg)[kind])
    with pytest.raises(MapError) as err:
        read_map(path)
    message = str(err.value)
    assert message.startswith(f"{path}: corrupt or truncated JPEG (") and "\n" not in message
    assert "JPEG" in message.split("(", 1)[1]  # libjpeg's own words


def test_every_other_bad_file_is_one_clear_line(tmp_path, good_jpeg):
    cases = {
        "gone.jpg": (None, "no such file"),
        "empty.jpg": (b"", "empty file"),
        "noise.jpg": (os.urandom(5000), "not a readable image"),
        "cut.jpg": (good_jpeg[: len(good_jpeg) // 2], "truncated"),
    }
    for name, (data, _) in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
    write_map(tmp_path / "small.jpg", blocky_map()[:180, :360])
    cases["small.jpg"] = (None, "image is 360 x 180, expected 3600 x 1801")
    Image.fromarray(blocky_map()[..., 0], "L").save(tmp_path / "grey.jpg")
    cases["grey.jpg"] = (None, "image mode is L")
    Image.fromarray(blocky_map()).save(tmp_path / "png.jpg", format="PNG")
    cases["png.jpg"] = (None, "not a readable image")
    for name, (_, reason) in cases.items():
        with pytest.raises(MapError) as err:
            read_map(tmp_path / name)
        assert str(err.value).startswith(f"{tmp_path / name}: ") and reason in str(err.value), str(err.value)
        assert "\n" not in str(err.value)


def test_real_maps_decode_strictly_to_pillows_pixels(data_dir):
    maps = sorted((data_dir / "mdgm").rglob("*.jpg"))
    for path in maps[:: max(len(maps) // 3, 1)][:3]:
        rgb = read_map(path)
        with Image.open(path) as im:
            assert np.array_equal(rgb, np.asarray(im)), path


def test_real_labels_folder_is_found_in_the_copy_layout(data_dir):
    jobs, errors = find_jobs([data_dir / "labels" / "P01"])
    assert errors == [] and len(jobs) == 20
    assert {(j.phase, j.subphase) for j in jobs} == {("P", "P01")}
    assert jobs[15].name == "P01day16" and jobs[15].ls_file == data_dir / "labels" / "P01" / "list_ls.txt"
    assert ls_entry(jobs[15]).ls == pytest.approx(read_ls_table(jobs[15].ls_file)["P01day16"].ls)


def test_every_real_map_is_found_once_with_its_days_ls(data_dir):
    jpgs = [p for p in (data_dir / "mdgm").rglob("*.jpg") if "list" not in p.parts]
    jobs, errors = find_jobs([data_dir / "mdgm"])
    assert errors == [] and sorted(j.path for j in jobs) == sorted(jpgs)
    for job in jobs:
        entry = ls_entry(job)
        assert entry.name == job.ls_name == job.name and 0 <= entry.ls <= 360
        assert job.relative_output() == Path("P", job.subphase, "cloudmasks", f"cloudmask_{job.name}.ncdf")


# --------------------------------------------------------------------------- unbounded input (issue 32 item 13)
def _finishes(fn, seconds: float = 10.0):
    """``fn()``'s exception (or None), asserting it returns within ``seconds`` (a FIFO blocks)."""
    import threading

    box: list = []

    def target():
        try:
            fn()
            box.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert box, f"still running after {seconds} s"
    return box[0]


def test_a_fifo_given_as_a_map_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "P" / "P01" / "P01_day01_zequat.jpg"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    jobs, errors = find_jobs([fifo])
    assert [j.path for j in jobs] == [fifo] and errors == []
    exc = _finishes(lambda: read_map(fifo))
    assert isinstance(exc, MapError) and str(exc) == f"{fifo}: map is a FIFO, not a regular file"


def test_a_link_to_dev_zero_is_refused_without_reading_it(tmp_path):
    link = tmp_path / "zero.jpg"
    link.symlink_to("/dev/zero")
    with pytest.raises(MapError, match=r"zero\.jpg: map is a character device, not a regular file$"):
        read_map(link)


def test_a_huge_map_or_table_is_refused_by_its_size_naming_the_file(tmp_path):
    from mars_cloudmask.infer.maps import MAX_MAP_BYTES, MAX_TABLE_BYTES

    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:  # sparse: no disk or memory spent
        f.truncate(MAX_MAP_BYTES + 1)
    with pytest.raises(MapError, match=rf"^{big}: map is {MAX_MAP_BYTES + 1} bytes, larger than"):
        read_map(big)
    table = tmp_path / "P01_ls.txt"
    with open(table, "wb") as f:
        f.write(b"P01_day01   28   132.5\n")
        f.truncate(1 << 30)  # the 1 GiB table
    with pytest.raises(MapError, match=rf"^{table}: Ls table is {1 << 30} bytes, larger than the {MAX_TABLE_BYTES}"):
        read_ls_table(table)


def test_a_table_is_parsed_once_until_it_changes(tmp_path, monkeypatch):
    from mars_cloudmask.infer import maps

    sub = tmp_path / "P" / "P01"
    table = ls_table(sub, {f"P01_day{d:02d}": 130.0 + d for d in range(1, 4)})
    for d in range(1, 4):
        touch_map(sub / f"P01_day{d:02d}_zequat.jpg")
    calls = []
    real = maps.parse_ls_table
    monkeypatch.setattr(maps, "parse_ls_table", lambda raw, path: calls.append(path) or real(raw, path))
    jobs = find_jobs([sub])[0]
    assert [ls_entry(j).ls for j in jobs] == [131.0, 132.0, 133.0] and calls == [table]
    table.write_text("P01_day01   28   140.000\n")
    os.utime(table, ns=(1, 1))  # a new modification time (and size): parsed again
    assert ls_entry(jobs[0]).ls == 140.0 and len(calls) == 2


def test_a_tree_1100_folders_deep_is_searched_without_recursion_error(tmp_path):
    folders = [tmp_path / "P"]
    for _ in range(1100):  # one mkdir at a time: pathlib's parents=True recurses too
        folders[-1].mkdir()
        folders.append(folders[-1] / "d")
    bottom = folders[-2]
    touch_map(bottom / "P01_day01_zequat.jpg")
    try:
        jobs, errors = find_jobs([tmp_path])
        assert errors == [] and [(j.name, j.path.parent) for j in jobs] == [("P01_day01", bottom)]
    finally:  # removed bottom-up here: a recursive rmtree of the tmp folder could fail
        (bottom / "P01_day01_zequat.jpg").unlink()
        for folder in reversed(folders[:-1]):
            folder.rmdir()


def test_a_fifo_or_device_inside_a_tree_is_one_line_and_the_rest_is_found(tmp_path):
    sub = tmp_path / "P" / "P01"
    touch_map(sub / "P01_day01_zequat.jpg")
    os.mkfifo(sub / "P01_day02_zequat.jpg")
    (sub / "P01_day03_zequat.jpg").symlink_to("/dev/zero")
    jobs, errors = find_jobs([tmp_path])
    assert [j.name for j in jobs] == ["P01_day01"]
    assert errors == [
        f"{sub / 'P01_day02_zequat.jpg'}: a FIFO, not a regular file: not read",
        f"{sub / 'P01_day03_zequat.jpg'}: a character device, not a regular file: not read",
    ]


def test_the_phase_of_the_copy_layout_follows_the_subphase_name():
    from mars_cloudmask.infer.maps import phase_of

    assert phase_of(Path("/d/labels/P01"), copy_layout=True) == "P"
    assert phase_of(Path("/d/P/P01"), copy_layout=True) == "P"  # the original's own copy layout
    assert phase_of(Path("/d/labels/B07"), copy_layout=True) == "B"
    assert phase_of(Path("/d/labels/mine"), copy_layout=True) == "labels"  # not a subphase name: as given
    assert phase_of(Path("/d/data/P01"), copy_layout=False) == "data"  # Dataverse-like folders: as given
    assert phase_of(Path("/P01"), copy_layout=False) == "maps"
