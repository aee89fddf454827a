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

    path = write_mask(tmp_path / "cloudmask_P01_day01.ncdf", make_mask(), {"ls": 132.5, "mars_year": 28})
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
    path = write_mask(tmp_path / "m.ncdf", mask)
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
    path = write_mask(tmp_path / "cloudmask_P01_day01.ncdf", mask, {"ls": 132.5, "mars_year": 28}, binary=binary)
    # The checker's only complaint about the file as named is CF 2.1's ".nc" extension
    # recommendation: the original's layout (domain.md 5) requires ".ncdf".  The contents are
    # checked through a ".nc" link to the very same file.
    as_named = cf_high_priority_failures(path)
    assert len(as_named) == 1 and "§2.1 Filename" in as_named[0], as_named
    link = tmp_path / "same_file.nc"
    link.symlink_to(path)
    assert cf_high_priority_failures(link) == []


def test_xarray_open_dataset_decodes_coordinates_and_missing_values(tmp_path):
    xr = pytest.importorskip("xarray")
    path = write_mask(tmp_path / "m.ncdf", make_mask())
    with xr.open_dataset(path) as ds:
        da = ds["cloudmask"]
        assert {"latitude", "longitude"} <= set(da.coords)
        assert float(da.latitude[0]) == pytest.approx(-90)
        values = da.values
        assert np.isnan(values[0, 0]) and not (values == INVALID).any()
        assert np.nanmax(values) == pytest.approx(0.95)


def test_read_mask_xarray_is_north_up_with_nan_and_selectable_by_latitude(tmp_path):
    pytest.importorskip("xarray")
    path = write_mask(tmp_path / "m.ncdf", make_mask(), {"ls": 140.0})
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
    path = write_mask(tmp_path / "m.ncdf", mask)
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
            write_mask(out / "cloudmask_P01_day01.ncdf", mask)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert _fds_to(out) == []  # no descriptor left to a (deleted) temporary
    assert list(out.iterdir()) == []  # no temporary and no partial mask
    assert "cloudmask_P01_day01.ncdf" in str(info.value)  # the reason names the file
    # and the next write works (nothing half-open blocks it)
    assert read_mask(write_mask(out / "cloudmask_P01_day01.ncdf", make_mask())).shape == (MAP_HEIGHT, MAP_WIDTH)


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
    write_mask(tmp_path / "m.ncdf", make_mask())
    replaced = [i for i, (kind, _) in enumerate(events) if kind == "replace"]
    assert len(replaced) == 1, events
    tmp_name = events[replaced[0]][1]
    assert ("fsync", tmp_name) in events[: replaced[0]], events
