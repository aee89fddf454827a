"""cm-stats: per-pixel cloud occurrence, per-day Ls, and the Ls-latitude (Hovmöller) table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mars_cloudmask.infer.geometry import INVALID, MAP_HEIGHT, MAP_WIDTH
from mars_cloudmask.infer.netcdf import write_mask
from mars_cloudmask.infer.science.stats import collect, lat_band_of_rows, ls_bin_index, write_stats

N_NORTH = 901  # north-up rows 0..900 have latitude >= 0 (row 900 is the equator)
N_SOUTH = MAP_HEIGHT - N_NORTH


def write_case(root: Path) -> Path:
    """Three hand-built days (north-up), 2 latitude bands x 4 Ls bins with 90-degree bins.

    A (Ls 10, MY 28, attributes): all valid; rows 0-99 p=0.9, the rest 0.1.
    B (Ls 20, MY 28, attributes as cm-infer names them: solar_longitude): only the south rows 901-1800
    valid; rows 901-1000 p=0.9.
    C (no attributes; Ls 100, MY 29 from P01_ls.txt beside it): all valid, column 0 cloudy (1.0).
    """
    out = root / "P" / "P01" / "cloudmasks"
    a = np.full((MAP_HEIGHT, MAP_WIDTH), 0.1, np.float32)
    a[:100] = 0.9
    write_mask(out / "cloudmask_P01_day01.ncdf", a, {"ls": 10.0, "mars_year": 28, "threshold": 0.5})
    b = np.full((MAP_HEIGHT, MAP_WIDTH), INVALID, np.float32)
    b[N_NORTH:] = 0.1
    b[N_NORTH : N_NORTH + 100] = 0.9
    write_mask(out / "cloudmask_P01_day02.ncdf", b, {"solar_longitude": 20.0, "mars_year": 28, "threshold": 0.5})
    c = np.zeros((MAP_HEIGHT, MAP_WIDTH), np.float32)
    c[:, 0] = 1.0
    write_mask(out / "cloudmask_P01_day03.ncdf", c, binary=True)
    (root / "P" / "P01" / "P01_ls.txt").write_text("P01_day03  29  100.000\nP01_day04  29  100.500\n")
    return root


def test_band_and_bin_indices():
    band, edges = lat_band_of_rows(90.0)
    assert list(edges) == [-90.0, 0.0, 90.0]
    assert band[0] == 1 and band[900] == 1 and band[901] == 0 and band[-1] == 0
    assert ls_bin_index(10, 90) == 0 and ls_bin_index(100, 90) == 1 and ls_bin_index(360, 90) == 0


def test_hand_computed_case(tmp_path):
    run = collect([write_case(tmp_path)], lat_bin=90, ls_bin=90, min_valid_days=1)
    assert run.errors == []
    s = run.stats
    assert [(d.name, d.ls, d.mars_year) for d in s.days] == [
        ("P01_day01", 10.0, 28),
        ("P01_day02", 20.0, 28),
        ("P01_day03", 100.0, 29),
    ]
    # per pixel: (row 50, col 5) cloudy on A, invalid on B, clear on C
    assert (s.valid_days[50, 5], s.cloudy_days[50, 5]) == (2, 1) and s.frequency[50, 5] == 0.5
    # (row 950, col 0): clear on A, cloudy on B and C
    assert (s.valid_days[950, 0], s.cloudy_days[950, 0]) == (3, 2)
    assert s.frequency[950, 0] == pytest.approx(2 / 3)
    assert (s.valid_days[1500, 5], s.cloudy_days[1500, 5], s.frequency[1500, 5]) == (3, 0, 0.0)
    # per day
    assert s.days[0].cloud_fraction == pytest.approx(100 / MAP_HEIGHT)
    assert s.days[1].zonal[0] == pytest.approx(100 / N_SOUTH) and np.isnan(s.days[1].zonal[1])
    # Hovmöller, rows = bands (south, north), columns = Ls bins 0-90, 90-180, 180-270, 270-360
    hov = s.hovmoller
    assert hov[1, 0] == pytest.approx(100 / N_NORTH)  # A only (B has no valid north pixel)
    assert hov[0, 0] == pytest.approx(100 / (2 * N_SOUTH))  # A clear + B's 100 cloudy rows
    assert hov[0, 1] == pytest.approx(1 / MAP_WIDTH) and hov[1, 1] == pytest.approx(1 / MAP_WIDTH)
    assert np.isnan(hov[:, 2:]).all()
    assert s.hov_valid[0, 0] == 2 * N_SOUTH * MAP_WIDTH


def test_frequency_needs_min_valid_days_and_the_file_says_threshold_and_years(tmp_path):
    """Issue 35: specks valid once read as frequency 1, stats.nc did not say its threshold, and
    the figures pooled Mars years 28 and 29 without a word."""
    import netCDF4

    from mars_cloudmask.infer.science.stats import write_stats

    root = write_case(tmp_path)
    s = collect([root], lat_bin=90, ls_bin=90).stats  # the default: at least 3 valid days
    assert np.isnan(s.frequency[50, 5])  # valid on 2 days only
    assert s.frequency[950, 0] == pytest.approx(2 / 3)  # valid on all 3
    assert collect([root], lat_bin=90, ls_bin=90, min_valid_days=2).stats.frequency[50, 5] == 0.5
    assert s.mars_years == [28, 29]
    path = write_stats(s, tmp_path / "stats.nc")
    with netCDF4.Dataset(path) as ds:
        assert ds.min_valid_days == 3 and ds.mars_years == "28, 29"
        assert ds.threshold == s.threshold_text() and "0.5" in ds.threshold
        assert "Mars years 28, 29 pooled" in ds["hovmoller_cloud_fraction"].long_name
    forced = collect([root], lat_bin=90, ls_bin=90, threshold=0.3).stats
    assert forced.threshold_text() == "0.3"


def test_frequency_is_nan_where_never_valid(tmp_path):
    root = tmp_path / "m"
    b = np.full((MAP_HEIGHT, MAP_WIDTH), INVALID, np.float32)
    b[1000:] = 1.0
    write_mask(root / "cloudmask_P05_day01.ncdf", b, {"ls": 200.0, "mars_year": 29}, binary=True)
    s = collect([root], min_valid_days=1).stats
    assert np.isnan(s.frequency[0, 0]) and s.frequency[1500, 0] == 1.0


def test_a_day_without_ls_is_reported_and_left_out(tmp_path):
    root = write_case(tmp_path)
    (root / "P" / "P01" / "P01_ls.txt").unlink()
    run = collect([root], lat_bin=90, ls_bin=90)
    assert [d.name for d in run.stats.days] == ["P01_day01", "P01_day02"]
    assert len(run.errors) == 1 and "cloudmask_P01_day03.ncdf" in run.errors[0] and "--ls-table" in run.errors[0]
    # an explicit table fills the gap
    table = tmp_path / "elsewhere_ls.txt"
    table.write_text("P01_day03 29 100.0\n")
    assert len(collect([root], ls_table=[table]).stats.days) == 3


def test_write_stats_and_read_back(tmp_path):
    xr = pytest.importorskip("xarray")
    run = collect([write_case(tmp_path / "in")], lat_bin=90, ls_bin=90, min_valid_days=1)
    path = write_stats(run.stats, tmp_path / "stats.nc")
    with xr.open_dataset(path) as ds:
        assert list(ds["day_name"].values) == ["P01_day01", "P01_day02", "P01_day03"]
        assert list(ds["ls"].values) == [10.0, 20.0, 100.0] and list(ds["mars_year"].values) == [28, 28, 29]
        # the grids are south-up like the mask files: select by latitude
        assert int(ds["valid_days"].sel(latitude=-5.0, longitude=0.0, method="nearest")) == 3
        freq = ds["cloud_frequency"].sel(latitude=85.0, longitude=-179.5, method="nearest")
        assert float(freq) == pytest.approx(0.5)
        hov = ds["hovmoller_cloud_fraction"]
        assert hov.shape == (2, 4) and np.isnan(hov.values[:, 2:]).all()
        assert float(hov.sel(lat_band=45.0, ls_bin=45.0)) == pytest.approx(100 / N_NORTH)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cm_stats_command_writes_file_and_pictures(tmp_path):
    import typer
    from typer.testing import CliRunner

    from mars_cloudmask.infer.science.cli import stats_command

    app = typer.Typer()
    app.command()(stats_command)
    root = write_case(tmp_path / "in")
    result = CliRunner().invoke(
        app, [str(root), str(tmp_path / "nothere"), "--out", str(tmp_path / "s.nc"), "--png", str(tmp_path / "png")]
    )
    assert "nothere" in result.output and result.exit_code == 1  # one bad input: reported, rest done
    assert (tmp_path / "s.nc").exists()
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["cloud_frequency.png", "cloud_ls_latitude.png"]


def test_reference_masks_with_ls_from_the_mdgm_tree(data_dir):
    run = collect([data_dir / "reference" / "P" / "P02"], ls_table=[data_dir / "mdgm"])
    assert run.errors == []
    days = run.stats.days
    assert [d.name for d in days] == ["P02_day01", "P02_day09", "P02_day17", "P02_day25", "P02_day34"]
    assert days[0].ls == pytest.approx(143.7) and days[0].mars_year == 28  # P02_ls.txt, first row
    assert all(0 < d.cloud_fraction < 0.5 for d in days)


def test_on_cm_infer_output_with_quicklooks(tiny_model, map_tree, tmp_path):
    """cm-infer's own files: Ls from their attributes, quicklooks beside them, CF-clean."""
    from PIL import Image
    from typer.testing import CliRunner

    from mars_cloudmask.infer.cli import app
    from tests.test_netcdf import cf_high_priority_failures

    pytest.importorskip("compliance_checker")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, [str(map_tree), "--out", str(out), "--model", str(tiny_model), "--quicklook"])
    assert res.exit_code == 0, res.output
    masks = sorted(out.rglob("*.ncdf"))
    assert [m.name for m in masks] == ["cloudmask_P01_day01.ncdf", "cloudmask_P01_day02.ncdf"]
    for m in masks:
        with Image.open(m.with_suffix(".png")) as im:
            assert im.size == (900, 451 + 40)  # the map shrunk 4x over its legend strip
    for table in out.rglob("*_ls.txt"):
        table.unlink()  # Ls must come from the files themselves
    run = collect([out])
    assert run.errors == [] and [d.ls for d in run.stats.days] == [132.5, 132.9]
    link = tmp_path / "infer_output.nc"
    link.symlink_to(masks[0])
    assert cf_high_priority_failures(link) == []


