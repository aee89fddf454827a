"""cm-stack and cm-report as a user runs them (Typer's runner, the same commands as the scripts)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from mars_cloudmask.infer.science.cube_cli import report_command, stack_command
from tests.test_science_report import make_run
from tests.test_science_stack import write_prob_run

runner = CliRunner()


def app(command) -> typer.Typer:
    a = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    a.command()(command)
    return a


def test_cm_stack_builds_the_cube_and_names_the_masks_it_left_out(tmp_path):
    out = tmp_path / "OUT"
    write_prob_run(out, 2)
    res = runner.invoke(app(stack_command), [str(out), "--out", str(tmp_path / "cube.nc")])
    assert res.exit_code == 0, res.output
    assert "2 steps" in res.output and (tmp_path / "cube.nc").is_file()
    (out / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day07.ncdf").write_bytes(b"")
    res = runner.invoke(app(stack_command), [str(out), "--out", str(tmp_path / "cube2.nc")])
    assert res.exit_code == 1 and "cloudmask_P01_day07.ncdf: 0 bytes" in res.output
    assert "Traceback" not in res.output and (tmp_path / "cube2.nc").is_file()


def test_cm_stack_refuses_bad_outputs_with_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "OUT"
    write_prob_run(out, 1)
    afile = tmp_path / "afile"
    afile.write_text("x")
    for target, words in [
        (tmp_path / "cube.zarr", "ending in .nc"),
        (tmp_path, "is a folder"),
        (afile / "cube.nc", "is a file, not a folder"),
    ]:
        res = runner.invoke(app(stack_command), [str(out), "--out", str(target)])
        assert res.exit_code == 2 and words in res.output and "Traceback" not in res.output, res.output
    res = runner.invoke(app(stack_command), [str(tmp_path / "absent"), "--out", str(tmp_path / "c.nc")])
    assert res.exit_code == 2 and "no such folder" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OUT", "afile"]


def test_cm_report_writes_index_html(tmp_path):
    out = make_run(tmp_path / "OUT")
    res = runner.invoke(app(report_command), [str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "index.html").is_file() and "index.html" in res.output
    assert "P01_day03" in (out / "index.html").read_text(encoding="utf-8")
    res = runner.invoke(app(report_command), [str(tmp_path / "absent")])
    assert res.exit_code == 2 and "no such folder" in res.output
