"""The season cube (infer/science/stack.py): packing, building from a run, reading it back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mars_cloudmask.infer.geometry import INVALID, MAP_HEIGHT, MAP_WIDTH
from mars_cloudmask.infer.netcdf import write_mask
from mars_cloudmask.infer.science.stack import (
    PACK_FILL,
    build_cube,
    from_stored,
    iter_cube_masks,
    iter_cube_steps,
    open_cube,
    pack,
    to_stored,
    unpack,
)

try:  # the science tools are moving into infer/science/
    from mars_cloudmask.infer.science.masks import binarise
    from mars_cloudmask.infer.science.stats import CloudStats, collect
except ImportError:
    from mars_cloudmask.infer.masks import binarise
    from mars_cloudmask.infer.stats import CloudStats, collect


def prob_mask(seed: int) -> np.ndarray:
    """North-up probabilities: invalid caps, random values in the middle, many near 0.912."""
    rng = np.random.default_rng(seed)
    mask = np.full((MAP_HEIGHT, MAP_WIDTH), INVALID, dtype=np.float32)
    mask[100 + 10 * seed : 1700] = rng.random((1600 - 10 * seed, MAP_WIDTH), dtype=np.float32)
    mask[800:820] = np.float32(0.912) + rng.integers(-3, 4, (20, MAP_WIDTH)).astype(np.float32) * np.float32(6e-8)
    return mask


def write_prob_run(out: Path, n: int) -> list[Path]:
    """``n`` masks in cm-infer's layout, Ls 10, 20, ... of MY 28 written in reverse order of name."""
    paths = []
    for i in range(n):
        name = f"P01_day{n - i:02d}"
        paths.append(
            write_mask(
                out / "P" / "P01" / "cloudmasks" / f"cloudmask_{name}.ncdf",
                prob_mask(i),
                {"solar_longitude": 10.0 * (i + 1), "mars_year": 28, "map_name": name, "threshold": 0.912},
            )
        )
    return paths


def test_pack_keeps_thresholding_at_multiples_of_0004_exact():
    rng = np.random.default_rng(1)
    p = rng.random(200_000, dtype=np.float32)
    p[:7] = [0.0, 1.0, 0.912, np.nextafter(np.float32(0.912), 0), 0.5, np.float32(1.0000001), 0.004]
    q = unpack(pack(p))
    assert np.all(q <= np.minimum(p, 1)) and np.all(p - q < 0.004 + 1e-7)
    for thr in (0.912, 0.5, 0.004, 0.3):
        np.testing.assert_array_equal(q >= np.float32(thr), p >= np.float32(thr))
    packed = pack(np.array([INVALID, np.nan, 0.0, 1.0], dtype=np.float32))
    assert list(packed) == [PACK_FILL, PACK_FILL, 0, 250]
    assert list(unpack(packed)) == [INVALID, INVALID, 0.0, 1.0]
    stored = to_stored(packed)
    assert stored.dtype == np.int8 and list(stored) == [-128, -128, -125, 125]
    np.testing.assert_array_equal(from_stored(to_stored(pack(p))), pack(p))