def test_the_accumulator_keeps_no_image_per_mask(tmp_path):
    """Streaming: after 2 or 6 masks it holds the same two int32 day counters and, per day, only
    a band vector (peak memory against mask count: ``python -m mars_cloudmask.benchmarks.science``)."""
    days = {
        day: write_mask(  # one map per day (the same file under 6 names would be one map, counted once)
            tmp_path / "src" / f"cloudmask_P03_day{day:02d}.ncdf",
            np.full((MAP_HEIGHT, MAP_WIDTH), 0.5, np.float32),
            {"ls": 150.0 + day, "mars_year": 28, "threshold": 0.5},
        )
        for day in range(1, 7)
    }

    def image_bytes(obj) -> int:
        arrays = [v for v in vars(obj).values() if isinstance(v, np.ndarray)]
        return sum(a.nbytes for a in arrays if a.size >= MAP_WIDTH)

    held = {}
    for n in (2, 6):
        folder = tmp_path / f"n{n}"
        folder.mkdir()
        for day in range(1, n + 1):
            (folder / f"cloudmask_P03_day{day:02d}.ncdf").symlink_to(days[day])
        stats = collect([folder]).stats
        assert len(stats.days) == n and int(stats.valid_days.max()) == n
        assert all(image_bytes(d) == 0 and d.zonal.shape == (stats.n_bands,) for d in stats.days)
        held[n] = image_bytes(stats)
    assert held[2] == held[6] == 2 * MAP_HEIGHT * MAP_WIDTH * 4  # valid_days + cloudy_days, int32


