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


def test_cm_stack_shows_progress_mask_by_mask(tmp_path, monkeypatch):
    """cm-stack (100 s for 115 masks) printed only its last line (issue 35)."""
    import mars_cloudmask.infer.science.cli as science_cli

    updates: list[tuple[int | None, str]] = []

    class Bar:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def add_task(self, description, total=None):
            updates.append((total, description))
            return 0

        def update(self, task, advance=0, description="", **kw):
            updates.append((advance, description))

    monkeypatch.setattr(science_cli, "_progress", lambda: Bar())
    out = tmp_path / "OUT"
    write_prob_run(out, 3)
    res = runner.invoke(app(stack_command), [str(out), "--out", str(tmp_path / "cube.nc")])
    assert res.exit_code == 0, res.output
    assert updates[0] == (3, "stacking masks")  # the total is known before the first mask
    assert [a for a, _ in updates[1:]] == [1, 1, 1] and all(d.startswith("P01_day") for _, d in updates[1:])