def test_a_run_becomes_one_chunked_cube_sorted_in_time_with_its_sources(tmp_path):
    out = tmp_path / "OUT"
    write_prob_run(out, 3)
    (out / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day09.ncdf").write_bytes(b"")  # a bad mask
    write_mask(
        out / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day08.nc", prob_mask(5), threshold=0.912
    )  # no Ls anywhere
    result = build_cube(out, tmp_path / "cube.nc", time_chunk=2)
    assert result.path == tmp_path / "cube.nc" and result.steps == 3
    assert len(result.errors) == 2, result.errors
    assert any("cloudmask_P01_day09.ncdf: 0 bytes" in e for e in result.errors)
    assert any("cloudmask_P01_day08.nc" in e and "no Ls" in e for e in result.errors)
    assert result.size_bytes == result.path.stat().st_size > 0
    steps = list(iter_cube_steps(result.path))
    assert [s.name for s in steps] == ["P01_day03", "P01_day02", "P01_day01"]  # by Ls, not by name
    assert [s.ls for s in steps] == [10.0, 20.0, 30.0] and {s.mars_year for s in steps} == {28}
    assert steps[0].source == "P/P01/cloudmasks/cloudmask_P01_day03.ncdf"
    assert steps[0].threshold == pytest.approx(0.912)
    np.testing.assert_array_equal(steps[1].mask, unpack(pack(prob_mask(1))))
    assert list(tmp_path.glob(".cube*")) == []


def test_the_cube_opens_lazily_in_xarray_with_dask_chunked_for_time_series(tmp_path):
    pytest.importorskip("xarray")
    pytest.importorskip("dask")
    write_prob_run(tmp_path / "OUT", 3)
    cube = build_cube(tmp_path / "OUT", tmp_path / "cube.nc", time_chunk=2).path
    with open_cube(cube) as ds:
        da = ds["cloudmask"]
        assert da.dims == ("time", "latitude", "longitude") and da.dtype == np.float32
        assert da.chunks is not None and da.chunks[0] == (2, 1) and da.chunks[1][0] == 120
        assert ds["cloudmask"].encoding["dtype"] == np.int8  # one byte a pixel, CF 1.8's signed byte
        assert list(ds["ls"].values) == [10.0, 20.0, 30.0] and "ls" in ds.coords
        assert list(ds["mars_year"].values) == [28, 28, 28]
        series = da.sel(latitude=0, longitude=0, method="nearest").values  # one point through time
        lat_row = int(np.argmin(np.abs(ds["latitude"].values)))
        expected = [unpack(pack(prob_mask(i)))[MAP_HEIGHT - 1 - lat_row, 1800] for i in range(3)]
        np.testing.assert_allclose(series, expected, atol=1e-6)
        assert np.isnan(da.isel(time=0, latitude=0, longitude=0).values)  # the invalid south cap


def _stats_from_cube(cube: Path, label: bool = False) -> CloudStats:
    """cm-stats' accumulator fed from a cube (what the lead wires into cm-stats)."""
    stats = CloudStats()
    for step in iter_cube_steps(cube):
        thr = None if label or np.isnan(step.threshold) else step.threshold
        stats.add(binarise(step.mask, thr), step.name, step.ls, step.mars_year, step.source)
    return stats


def _assert_same_stats(a: CloudStats, b: CloudStats) -> None:
    np.testing.assert_array_equal(a.valid_days, b.valid_days)
    np.testing.assert_array_equal(a.cloudy_days, b.cloudy_days)
    np.testing.assert_array_equal(a.hov_cloud, b.hov_cloud)
    np.testing.assert_array_equal(a.hov_valid, b.hov_valid)

    def key(d):
        return d.name

    da, db = sorted(a.days, key=key), sorted(b.days, key=key)
    assert [(d.name, d.ls, d.mars_year, d.cloud_fraction) for d in da] == [
        (d.name, d.ls, d.mars_year, d.cloud_fraction) for d in db
    ]


def test_cube_statistics_equal_the_folders(tmp_path):
    write_prob_run(tmp_path / "OUT", 3)
    cube = build_cube(tmp_path / "OUT", tmp_path / "cube.nc").path
    folder = collect([tmp_path / "OUT"])
    assert folder.errors == [] and len(folder.stats.days) == 3
    assert folder.stats.cloudy_days.sum() > 0
    _assert_same_stats(_stats_from_cube(cube), folder.stats)
    assert all(s.cloud is None for s in iter_cube_steps(cube))  # 0.912 is on the 0.004 grid: nothing stored
    masks = list(iter_cube_masks(cube))
    assert [(m.name, m.ls, m.mars_year) for m in masks] == [
        ("P01_day03", 10.0, 28),
        ("P01_day02", 20.0, 28),
        ("P01_day01", 30.0, 28),
    ]
    assert masks[0].mask.shape == (MAP_HEIGHT, MAP_WIDTH) and masks[0].mask[0, 0] == INVALID


def test_building_holds_at_most_one_time_chunk_of_masks(tmp_path):
    import tracemalloc

    def peak(n: int) -> int:
        out = tmp_path / f"run{n}"
        write_prob_run(out, n)
        tracemalloc.start()
        try:
            build_cube(out, tmp_path / f"cube{n}.nc", time_chunk=2)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(2), peak(6)
    assert large < small * 1.15, (small, large)  # three times the masks, the same memory
    assert large < 12 * MAP_HEIGHT * MAP_WIDTH * 4  # well under what 6 float masks need (plus headroom)


def test_bad_requests_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="ending in .nc"):
        build_cube(tmp_path, tmp_path / "cube.zarr")
    empty = build_cube(tmp_path, tmp_path / "cube.nc")
    assert empty.path is None and empty.steps == 0 and "no mask files" in empty.errors[0]
    assert not (tmp_path / "cube.nc").exists()