def write_odd_mask(path: Path, shape: tuple[int, int], attrs: dict) -> Path:
    """A NetCDF ``cloudmask`` of any shape (write_mask only writes 1801 x 3600)."""
    import netCDF4

    path.parent.mkdir(parents=True, exist_ok=True)
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("y", shape[0])
        ds.createDimension("x", shape[1])
        ds.createVariable("cloudmask", "f4", ("y", "x"))[:] = np.zeros(shape, np.float32)
        ds.setncatts(attrs)
    return path


def write_bad_days(root: Path) -> Path:
    """``write_case`` plus a 100 x 200 mask (day 05) and a mask whose Ls is NaN (day 06)."""
    write_case(root)
    out = root / "P" / "P01" / "cloudmasks"
    write_odd_mask(out / "cloudmask_P01_day05.ncdf", (100, 200), {"solar_longitude": 30.0, "mars_year": 28})
    write_mask(
        out / "cloudmask_P01_day06.ncdf",
        np.zeros((MAP_HEIGHT, MAP_WIDTH), np.float32),
        {"solar_longitude": float("nan"), "mars_year": 28},
    )
    return root


def test_a_wrong_shaped_or_nan_ls_mask_is_left_out_with_one_line_each(tmp_path):
    run = collect([write_bad_days(tmp_path)], lat_bin=90, ls_bin=90)
    assert [d.name for d in run.stats.days] == ["P01_day01", "P01_day02", "P01_day03"]
    assert len(run.errors) == 2
    assert "cloudmask_P01_day05.ncdf" in run.errors[0] and "(100, 200)" in run.errors[0]
    assert "cloudmask_P01_day06.ncdf" in run.errors[1] and "nan" in run.errors[1].lower()


