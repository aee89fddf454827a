"""cm-view: one mask drawn with latitude/longitude ticks (matplotlib, the ``science`` extra)."""

from __future__ import annotations

import numpy as np
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
    from typer.testing import CliRunner

    from mars_cloudmask.infer.science.cli import view_command
    import typer

    app = typer.Typer()
    app.command()(view_command)
    bad = tmp_path / "cloudmask_P01_day01.ncdf"
    bad.write_bytes(b"not netcdf")
    result = CliRunner().invoke(app, [str(bad), "--out", str(tmp_path / "v.png")])
    assert result.exit_code == 1
    assert "cloudmask_P01_day01.ncdf" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "v.png").exists()