def test_a_cube_of_the_originals_masks_gives_the_folders_statistics(data_dir, tmp_path):
    folder = data_dir / "reference" / "P" / "P02"
    tables = [data_dir / "mdgm" / "P"]
    result = build_cube(folder, tmp_path / "cube.nc", ls_table=tables)
    assert result.errors == [] and result.steps == len(list(folder.glob("*.ncdf"))) > 0
    expected = collect([folder], ls_table=tables, label=True)
    _assert_same_stats(_stats_from_cube(result.path, label=True), expected.stats)


def test_the_cube_has_no_high_priority_cf_failure_but_the_mars_time(tmp_path):
    pytest.importorskip("compliance_checker")
    from tests.test_netcdf import cf_high_priority_failures

    write_prob_run(tmp_path / "OUT", 2)
    failures = cf_high_priority_failures(build_cube(tmp_path / "OUT", tmp_path / "cube.nc").path)
    assert len(failures) == 1 and failures[0].startswith("§5.1") and "'time'" in failures[0], failures


def test_cm_stats_reads_a_cube_and_gives_the_numbers_of_its_folder(tmp_path):
    import typer
    from typer.testing import CliRunner

    from mars_cloudmask.infer.science.cli import stats_command

    stats_app = typer.Typer(add_completion=False)
    stats_app.command()(stats_command)
    write_prob_run(tmp_path / "OUT", 3)
    cube = build_cube(tmp_path / "OUT", tmp_path / "cube.nc").path
    _assert_same_stats(collect([cube]).stats, collect([tmp_path / "OUT"]).stats)
    runner = CliRunner()
    for src, dst in [(cube, "from-cube.nc"), (tmp_path / "OUT", "from-folder.nc")]:
        res = runner.invoke(stats_app, [str(src), "--out", str(tmp_path / dst)])
        assert res.exit_code == 0, res.output
    import netCDF4

    with netCDF4.Dataset(tmp_path / "from-cube.nc") as a, netCDF4.Dataset(tmp_path / "from-folder.nc") as b:
        for var in ("valid_days", "cloudy_days", "hovmoller_cloud_fraction"):
            np.testing.assert_array_equal(a[var][:], b[var][:])


def test_a_mask_without_its_mars_year_is_named_for_that_attribute(tmp_path):
    """Issue 32 item 11: cm-stack said "no 'solar_longitude'/'mars_year' attributes" when only the
    Mars year was missing."""
    out = tmp_path / "OUT"
    write_mask(out / "cloudmask_P01_day01.nc", prob_mask(0), {"solar_longitude": 10.0}, threshold=0.912)
    result = build_cube(out, tmp_path / "cube.nc")
    assert result.path is None and len(result.errors) == 1
    assert "cloudmask_P01_day01.nc" in result.errors[0] and "no 'mars_year' attribute" in result.errors[0]
    assert "solar_longitude" not in result.errors[0]


