"""NetCDF mask files: the original's layout, CF-1.8 compliance, and the NumPy / xarray readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mars_cloudmask.infer.geometry import INVALID, MAP_HEIGHT, MAP_WIDTH
from mars_cloudmask.infer.netcdf import read_attrs, read_mask, read_mask_xarray, write_mask


def make_mask() -> np.ndarray:
    """North-up probabilities: invalid polar caps, 0.25 in the north half, 0.95 in the south half."""
    mask = np.full((MAP_HEIGHT, MAP_WIDTH), INVALID, dtype=np.float32)
    mask[200:900] = 0.25
    mask[900:1600] = 0.95
    mask[500, 100] = INVALID  # one invalid pixel inside
    return mask


def test_layout_is_the_originals_south_up_with_latitude_and_longitude(tmp_path):
    import netCDF4

    path = write_mask(tmp_path / "cloudmask_P01_day01.ncdf", make_mask(), {"ls": 132.5, "mars_year": 28}, threshold=0.5)
    with netCDF4.Dataset(path) as ds:
        assert ds.data_model == "NETCDF4_CLASSIC"
        assert dict(ds.dimensions.items()).keys() >= {"x", "y"}
        assert ds.dimensions["x"].size == MAP_WIDTH and ds.dimensions["y"].size == MAP_HEIGHT
        assert ds["cloudmask"].dimensions == ("y", "x")
        lat = ds["latitude"][:]
        assert lat[0] == pytest.approx(-90) and lat[-1] == pytest.approx(90)
        assert ds["longitude"][0] == pytest.approx(-180) and ds["longitude"][-1] == pytest.approx(179.9)
        raw = ds["cloudmask"]
        raw.set_auto_maskandscale(False)
        # row 0 of the file is latitude -90: the north-up row 1800 of the mask
        assert raw[0, 0] == INVALID
        assert raw[MAP_HEIGHT - 1 - 1000, 0] == pytest.approx(0.95)
        assert raw[MAP_HEIGHT - 1 - 500, 0] == pytest.approx(0.25)
        for key in ("title", "source", "history", "references", "institution", "Conventions"):
            assert ds.getncattr(key)


def test_read_mask_round_trip_north_up_and_thresholded(tmp_path):
    mask = make_mask()
    path = write_mask(tmp_path / "m.ncdf", mask, threshold=0.5)
    np.testing.assert_array_equal(read_mask(path), mask)
    binary = read_mask(path, threshold=0.912)
    assert set(np.unique(binary)) == {INVALID, 0.0, 1.0}
    assert binary[1000, 5] == 1.0 and binary[600, 5] == 0.0 and binary[500, 100] == INVALID


def test_caller_attributes_override_the_defaults(tmp_path):
    path = write_mask(tmp_path / "m.ncdf", make_mask(), {"title": "mine", "threshold": 0.9, "model": None})
    attrs = read_attrs(path)
    assert attrs["title"] == "mine" and attrs["threshold"] == pytest.approx(0.9)
    assert "model" not in attrs and "history" in attrs


def cf_high_priority_failures(path: Path) -> list[str]:
    """Messages of the failed high-priority checks of the IOOS compliance-checker CF-1.8 suite."""
    from compliance_checker.runner import CheckSuite

    suite = CheckSuite()
    suite.load_all_available_checkers()
    results, errors = suite.run_all(suite.load_dataset(str(path)), ["cf:1.8"], skip_checks=[])["cf:1.8"]
    assert not errors, errors
    failed = []
    for r in results:
        if r.weight < 3:  # BaseCheck.HIGH == 3
            continue
        score, out_of = r.value if isinstance(r.value, tuple) else (int(bool(r.value)), 1)
        if score < out_of:
            failed.append(f"{r.name}: {r.msgs}")
    return failed


@pytest.mark.parametrize("binary", [False, True])
def test_cf_checker_finds_no_high_priority_failure(tmp_path, binary):
    pytest.importorskip("compliance_checker")
    mask = make_mask()
    if binary:
        mask = np.where(mask == INVALID, INVALID, (mask >= 0.912).astype(np.float32)).astype(np.float32)
    path = write_mask(
        tmp_path / "cloudmask_P01_day01.ncdf", mask, {"ls": 132.5, "mars_year": 28}, binary=binary, threshold=0.5
    )
    # The checker's only complaint about the file as named is CF 2.1's ".nc" extension
    # recommendation: the original's layout (docs/spec.md §5) requires ".ncdf".  The contents are
    # checked through a ".nc" link to the very same file.
    as_named = cf_high_priority_failures(path)
    assert len(as_named) == 1 and "§2.1 Filename" in as_named[0], as_named
    link = tmp_path / "same_file.nc"
    link.symlink_to(path)
    assert cf_high_priority_failures(link) == []


def test_xarray_open_dataset_decodes_coordinates_and_missing_values(tmp_path):
    xr = pytest.importorskip("xarray")
    path = write_mask(tmp_path / "m.ncdf", make_mask(), threshold=0.5)
    with xr.open_dataset(path) as ds:
        da = ds["cloudmask"]
        assert {"latitude", "longitude"} <= set(da.coords)
        assert float(da.latitude[0]) == pytest.approx(-90)
        values = da.values
        assert np.isnan(values[0, 0]) and not (values == INVALID).any()
        assert np.nanmax(values) == pytest.approx(0.95)


def test_read_mask_xarray_is_north_up_with_nan_and_selectable_by_latitude(tmp_path):
    pytest.importorskip("xarray")
    path = write_mask(tmp_path / "m.ncdf", make_mask(), {"ls": 140.0}, threshold=0.5)
    da = read_mask_xarray(path)
    assert da.dims == ("latitude", "longitude") and da.shape == (MAP_HEIGHT, MAP_WIDTH)
    assert float(da.latitude[0]) == pytest.approx(90) and float(da.latitude[-1]) == pytest.approx(-90)
    assert np.isnan(da.values[0, 0])
    # north half (latitude ~ +20) holds 0.25, south half (~ -20) holds 0.95
    assert float(da.sel(latitude=20, longitude=0, method="nearest")) == pytest.approx(0.25)
    assert float(da.sel(latitude=-20, longitude=0, method="nearest")) == pytest.approx(0.95)
    assert da.attrs["ls"] == pytest.approx(140.0)
    binary = read_mask_xarray(path, threshold=0.5)
    assert float(binary.sel(latitude=-20, longitude=0, method="nearest")) == 1.0
    assert np.isnan(binary.values[500, 100])


def test_reads_the_originals_reference_masks(data_dir):
    pytest.importorskip("xarray")
    path = data_dir / "reference" / "P" / "P01" / "cloudmask_P01_day01.ncdf"
    da = read_mask_xarray(path)
    values = np.unique(da.values[np.isfinite(da.values)])
    assert set(values) <= {0.0, 1.0}
    # the original's bounds: the north-up top rows (north polar region) are invalid
    assert np.isnan(da.values[0]).all()


# --------------------------------------------------------------------------- writer faults
def test_values_just_above_one_are_clipped_and_read_back_as_cloud(tmp_path):
    import netCDF4

    mask = make_mask()
    mask[1000, 10] = np.float32(1.0000001)  # what a sigmoid in float32 can return
    mask[1000, 11] = np.float32(-1e-7)
    path = write_mask(tmp_path / "m.ncdf", mask, threshold=0.5)
    with netCDF4.Dataset(path) as ds:  # netCDF4's default masking honours valid_range
        values = ds["cloudmask"][:]
        row = MAP_HEIGHT - 1 - 1000
        assert not np.ma.is_masked(values[row, 10]) and values[row, 10] == 1.0
        assert not np.ma.is_masked(values[row, 11]) and values[row, 11] == 0.0


def _fds_to(folder: Path) -> list[str]:
    """Targets of this process's open file descriptors that lie in ``folder``."""
    import os

    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor is gone already
            continue
        if str(folder) in target:
            out.append(target)
    return out


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd (Linux)")
def test_a_write_failing_like_a_full_disk_closes_the_file_and_leaves_nothing(tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse writes past 200 kB: the HDF library fails as on a full disk."""
    import resource
    import signal

    rng = np.random.default_rng(0)
    mask = rng.random((MAP_HEIGHT, MAP_WIDTH), dtype=np.float32)  # incompressible: ~20 MB
    out = tmp_path / "out"
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard))
    try:
        with pytest.raises(Exception) as info:
            write_mask(out / "cloudmask_P01_day01.ncdf", mask, threshold=0.5)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert _fds_to(out) == []  # no descriptor left to a (deleted) temporary
    assert list(out.iterdir()) == []  # no temporary and no partial mask
    assert "cloudmask_P01_day01.ncdf" in str(info.value)  # the reason names the file
    # and the next write works (nothing half-open blocks it)
    assert read_mask(write_mask(out / "cloudmask_P01_day01.ncdf", make_mask(), threshold=0.5)).shape == (
        MAP_HEIGHT,
        MAP_WIDTH,
    )


def test_the_data_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    import os

    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_mask(tmp_path / "m.ncdf", make_mask(), threshold=0.5)
    replaced = [i for i, (kind, _) in enumerate(events) if kind == "replace"]
    assert len(replaced) == 1, events
    tmp_name = events[replaced[0]][1]
    assert ("fsync", tmp_name) in events[: replaced[0]], events


# --------------------------------------------------------------------------- bad masks in OUT
def test_check_mask_file_accepts_a_complete_mask_and_names_what_is_wrong_with_others(tmp_path):
    import netCDF4

    from mars_cloudmask.infer.netcdf import check_mask_file

    good = write_mask(tmp_path / "cloudmask_P01_day01.ncdf", make_mask(), threshold=0.5)
    assert check_mask_file(good) is None
    empty = tmp_path / "cloudmask_P01_day02.ncdf"
    empty.write_bytes(b"")
    truncated = tmp_path / "cloudmask_P01_day03.ncdf"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "cloudmask_P01_day04.ncdf"
    text.write_text("not a mask\n")
    small = tmp_path / "cloudmask_P01_day05.nc"
    with netCDF4.Dataset(small, "w") as ds:
        ds.createDimension("y", 10)
        ds.createDimension("x", 20)
        ds.createVariable("cloudmask", "f4", ("y", "x"))[:] = 0
    other = tmp_path / "cloudmask_P01_day06.nc"
    with netCDF4.Dataset(other, "w") as ds:
        ds.createDimension("y", 10)
        ds.createVariable("something", "f4", ("y",))[:] = 0
    expected = {
        empty: "0 bytes",
        truncated: "truncated",
        text: "not a readable NetCDF",
        small: "shape (10, 20), expected (1801, 3600)",
        other: "no 'cloudmask' variable",
        tmp_path / "cloudmask_P01_day07.ncdf": "missing",
    }
    for path, words in expected.items():
        reason = check_mask_file(path)
        assert reason is not None and words in reason and str(path) in reason, (path, reason)
        assert "\n" not in reason


def test_mask_file_names_and_finding_them(tmp_path):
    from mars_cloudmask.infer.netcdf import find_mask_files, is_mask_file, map_name_of, mask_file_name

    assert mask_file_name("P01_day01") == "cloudmask_P01_day01.ncdf"
    assert mask_file_name("P01_day01", ".nc") == "cloudmask_P01_day01.nc"
    with pytest.raises(ValueError, match="suffix"):
        mask_file_name("P01_day01", ".h5")
    assert map_name_of("x/cloudmask_P01_day101.nc") == "P01_day101"
    for name in ("cloudmask_P01_day01.ncdf", "cloudmask_P01_day02.nc", "P01day03.NC"):
        (tmp_path / "a" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "a" / name).write_bytes(b"x")
    (tmp_path / "a" / ".cloudmask_P01_day04.nc.k3j9.tmp").write_bytes(b"x")
    (tmp_path / "a" / ".cloudmask_P01_day05.nc").write_bytes(b"x")
    (tmp_path / "a" / "cloudmask_P01_day01.png").write_bytes(b"x")
    assert not is_mask_file("a/.cloudmask_P01_day05.nc") and is_mask_file("P01day03.NC")
    assert [p.name for p in find_mask_files(tmp_path)] == [
        "P01day03.NC",
        "cloudmask_P01_day01.ncdf",
        "cloudmask_P01_day02.nc",
    ]
    with pytest.raises(FileNotFoundError, match="no such"):
        find_mask_files(tmp_path / "absent")


# --------------------------------------------------------------------------- time coordinates
RUN = [("P01", 1, 28, 132.5), ("P01", 2, 28, 133.0), ("P02", 1, 29, 3.25)]
"""(subphase, day, Mars year, Ls) of a small run."""


def write_run(out: Path, suffix: str = ".ncdf") -> list[Path]:
    """A small run in cm-infer's layout ``OUT/P/<subphase>/cloudmasks/cloudmask_<name><suffix>``;
    mask ``i`` holds the value ``0.1 * (i + 1)`` wherever make_mask() is valid."""
    paths = []
    for i, (sub, day, year, ls) in enumerate(RUN):
        name = f"{sub}_day{day:02d}"
        mask = make_mask()
        mask[mask != INVALID] = 0.1 * (i + 1)
        paths.append(
            write_mask(
                out / "P" / sub / "cloudmasks" / f"cloudmask_{name}{suffix}",
                mask,
                {"solar_longitude": ls, "mars_year": year, "map_name": name},
                threshold=0.5,
            )
        )
    return paths


def test_a_run_opens_as_one_time_stacked_dataset_with_the_readme_one_liner(tmp_path, monkeypatch):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("dask")
    write_run(tmp_path / "OUT")
    monkeypatch.chdir(tmp_path)
    # the README's own line, read from it (so the README shows what this test runs):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (line,) = [ln for ln in readme.splitlines() if ln.startswith("run = xr.open_mfdataset(")]
    scope: dict = {"xr": xr}
    exec(line, scope)
    run = scope["run"]
    with run:
        assert run["cloudmask"].dims == ("time", "y", "x")
        assert run["cloudmask"].shape == (3, MAP_HEIGHT, MAP_WIDTH)
        np.testing.assert_allclose(run["ls"].values, [132.5, 133.0, 3.25])
        assert run["ls"].dims == ("time",) and run["ls"].attrs["units"] == "degree"
        assert list(run["mars_year"].values) == [28, 28, 29]
        assert [str(v) for v in run["map_name"].values] == ["P01_day01", "P01_day02", "P02_day01"]
        np.testing.assert_allclose(run["time"].values, [28 * 360 + 132.5, 28 * 360 + 133.0, 29 * 360 + 3.25])
        assert run.indexes["time"].is_monotonic_increasing
        # lazily, by Dask; values decoded (NaN where invalid), one step per file
        assert run["cloudmask"].chunks[0] == (1, 1, 1)
        point = run["cloudmask"].isel(y=MAP_HEIGHT - 1 - 1000, x=5).values
        np.testing.assert_allclose(point, [0.1, 0.2, 0.3], rtol=1e-6)
        assert run["latitude"].dims == ("y",)


def test_time_coordinates_are_nan_when_ls_is_unknown_and_readers_fall_back_for_old_files(tmp_path):
    import netCDF4

    from mars_cloudmask.infer.netcdf import read_time_coords

    unknown = read_time_coords(write_mask(tmp_path / "cloudmask_P09_day03.ncdf", make_mask(), threshold=0.5))
    assert unknown.ls is None and unknown.mars_year is None and np.isnan(unknown.time)
    assert unknown.map_name == "P09_day03"
    # a mask written before the time coordinates existed: Ls and Mars year in global attributes
    old = tmp_path / "cloudmask_P01_day04.ncdf"
    with netCDF4.Dataset(old, "w", format="NETCDF4_CLASSIC") as ds:
        ds.createDimension("x", MAP_WIDTH)
        ds.createDimension("y", MAP_HEIGHT)
        ds.createVariable("cloudmask", "f4", ("y", "x"), fill_value=np.float32(INVALID))[:] = make_mask()[::-1]
        ds.setncatts({"solar_longitude": 140.0, "mars_year": 28})
    when = read_time_coords(old)
    assert (when.ls, when.mars_year, when.map_name, when.time) == (140.0, 28, "P01_day04", 28 * 360 + 140.0)
    np.testing.assert_array_equal(read_mask(old), make_mask())
    pytest.importorskip("xarray")
    da = read_mask_xarray(old)
    assert float(da["ls"]) == 140.0 and int(da["mars_year"]) == 28 and str(da["map_name"].values) == "P01_day04"


def test_nc_names_pass_the_cf_checker_with_the_time_coordinates(tmp_path):
    pytest.importorskip("compliance_checker")
    (path,) = write_run(tmp_path / "OUT", suffix=".nc")[:1]
    assert path.suffix == ".nc"
    assert cf_high_priority_failures(path) == []


def test_readers_keep_working_on_the_label_files(data_dir):
    pytest.importorskip("xarray")
    from mars_cloudmask.infer.netcdf import check_mask_file, read_time_coords

    path = data_dir / "labels" / "P01" / "cloudmask" / "cloudmask_P01day05.ncdf"
    assert check_mask_file(path) is None
    when = read_time_coords(path)
    assert when.ls is None and when.map_name == "P01day05"
    da = read_mask_xarray(path)
    assert da.shape == (MAP_HEIGHT, MAP_WIDTH) and np.isnan(float(da["ls"]))
    assert np.nanmax(da.values) > 1  # labels keep their blue-channel numbers (no clipping on read)


THREADS_SCRIPT = """
import sys, threading
import numpy as np
from mars_cloudmask.infer.netcdf import check_mask_file, read_mask, write_mask
out = sys.argv[1]
mask = np.random.default_rng(0).random((1801, 3600), dtype=np.float32)
first = write_mask(f"{out}/first.ncdf", mask, threshold=0.5)
def work(i):
    write_mask(f"{out}/m{i}.ncdf", mask, threshold=0.5)
    assert read_mask(first).shape == (1801, 3600)
for round in range(3):
    threads = [threading.Thread(target=work, args=(f"{round}_{i}",)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
bad = [r for r in (check_mask_file(p) for p in __import__("pathlib").Path(out).glob("m*.ncdf")) if r]
print(len(list(__import__("pathlib").Path(out).glob("m*.ncdf"))), bad)
"""


def test_masks_written_and_read_from_several_threads_at_once(tmp_path):
    """netCDF-C/HDF5 are not thread-safe and netCDF4 releases the GIL: without the module's lock
    this crashed the interpreter (segmentation fault), so it runs in a child process."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", THREADS_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.split() == ["12", "[]"], proc.stdout


def test_a_probability_mask_records_its_threshold_or_is_refused(tmp_path):
    """Issue 32 item 11: a probability mask written without a threshold was read at 0.912."""
    from mars_cloudmask.infer.science.stats import collect

    with pytest.raises(ValueError, match="threshold"):
        write_mask(tmp_path / "cloudmask_P01_day01.ncdf", make_mask(), {"solar_longitude": 132.5})
    assert list(tmp_path.iterdir()) == []
    for bad in (47, float("nan"), "x"):
        with pytest.raises(ValueError, match="not a number in"):
            write_mask(tmp_path / "m.ncdf", make_mask(), threshold=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="give one"):
        write_mask(tmp_path / "m.ncdf", make_mask(), {"threshold": 0.5}, threshold=0.47)
    path = write_mask(
        tmp_path / "cloudmask_P01_day01.ncdf", make_mask(), {"solar_longitude": 132.5, "mars_year": 28}, threshold=0.96
    )
    assert read_attrs(path)["threshold"] == pytest.approx(0.96)
    day = collect([path]).stats.days[0]
    assert day.cloud_fraction == 0.0  # 0.95 < 0.96: at the default 0.912 it would be 0.5
    zero_one = np.where(make_mask() > 0.5, 1.0, make_mask()).astype(np.float32)
    zero_one[zero_one == 0.25] = 0.0
    assert "threshold" not in read_attrs(write_mask(tmp_path / "b.ncdf", zero_one))


def test_a_backslash_in_the_path_is_refused_before_anything_is_written(tmp_path):
    """Issue 32 item 9: a backslash in a map name gave a mask netCDF4 cannot open ("HDF error")."""
    for path in (tmp_path / "cloudmask_P01\\day01.ncdf", tmp_path / "d\\ir" / "cloudmask_P01_day01.ncdf"):
        with pytest.raises(ValueError, match="backslash") as info:
            write_mask(path, make_mask(), threshold=0.5)
        assert str(path) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_a_negative_mars_year_reads_back(tmp_path):
    """Issue 32 item 9: MY -3 was written but read back as unknown (the fill value was -1)."""
    from mars_cloudmask.infer.netcdf import read_time_coords

    when = read_time_coords(write_mask(tmp_path / "m.ncdf", make_mask(), {"ls": 10.0, "mars_year": -3}, threshold=0.5))
    assert when.mars_year == -3 and when.time == -3 * 360.0 + 10.0
    unknown = read_time_coords(write_mask(tmp_path / "u.ncdf", make_mask(), {"ls": 10.0}, threshold=0.5))
    assert unknown.mars_year is None and np.isnan(unknown.time)


def test_unicode_map_names_go_through_write_and_read(tmp_path):
    """Issue 32 item 14: a non-ASCII map name failed ('ascii' codec can't decode) in map_name."""
    from mars_cloudmask.infer.netcdf import read_time_coords

    name = "P01_é€日_day01"
    path = write_mask(
        tmp_path / f"cloudmask_{name}.ncdf",
        make_mask(),
        {"ls": 10.0, "mars_year": 28, "source_map": f"{name}_zequat.jpg", "subphase": "é€"},
        threshold=0.5,
    )
    assert read_time_coords(path).map_name == name and read_attrs(path)["source_map"] == f"{name}_zequat.jpg"
    long = read_time_coords(write_mask(tmp_path / f"cloudmask_{'é' * 40}.ncdf", make_mask(), threshold=0.5))
    assert long.map_name == "é" * 32  # cut to 64 bytes at a character boundary


def test_netcdf_does_not_import_background():
    """Issue 33: netcdf (the lower module, owner of every file schema and name) must not import
    background, which imports it; the composite file names live here."""
    from tests.imports import imports_module

    assert imports_module("infer.background", "infer.netcdf")
    assert not imports_module("infer.netcdf", "infer.background")


def test_composite_files_are_not_mask_files():
    from mars_cloudmask.infer.netcdf import composite_file_name, is_composite_file, is_mask_file

    name = composite_file_name("P03")
    assert name == "background_P03.nc"
    assert is_composite_file(name) and not is_mask_file(name)
    assert is_mask_file("cloudmask_P03_day01.nc") and not is_composite_file("cloudmask_P03_day01.nc")