def stats_app():
    import typer

    from mars_cloudmask.infer.science.cli import stats_command

    app = typer.Typer()
    app.command()(stats_command)
    return app


def test_cm_stats_skips_bad_masks_and_still_writes_the_rest(tmp_path):
    from typer.testing import CliRunner

    root = write_bad_days(tmp_path / "in")
    result = CliRunner().invoke(stats_app(), [str(root), "--out", str(tmp_path / "s.nc")])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "cloudmask_P01_day05.ncdf" in result.output and "cloudmask_P01_day06.ncdf" in result.output
    assert "3 days" in result.output and (tmp_path / "s.nc").exists()


@pytest.mark.parametrize("option", ["--lat-bin", "--ls-bin"])
@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_cm_stats_refuses_a_bin_width_that_is_not_positive(tmp_path, option, value):
    from typer.testing import CliRunner

    root = write_case(tmp_path / "in")
    result = CliRunner().invoke(stats_app(), [str(root), "--out", str(tmp_path / "s.nc"), option, value])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and option in lines[0], result.output
    assert not (tmp_path / "s.nc").exists()


def test_bin_widths_are_checked_by_the_accumulator_too():
    from mars_cloudmask.infer.science.stats import CloudStats

    with pytest.raises(ValueError, match="lat_bin"):
        CloudStats(lat_bin=0)
    with pytest.raises(ValueError, match="ls_bin"):
        CloudStats(ls_bin=float("inf"))


@pytest.mark.parametrize("where", ["out-under-file", "out-is-folder", "png-under-file", "png-is-file"])
def test_cm_stats_refuses_an_unwritable_output_before_reading(tmp_path, where):
    from typer.testing import CliRunner

    root = write_case(tmp_path / "in")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    out, png = tmp_path / "s.nc", tmp_path / "png"
    if where == "out-under-file":
        out = a_file / "s.nc"
    elif where == "out-is-folder":
        out = tmp_path / "folder"
        out.mkdir()
    elif where == "png-under-file":
        png = a_file / "png"
    else:
        png = a_file
    result = CliRunner().invoke(stats_app(), [str(root), "--out", str(out), "--png", str(png)])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert str(out if where.startswith("out") else png) in lines[0]
    assert not (tmp_path / "s.nc").exists() and not (tmp_path / "png").exists()
    assert a_file.read_text() == "x"


def test_a_mask_counts_once_however_it_is_given_and_folder_and_cube_agree(tmp_path):
    """Issue 32 item 3: masks were kept one per day name from a folder and one per file from a
    cube (and cm-stats OUT CUBE counted every map twice).  Every mask file counts, a second mask
    of the same map (name, Mars year, Ls) is refused with one line naming both files."""
    import shutil

    from mars_cloudmask.infer.science.stack import build_cube

    out = tmp_path / "OUT"
    a = np.full((MAP_HEIGHT, MAP_WIDTH), 0.1, np.float32)
    a[:100] = 0.9
    first = write_mask(out / "A" / "P01" / "cloudmask_P01_day01.ncdf", a, {"ls": 10.0, "mars_year": 28}, threshold=0.5)
    # the same day key in another phase folder, another map (another Ls): counted
    write_mask(out / "B" / "P01" / "cloudmask_P01_day01.ncdf", a, {"ls": 11.0, "mars_year": 28}, threshold=0.5)
    write_mask(out / "A" / "P01" / "cloudmask_nodaykey.ncdf", a, {"ls": 12.0, "mars_year": 28}, threshold=0.5)
    shutil.copy(first, out / "A" / "P01" / "cloudmask_P01_day01.nc")  # the same map as .nc beside .ncdf
    shutil.copy(first, out / "A" / "P01" / "cloudmask_P01_day01_v2.ncdf")  # and a renamed copy
    folder = collect([out])
    assert len(folder.stats.days) == 3, [d.path for d in folder.stats.days]
    assert len(folder.errors) == 2 and all("the same map as" in e for e in folder.errors), folder.errors
    assert any(str(first.with_suffix(".nc")) in e for e in folder.errors)
    assert all(str(first) in e or str(first.with_suffix(".nc")) in e for e in folder.errors)
    cube = build_cube(out, tmp_path / "cube.nc")
    assert cube.steps == 3 and len(cube.errors) == 2
    from_cube = collect([cube.path])
    assert from_cube.errors == [] and len(from_cube.stats.days) == 3
    np.testing.assert_array_equal(from_cube.stats.cloudy_days, folder.stats.cloudy_days)
    np.testing.assert_array_equal(from_cube.stats.valid_days, folder.stats.valid_days)
    both = collect([out, cube.path])  # an OUT and its own cube: every map still once
    assert len(both.stats.days) == 3 and int(both.stats.valid_days.max()) == 3
    assert len(both.errors) == 5 and all("the same map as" in e for e in both.errors)


