"""Command lines ``cm-stack`` (a run's masks -> one season cube) and ``cm-report`` (a run ->
``OUT/index.html``).

Thin Typer shells over :func:`stack.build_cube` and :func:`report.write_report`.  Errors are
one line per file on stderr; exit status 0 when everything was used, 1 when some masks (cm-stack)
or run-record values (cm-report) were left out (the cube or page holds the rest), 2 when nothing
could be written.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


def _shown(text: str) -> str:
    """``text`` safe to print on one line: undecodable name bytes as U+FFFD, control characters
    as escapes, rich markup (``[bold]`` in a folder name) shown as written."""
    from .report import printable, readable

    return escape(printable(readable(text)))


def _fail(message: str) -> None:
    err_console.print(f"[red]error:[/red] {_shown(message)}", highlight=False, soft_wrap=True)


def _output_problem(out: Path) -> str | None:
    """Why ``out`` cannot be a file to create, or None."""
    if out.is_dir():
        return f"{out}: is a folder, give a file name ending in .nc"
    for parent in out.parents:
        if parent.exists():
            return None if parent.is_dir() else f"{out}: {parent} is a file, not a folder"
    return None


def stack_command(
    run: Path = typer.Argument(..., help="A cm-infer output folder (searched recursively for .ncdf/.nc masks)."),
    out: Path = typer.Option(..., "--out", "-o", help="The cube to write, a NetCDF-4 file ending in .nc."),
    ls_table: list[Path] = typer.Option(
        [], "--ls-table", help="_ls.txt files or folders, for masks without Ls attributes (the original's); repeatable."
    ),
    time_chunk: int = typer.Option(16, help="Steps per chunk along time (and masks held in memory while building)."),
) -> None:
    """Stack a run's masks into one chunked cube (time, latitude, longitude), uint8, Ls and Mars year as coordinates."""
    from .stack import build_cube

    if not run.is_dir():
        _fail(f"{run}: no such folder")
        raise typer.Exit(2)
    problem = _output_problem(out)
    if problem is not None:
        _fail(problem)
        raise typer.Exit(2)
    from ..netcdf import find_mask_files
    from .cli import _progress

    try:
        with _progress() as bar:
            task = bar.add_task("stacking masks", total=len(find_mask_files(run)))

            def advance(name: str) -> None:
                bar.update(task, advance=1, description=_shown(name))

            result = build_cube(run, out, ls_table=ls_table, time_chunk=time_chunk, progress=advance)
    except (ValueError, OSError) as exc:
        _fail(" ".join(str(exc).split()))
        raise typer.Exit(2) from None
    for line in result.errors:
        _fail(line)
    if result.path is None:
        raise typer.Exit(2)
    console.print(
        f"{result.path}: {result.steps} steps, {result.size_bytes / 1e6:.1f} MB, {result.seconds:.1f} s",
        highlight=False,
    )
    raise typer.Exit(1 if result.errors else 0)


def report_command(
    run: Path = typer.Argument(..., help="A cm-infer output folder."),
) -> None:
    """Write RUN/index.html: one row per map, failures, cloud fraction against Ls, the model and provider."""
    from .cli import _progress
    from .report import report_page

    if not run.is_dir():
        _fail(f"{run}: no such folder")
        raise typer.Exit(2)
    try:
        with _progress() as bar:
            task = bar.add_task("reading masks", total=None)

            def advance(name: str, total: int) -> None:
                bar.update(task, advance=1, total=total, description=_shown(name))

            path, problems = report_page(run, progress=advance)
    except OSError as exc:
        _fail(f"{run}: cannot write the report ({' '.join(str(exc).split())})")
        raise typer.Exit(2) from None
    for line in problems:
        _fail(line)
    console.print(_shown(str(path)), highlight=False, soft_wrap=True)
    raise typer.Exit(1 if problems else 0)


def _run(command) -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(command)
    app()


def stack_main() -> None:
    """Entry point of ``cm-stack``."""
    _run(stack_command)


def report_main() -> None:
    """Entry point of ``cm-report``."""
    _run(report_command)
