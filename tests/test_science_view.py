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