@pytest.mark.parametrize("edit", [5.0, float("nan"), -5.0])
def test_a_mask_edited_out_of_range_or_to_nan_is_refused_by_name(tmp_path, edit):
    """Issue 32 item 8: a mask edited to 5.0 or NaN everywhere was 100 % cloud and 100 % valid."""
    import netCDF4
    from typer.testing import CliRunner

    from mars_cloudmask.infer.science.stack import build_cube

    root = write_case(tmp_path / "run")
    bad = root / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day04.ncdf"
    write_odd_mask(bad, (MAP_HEIGHT, MAP_WIDTH), {"solar_longitude": 30.0, "mars_year": 28, "threshold": 0.5})
    with netCDF4.Dataset(bad, "a") as ds:
        ds["cloudmask"][:] = np.full((MAP_HEIGHT, MAP_WIDTH), edit, np.float32)
    run = collect([root])
    assert len(run.stats.days) == 3 and len(run.errors) == 1
    assert str(bad) in run.errors[0] and ("NaN" in run.errors[0] or "outside [0, 1]" in run.errors[0])
    cube = build_cube(root, tmp_path / "cube.nc")
    assert cube.steps == 3 and len(cube.errors) == 1 and str(bad) in cube.errors[0]
    res = CliRunner().invoke(stats_app(), [str(root), "--out", str(tmp_path / "s.nc")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "cloudmask_P01_day04.ncdf" in res.output


def test_cm_stats_on_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """Issue 32 item 15: a full disk gave two chained tracebacks (the write's error, then the
    dataset's close failing with an HDF error)."""
    import errno

    import netCDF4
    from typer.testing import CliRunner


    root = write_case(tmp_path / "run")
    s = collect([root]).stats
    real = netCDF4.Dataset

    class FullDisk:
        """A dataset whose variables do not fit and whose close then fails (pure Python: a
        subclass of netCDF4.Dataset crashes the interpreter when it is collected)."""

        def __init__(self, *args, **kwargs):
            self._ds = real(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self._ds, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()
            return False

        def createVariable(self, *args, **kwargs):
            if args[0] == "valid_days":
                raise OSError(errno.ENOSPC, "No space left on device")
            return self._ds.createVariable(*args, **kwargs)

        def close(self):
            self._ds.close()
            raise RuntimeError("NetCDF: HDF error")

    def dataset(*args, **kwargs):  # reading works; only the file being written is full
        mode = args[1] if len(args) > 1 else kwargs.get("mode", "r")
        return FullDisk(*args, **kwargs) if mode == "w" else real(*args, **kwargs)

    class FullFile:
        """What ``open(tmp, "wb")`` gives on a full disk: the write fails."""

        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

    out = tmp_path / "stats" / "s.nc"
    from mars_cloudmask.infer import netcdf as netcdf_module  # where the in-memory image is written out

    for target, name, fake in [(netCDF4, "Dataset", dataset), (netcdf_module, "open", FullFile)]:
        with monkeypatch.context() as m:
            m.setattr(target, name, fake, raising=False)
            with pytest.raises(OSError) as info:
                write_stats(s, out)
            assert info.value.errno == errno.ENOSPC and str(out) in str(info.value), info.value
            res = CliRunner().invoke(stats_app(), [str(root), "--out", str(out)])
        assert res.exit_code == 1 and isinstance(res.exception, (SystemExit, type(None))), res.exception
        lines = [ln for ln in res.output.splitlines() if "error" in ln]
        assert len(lines) == 1 and str(out) in lines[0] and "No space left on device" in lines[0], res.output
        assert not out.exists() and (not out.parent.exists() or list(out.parent.iterdir()) == [])  # no partial file


def test_cm_stats_refuses_a_threshold_outside_0_1(tmp_path):
    """Issue 32 item 9: cm-stats --threshold 47 was taken."""
    from typer.testing import CliRunner

    res = CliRunner().invoke(stats_app(), [str(tmp_path), "--out", str(tmp_path / "s.nc"), "--threshold", "47"])
    assert res.exit_code == 2 and "--threshold 47" in res.output and "[0, 1]" in res.output, res.output
    assert not (tmp_path / "s.nc").exists()
