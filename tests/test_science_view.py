"""cm-view: one mask drawn with latitude/longitude ticks (matplotlib, the ``science`` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mars_cloudmask.infer.geometry import INVALID
from mars_cloudmask.infer.science.view import view_mask


def test_cm_view_writes_a_figure_with_the_map(tmp_path, synthetic_map):
    from mars_cloudmask.infer.netcdf import write_mask
    from tests.synthetic import write_map

    mask = np.where(synthetic_map[..., 2] > 200, 1.0, 0.0).astype(np.float32)
    mask[synthetic_map[..., 2] < 30] = INVALID
    mask_path = write_mask(tmp_path / "cloudmask_P01_day01.ncdf", mask, {"threshold": 0.5}, binary=True)
    map_path = write_map(tmp_path / "P01_day01_zequat.jpg", synthetic_map)
    out = view_mask(tmp_path / "view.png", mask_path, map_path)
    with Image.open(out) as im:
        assert im.size[0] >= 1000  # a full figure with axes, not the bare map
    no_map = view_mask(tmp_path / "view_nomap.png", mask_path)
    assert no_map.stat().st_size > 10_000


def test_cm_view_command_reports_a_bad_file_in_one_line(tmp_path):
    import typer
    from typer.testing import CliRunner

    from mars_cloudmask.infer.science.cli import view_command

    app = typer.Typer()
    app.command()(view_command)
    bad = tmp_path / "cloudmask_P01_day01.ncdf"
    bad.write_bytes(b"not netcdf")
    result = CliRunner().invoke(app, [str(bad), "--out", str(tmp_path / "v.png")])
    assert result.exit_code == 1
    assert "cloudmask_P01_day01.ncdf" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "v.png").exists()


def view_app():
    import typer

    from mars_cloudmask.infer.science.cli import view_command

    app = typer.Typer()
    app.command()(view_command)
    return app


def small_mask(tmp_path) -> Path:
    from mars_cloudmask.infer.geometry import MAP_HEIGHT, MAP_WIDTH
    from mars_cloudmask.infer.netcdf import write_mask

    mask = np.zeros((MAP_HEIGHT, MAP_WIDTH), np.float32)
    mask[:100] = 1.0
    return write_mask(tmp_path / "masks" / "cloudmask_P01_day01.ncdf", mask, {"threshold": 0.5}, binary=True)


@pytest.mark.parametrize("where", ["under-file", "is-folder"])
def test_cm_view_refuses_an_unwritable_out_in_one_line(tmp_path, where):
    from typer.testing import CliRunner

    mask = small_mask(tmp_path)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    out = a_file / "v.png" if where == "under-file" else tmp_path
    result = CliRunner().invoke(view_app(), [str(mask), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(out) in lines[0] and "Traceback" not in result.output, result.output


def test_cm_view_writes_beside_the_mask_by_default_not_here(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    mask = small_mask(tmp_path)
    quicklook = mask.with_suffix(".png")
    quicklook.write_bytes(b"cm-infer's quicklook")
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    result = CliRunner().invoke(view_app(), [str(mask)])
    assert result.exit_code == 0, result.output
    assert list(here.iterdir()) == []
    view = mask.parent / "cloudmask_P01_day01_view.png"
    assert view.stat().st_size > 10_000 and str(view) in result.output
    assert quicklook.read_bytes() == b"cm-infer's quicklook"  # cm-infer's quicklook is left alone


def test_cm_view_without_matplotlib_names_the_science_extra(tmp_path, monkeypatch):
    import sys

    from typer.testing import CliRunner

    mask = small_mask(tmp_path)
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    result = CliRunner().invoke(view_app(), [str(mask), "--out", str(tmp_path / "v.png")])
    assert result.exit_code == 2  # a set-up error, found before any work
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "mars-cloudmask[science]" in lines[0], result.output
    assert not (tmp_path / "v.png").exists()


def test_cm_view_of_a_wrong_shaped_mask_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from tests.test_science_stats import write_odd_mask

    odd = write_odd_mask(tmp_path / "cloudmask_P01_day01.ncdf", (100, 200), {})
    result = CliRunner().invoke(view_app(), [str(odd), "--out", str(tmp_path / "v.png")])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "(100, 200)" in lines[0] and "cloudmask_P01_day01.ncdf" in lines[0], result.output
    assert not (tmp_path / "v.png").exists()


def test_cm_view_refuses_a_mask_edited_to_nan_but_draws_a_label_file(tmp_path):
    """Issue 32 item 8: the values are read, not only the shape; labels (numbers > 1) still draw."""
    import netCDF4
    from typer.testing import CliRunner

    from mars_cloudmask.infer.geometry import MAP_HEIGHT, MAP_WIDTH
    from tests.test_science_stats import write_odd_mask

    bad = write_odd_mask(tmp_path / "cloudmask_P01_day01.ncdf", (MAP_HEIGHT, MAP_WIDTH), {"threshold": 0.5})
    with netCDF4.Dataset(bad, "a") as ds:
        ds["cloudmask"][:] = np.full((MAP_HEIGHT, MAP_WIDTH), np.nan, np.float32)
    res = CliRunner().invoke(view_app(), [str(bad), "--out", str(tmp_path / "v.png")])
    assert res.exit_code == 1 and "Traceback" not in res.output and "NaN" in res.output, res.output
    assert not (tmp_path / "v.png").exists()
    label = write_odd_mask(tmp_path / "cloudmask_P01day02.ncdf", (MAP_HEIGHT, MAP_WIDTH), {})
    with netCDF4.Dataset(label, "a") as ds:
        values = np.full((MAP_HEIGHT, MAP_WIDTH), INVALID, np.float32)
        values[:100] = 0.0
        values[:10] = 80.0
        ds["cloudmask"][:] = values
    assert view_mask(tmp_path / "label.png", label).is_file()


def test_the_title_names_the_map_its_mars_year_and_ls(tmp_path):
    """cm-view's title had the file name and cloud share only (issue 35)."""
    from mars_cloudmask.infer.netcdf import write_mask
    from mars_cloudmask.infer.science.view import read_view, view_title

    assert view_title("P01_day16", 28, 133.44, 0.1972, 0.47) == (
        "P01_day16  MY 28  Ls 133.4: cloud 19.7 % of valid pixels (threshold 0.47)"
    )
    assert view_title("x", None, None, 0.5, 0.5) == "x: cloud 50.0 % of valid pixels (threshold 0.5)"
    prob = np.full((1801, 3600), 0.2, np.float32)
    prob[:, :900] = 0.9
    path = write_mask(tmp_path / "cloudmask_P01_day16.ncdf", prob, {"solar_longitude": 133.4, "mars_year": 28},
                      threshold=0.5)
    view = read_view(path)
    assert view.title == "cloudmask_P01_day16.ncdf  MY 28  Ls 133.4: cloud 25.0 % of valid pixels (threshold 0.5)"
    np.testing.assert_array_equal(view.probability, prob)  # the values, for --probability


