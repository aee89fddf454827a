"""infer.background: per-pixel percentiles of blue over a set of maps, invalid pixels left out."""

from __future__ import annotations

import numpy as np
import pytest

from mars_cloudmask.infer.background import (
    composite,
    composite_of_files,
    map_files,
    percentiles_of_stack,
    read_netcdf,
    write_netcdf,
)


def tiny_map(blue: list[list[int]]) -> np.ndarray:
    """A (H, W, 3) map: R = G = 100 (valid), the given blue; blue 0 makes a no-data pixel."""
    b = np.asarray(blue, dtype=np.uint8)
    rgb = np.full(b.shape + (3,), 100, dtype=np.uint8)
    rgb[..., 2] = b
    rgb[b == 0] = 0  # black: no data
    return rgb


def test_percentiles_match_numpy_over_the_valid_values():
    maps = [tiny_map([[40, 50]]), tiny_map([[60, 0]]), tiny_map([[80, 70]]), tiny_map([[100, 90]])]
    bg = composite(maps, qs=(10, 50))
    assert bg.n_maps == 4
    assert bg.count.tolist() == [[4, 3]]
    assert bg.plane(50)[0, 0] == pytest.approx(np.percentile([40, 60, 80, 100], 50))  # 70
    assert bg.plane(10)[0, 0] == pytest.approx(np.percentile([40, 60, 80, 100], 10))  # 46
    assert bg.plane(50)[0, 1] == pytest.approx(70.0)  # median of 50, 70, 90: the no-data map is left out
    assert bg.plane(10)[0, 1] == pytest.approx(54.0)


def test_a_pixel_without_data_in_any_map_is_nan_and_a_valid_255_still_counts():
    bg = composite([tiny_map([[0, 255]]), tiny_map([[0, 250]])], qs=(50,))
    assert np.isnan(bg.plane(50)[0, 0]) and bg.count[0, 0] == 0
    assert bg.plane(50)[0, 1] == pytest.approx(252.5)


def test_one_map_is_its_own_background():
    rgb = tiny_map([[40, 90], [120, 0]])
    bg = composite([rgb], qs=(10, 90))
    for q in (10, 90):
        assert bg.plane(q)[0].tolist() == [40.0, 90.0]
        assert np.isnan(bg.plane(q)[1, 1])


def test_blocks_of_rows_give_the_same_result_as_one_block():
    rng = np.random.default_rng(0)
    stack = rng.integers(30, 256, size=(7, 10, 5), dtype=np.uint8)
    stack[rng.random(stack.shape) < 0.3] = 255
    count = rng.integers(0, 8, size=(10, 5)).astype(np.uint16)
    # mark the invalid entries as the function expects: the first `count` are valid, the rest 255
    for idx in np.ndindex(10, 5):
        stack[count[idx] :, idx[0], idx[1]] = 255
    a = percentiles_of_stack(stack.copy(), count, (30,), block_rows=3)[30]
    b = percentiles_of_stack(stack.copy(), count, (30,), block_rows=64)[30]
    np.testing.assert_array_equal(np.isnan(a), count == 0)
    np.testing.assert_allclose(a[count > 0], b[count > 0])
    for idx in zip(*np.nonzero(count), strict=True):
        vals = stack[: count[idx], idx[0], idx[1]].astype(float)
        assert a[idx] == pytest.approx(np.percentile(vals, 30), abs=1e-4)


def test_no_map_and_mixed_shapes_are_refused():
    with pytest.raises(ValueError, match="no map"):
        composite([], qs=(10,))
    with pytest.raises(ValueError, match="shape"):
        composite([tiny_map([[40, 50]]), tiny_map([[40], [50]])], qs=(10,))


def test_files_round_trip_through_cf_netcdf_south_up_on_disk(map_tree, tmp_path):
    files = map_files(map_tree / "P" / "P01")
    assert [p.name for p in files] == ["P01_day01_zequat.jpg", "P01_day02_zequat.jpg"]
    bg = composite_of_files(files, qs=(10, 50))
    assert bg.plane(10).shape == (1801, 3600) and bg.count.max() == 2
    write_netcdf(bg, tmp_path / "out" / "bg.ncdf", sources=[p.name for p in files])
    back = read_netcdf(tmp_path / "out" / "bg.ncdf")
    assert back.n_maps == 2 and sorted(back.percentiles) == [10, 50]
    np.testing.assert_array_equal(back.plane(50), bg.plane(50))  # NaNs included
    np.testing.assert_array_equal(back.count, bg.count)
    import netCDF4

    with netCDF4.Dataset(tmp_path / "out" / "bg.ncdf") as ds:
        assert ds.Conventions == "CF-1.8" and ds.source_maps == "P01_day01_zequat.jpg,P01_day02_zequat.jpg"
        assert ds["latitude"][0] < 0  # row 0 on disk is the south
        np.testing.assert_array_equal(ds["count"][:][::-1], bg.count)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["bg.ncdf"]  # nothing half-written beside it


def test_reading_some_percentiles_attributes_unreadable_maps_and_the_fingerprint(tmp_path):
    from mars_cloudmask.infer.background import composite_of_readable, read_attrs, sources_fingerprint
    from tests.synthetic import write_map

    # 2 x 2 JPEGs: read_map refuses them (not 3600 x 1801), so none is readable
    unreadable = [write_map(tmp_path / f"m{k}.jpg", tiny_map([[40 + 10 * k, 60]]).repeat(2, 0)) for k in range(2)]
    bg = composite([tiny_map([[40, 50]]), tiny_map([[60, 70]])], qs=(10, 30, 50))
    path = write_netcdf(bg, tmp_path / "bg.nc", attrs={"sources_fingerprint": "abc", "skipped_maps": ""})
    only = read_netcdf(path, [30])
    assert sorted(only.percentiles) == [30] and only.n_maps == 2
    with pytest.raises(KeyError, match=r"background has percentiles \[10, 30, 50\], not \[90\]"):
        read_netcdf(path, [90, 10])
    attrs = read_attrs(path)
    assert attrs["percentiles"] == [10, 30, 50] and attrs["sources_fingerprint"] == "abc"
    with pytest.raises(ValueError, match=r"none of its 2 maps is readable \(first: .*m0\.jpg: image is 2 x 2"):
        composite_of_readable(unreadable, [10])
    # the fingerprint follows names, sizes and times
    before = sources_fingerprint(unreadable)
    assert sources_fingerprint(unreadable) == before and sources_fingerprint(unreadable[:1]) != before
    unreadable[1].write_bytes(unreadable[1].read_bytes() + b"\0")
    assert sources_fingerprint(unreadable) != before


def test_composite_files_are_read_and_written_under_the_netcdf_lock(tmp_path):
    """netCDF-C and HDF5 are not thread-safe: a composite read in the reader thread while the
    writer thread writes a mask must wait for it (netcdf.NETCDF_LOCK), as mask I/O does."""
    import threading

    from mars_cloudmask.infer.background import read_attrs
    from mars_cloudmask.infer.netcdf import NETCDF_LOCK

    path = write_netcdf(composite([tiny_map([[40, 50]])], qs=(10,)), tmp_path / "bg.nc")
    for call in (lambda: read_netcdf(path), lambda: read_attrs(path), lambda: write_netcdf(read_netcdf(path), path)):
        finished = threading.Event()
        worker = threading.Thread(target=lambda c=call, e=finished: (c(), e.set()))
        with NETCDF_LOCK:
            worker.start()
            assert not finished.wait(0.3)  # blocked while another thread holds the lock
        assert finished.wait(10)
        worker.join()