def test_cm_stats_of_a_cube_equals_the_folders_at_a_threshold_off_the_packing_steps(tmp_path):
    """Issue 32 item 10: at the shipped 0.47 (not a multiple of 0.004) the packed probability put
    the pixels in [0.47, 0.472) on the clear side; the cube's ``cloud`` keeps them exact."""
    out = tmp_path / "OUT"
    rng = np.random.default_rng(3)
    for day in (1, 2):
        mask = prob_mask(day)
        mask[300:700] = rng.uniform(0.466, 0.474, (400, MAP_WIDTH)).astype(np.float32)
        name = f"P01_day{day:02d}"
        write_mask(
            out / "P" / "P01" / "cloudmasks" / f"cloudmask_{name}.ncdf",
            mask,
            {"solar_longitude": 10.0 * day, "mars_year": 28, "map_name": name},
            threshold=0.47,
        )
    cube = build_cube(out, tmp_path / "cube.nc").path
    folder = collect([out])
    from_cube = collect([cube])
    assert folder.errors == from_cube.errors == [] and from_cube.warnings == []
    _assert_same_stats(from_cube.stats, folder.stats)
    packed_only = CloudStats()  # what the cube gave before: its packed values at 0.47
    for step in iter_cube_steps(cube):
        packed_only.add(binarise(step.mask, 0.47), step.name, step.ls, step.mars_year)
    assert (packed_only.cloudy_days != folder.stats.cloudy_days).sum() > 1000  # the defect this guards
    assert all(s.cloud is not None for s in iter_cube_steps(cube))
    # an override off the 0.004 steps reads the packed values: said in one line, not silently
    off = collect([cube], threshold=0.47)
    assert len(off.warnings) == 1 and "0.47" in off.warnings[0] and "cube.nc" in off.warnings[0]
    on = collect([cube], threshold=0.5)
    assert on.warnings == []
    _assert_same_stats(on.stats, collect([out], threshold=0.5).stats)


def test_unicode_map_and_subphase_names_work_end_to_end(tmp_path):
    """Issue 32 item 14: any non-ASCII map or subphase name failed ('ascii' codec can't decode)."""
    import typer
    from typer.testing import CliRunner

    from mars_cloudmask.infer.science.cli import eval_command, stats_command, view_command
    from mars_cloudmask.infer.science.stats import write_stats

    out = tmp_path / "OUT é"
    names = ["Pé01_day01", "Pé01_day02", "雲_day03"]
    for i, name in enumerate(names):
        write_mask(
            out / "Phasé" / "Pé01" / "cloudmasks" / f"cloudmask_{name}.ncdf",
            prob_mask(i),
            {"solar_longitude": 10.0 * (i + 1), "mars_year": 28, "map_name": name, "subphase": "Pé01"},
            threshold=0.912,
        )
    cube = build_cube(out, tmp_path / "cubé.nc")
    assert cube.errors == [] and cube.steps == 3
    assert sorted(s.name for s in iter_cube_steps(cube.path)) == sorted(names)
    folder, from_cube = collect([out]), collect([cube.path])
    assert folder.errors == from_cube.errors == []
    _assert_same_stats(from_cube.stats, folder.stats)
    import netCDF4

    with netCDF4.Dataset(write_stats(folder.stats, tmp_path / "statsé.nc")) as ds:
        assert sorted(ds["day_name"][:]) == sorted(d.name for d in folder.stats.days)
    runner = CliRunner()
    for command, args in [
        (stats_command, [str(out), "--out", str(tmp_path / "s.nc")]),
        (eval_command, [str(out), str(out)]),
        (view_command, [str(out / "Phasé" / "Pé01" / "cloudmasks" / "cloudmask_Pé01_day01.ncdf")]),
    ]:
        app = typer.Typer(add_completion=False)
        app.command()(command)
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "codec" not in res.output, (command.__name__, res.output, res.exception)


def test_stack_does_not_import_stats():
    """Issue 33: stats reads cubes through stack, so stack must not import stats; the Ls lookup
    both use lives in science.ls_lookup."""
    from tests.imports import imports_module

    assert imports_module("infer.science.stats", "infer.science.stack")
    assert imports_module("infer.science.stack", "infer.science.ls_lookup")
    assert not imports_module("infer.science.stack", "infer.science.stats")