def test_cm_view_probability_draws_a_colour_bar_and_refuses_a_binary_mask(tmp_path):
    from typer.testing import CliRunner

    from mars_cloudmask.infer.netcdf import write_mask
    from mars_cloudmask.infer.science.cli import view_command
    from mars_cloudmask.infer.science.view import draw_view, read_view

    ramp = np.tile(np.linspace(0, 1, 3600, dtype=np.float32), (1801, 1))  # probability rising to the east
    path = write_mask(tmp_path / "cloudmask_P01_day02.ncdf", ramp, {"solar_longitude": 10.0}, threshold=0.5)
    view = read_view(path)
    binary_png = draw_view(tmp_path / "b.png", view)
    prob_png = draw_view(tmp_path / "p.png", view, probability=True)
    with Image.open(binary_png) as b, Image.open(prob_png) as p:
        pb, pp = np.asarray(b.convert("RGB")).astype(int), np.asarray(p.convert("RGB")).astype(int)
    # the probability picture has a viridis colour bar: yellow (high) and purple (low) pixels
    yellow = ((pp[..., 0] > 200) & (pp[..., 1] > 200) & (pp[..., 2] < 80)).sum()
    purple = (np.abs(pp - np.array([68, 1, 84])).sum(axis=-1) < 60).sum()  # viridis at 0, alpha-blended
    assert yellow > 500 and purple > 50
    assert ((pb[..., 0] > 200) & (pb[..., 1] > 200) & (pb[..., 2] < 80)).sum() < 50  # not in the binary view
    binary = write_mask(tmp_path / "cloudmask_P01_day03.ncdf", (ramp > 0.5).astype(np.float32), {}, binary=True)
    app = typer_app(view_command)
    result = CliRunner().invoke(app, [str(binary), "--probability", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "no probability to show" in result.output
    assert not (tmp_path / "x.png").exists()


def typer_app(command):
    import typer

    app = typer.Typer(add_completion=False)
    app.command()(command)
    return app
