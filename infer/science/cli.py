"""Command lines of the science tools: ``cm-eval``, ``cm-view``, ``cm-stats``.

Thin Typer wrappers: each command checks its output paths (:mod:`.outputs`), calls one
library function (:func:`.evaluate.evaluate`, :func:`.view.view_mask`, :func:`.stats.collect`)
and prints.  Errors are one line per file on stderr, never a traceback.  Exit status: 0 all
done; 1 some file could not be used (the others were); 2 a bad option or output path, or a
missing ``science`` extra, found before anything was read or written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


def _fail(message: str) -> None:
    """One line on stderr; the message is printed as is (a ``[science]`` or a path with brackets is not markup)."""
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def _check_outputs(files: dict[str, Path | None], folders: dict[str, Path | None] | None = None) -> None:
    """Exit 2 with one line if an output file or folder cannot be written (before any work)."""
    from .outputs import OutputPathError, check_output_file, check_output_folder

    try:
        for what, path in files.items():
            if path is not None:
                check_output_file(path, what)
        for what, path in (folders or {}).items():
            if path is not None:
                check_output_folder(path, what)
    except OutputPathError as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None


def _check_threshold(threshold: float | None) -> None:
    """Exit 2 with one line unless ``--threshold`` is absent or a number in [0, 1] (``47`` is not 0.47)."""
    if threshold is not None and not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        _fail(f"--threshold {threshold:g}: must be a cloud probability in [0, 1] (e.g. 0.47)")
        raise typer.Exit(2)


def _need_matplotlib(command: str) -> None:
    """Exit 2 with one line naming the ``science`` extra when matplotlib cannot be imported."""
    from .view import MissingExtraError, require_matplotlib

    try:
        require_matplotlib(command)
    except MissingExtraError as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None


def _fmt(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


# --------------------------------------------------------------------------- cm-eval
def score_table(result, split, title: str) -> tuple[Table, str | None]:
    """cm-eval's table of per-day and pooled scores (with each day's part in ``split``, a
    :class:`~.split.ModelSplit`, when known), and the note on days the model has seen.

    A compact box with collapsed padding: day, split and the six scores fit 80 columns (a
    pipe's width) with every header whole."""
    from .split import split_note

    table = Table(
        title=title, box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False,
        title_justify="left",
    )
    keys = ["f1", "precision", "recall", "accuracy", "iou", "coverage"]
    table.add_column("day", no_wrap=True)
    if split is not None:
        table.add_column("split", no_wrap=True, min_width=5)
    for k in keys:
        table.add_column(k, justify="right", no_wrap=True, min_width=len(k))
    role = [] if split is None else [""]
    for d in result.days:
        table.add_row(
            d.day, *([split.role(d.day) or "-"] if split is not None else []), *(_fmt(d.metrics[k]) for k in keys)
        )
    pooled = result.pooled_metrics()
    table.add_row("pooled", *role, *(_fmt(pooled[k]) for k in keys), style="bold")
    scored = [d.day for d in result.days]
    note = split_note(scored, split) if split is not None else None
    table.caption = f"{len(result.days)} days; pooled = from the summed pixel counts"
    if split is not None:
        table.caption += f"; split: the day's part in the split of {split.model}"
    if split is not None and note is not None and len(split.seen(scored)) < len(scored):
        unseen = result.unseen_pooled(split).metrics()
        table.add_row("pooled unseen", *role, *(_fmt(unseen[k]) for k in keys), style="bold")
        table.caption += "; pooled unseen: the days it neither trained nor was validated on"
    return table, note


def eval_command(
    pred: Path = typer.Argument(..., help="Predicted masks: a .ncdf file or a folder (searched recursively)."),
    labels: Path = typer.Argument(
        ..., help="Reference masks: labels/P01 (values > 0 = cloud) or reference/ masks (0/1)."
    ),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write per-day and pooled figures as JSON here."),
    png: Optional[Path] = typer.Option(None, "--png", help="Folder for one picture per day (TP/FP/FN over the map)."),
    threshold: Optional[float] = typer.Option(
        None, help="Cloud threshold for the predictions (default: each file's 'threshold' attribute, else 0.912)."
    ),
    days: Optional[str] = typer.Option(
        None, help="Only these days: names, numbers or ranges, e.g. '18-20' or 'P01_day16,P01_day17'."
    ),
    maps: list[Path] = typer.Option(
        [],
        "--maps",
        help="Where to find the maps for --png (mdgm/ tree, labels/P01/mdgms); default: JPEGs under PRED and LABELS.",
    ),
    model: Optional[Path] = typer.Option(
        None,
        "--model",
        help="The ONNX model that made PRED, to mark the scored days it trained or was validated on "
        "(default: the shipped model whose SHA-256 the masks carry, if any).",
    ),
) -> None:
    """Score predicted cloud masks against reference masks, pooled and per day, over pixels valid in both.

    When the model is known, the days it trained or was validated on are marked in the
    table and said in one line, and a second pooled row covers the other days only.
    """
    from ..runtime import ModelError
    from .evaluate import evaluate, write_json
    from .masks import find_masks, select_days
    from .split import split_for_masks

    _check_threshold(threshold)
    for root in (pred, labels):
        if not root.exists():
            _fail(f"{root}: no such file or folder")
            raise typer.Exit(2)
    _check_outputs({"--json": json_out}, {"--png": png})
    if png is not None:
        _need_matplotlib("cm-eval --png")
    try:
        wanted = select_days(days, find_masks(labels))
    except ValueError as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    pred_files = find_masks(pred)
    try:
        split = split_for_masks([pred_files[d] for d in wanted if d in pred_files], model)
    except ModelError as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    map_roots = maps or [p for p in (pred, labels) if p.is_dir()]
    with _progress() as bar:
        task = bar.add_task("scoring", total=len(wanted))
        result = evaluate(
            pred,
            labels,
            threshold=threshold,
            days=wanted,
            png_dir=png,
            map_roots=map_roots,
            progress=lambda day: bar.update(task, advance=1, description=day),
        )
    for line in result.errors:
        _fail(line)
    if not result.days:
        _fail(f"{pred}: no prediction matches a reference day in {labels}")
        raise typer.Exit(1)
    table, note = score_table(result, split, f"{pred} vs {labels}")
    console.print(table)
    if note is not None:
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False, soft_wrap=True)
    if result.missing_pred:
        err_console.print(
            f"no prediction for {len(result.missing_pred)} reference day(s): {', '.join(result.missing_pred)}"
        )
    if json_out is not None:
        try:
            write_json(result, json_out, split)
        except OSError as exc:
            _fail(f"--json {json_out}: cannot write ({exc.strerror or exc})")
            raise typer.Exit(1) from None
        console.print(f"wrote {json_out}", highlight=False, soft_wrap=True, markup=False)
    if result.errors:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- cm-view
def view_command(
    mask: Path = typer.Argument(..., help="A cloud-mask file (.ncdf)."),
    map_path: Optional[Path] = typer.Option(None, "--map", help="The map JPEG to draw under the mask."),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        help="PNG to write (default: <mask name>_view.png beside the mask, leaving cm-infer's "
        "quicklook <mask name>.png alone).",
    ),
    threshold: Optional[float] = typer.Option(None, help="Cloud threshold (default: the file's, else 0.912)."),
    probability: bool = typer.Option(
        False, "--probability", help="Show the cloud probability with a colour bar instead of the binary mask."
    ),
) -> None:
    """Render one mask with latitude/longitude ticks, clouds tinted over the map if given."""
    from ..maps import MapError
    from .masks import MaskShapeError, MaskValueError
    from .view import default_view_path, draw_view, read_view

    _check_threshold(threshold)
    if not mask.is_file():
        _fail(f"{mask}: no such file")
        raise typer.Exit(2)
    what = "--out" if out is not None else "the default output (choose another with --out)"
    out = out or default_view_path(mask)
    _check_outputs({what: out})
    _need_matplotlib("cm-view")
    try:
        view = read_view(mask, map_path, threshold)
    except (MapError, MaskShapeError, MaskValueError) as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    except (OSError, KeyError, ValueError) as exc:
        _fail(f"{mask}: cannot read mask ({exc})")
        raise typer.Exit(1) from None
    try:
        draw_view(out, view, probability)
    except ValueError as exc:
        _fail(f"{mask}: {exc}")
        raise typer.Exit(2) from None
    except OSError as exc:
        _fail(f"{what} {out}: cannot write ({exc.strerror or exc})")
        raise typer.Exit(1) from None
    console.print(f"wrote {out}", highlight=False, soft_wrap=True, markup=False)


# --------------------------------------------------------------------------- cm-stats
def stats_command(
    masks: list[Path] = typer.Argument(..., help="Mask files, folders (searched recursively) or cubes from cm-stack."),
    out: Path = typer.Option(..., "--out", help="The statistics NetCDF file to write."),
    png: Optional[Path] = typer.Option(None, "--png", help="Folder for cloud_frequency.png and cloud_ls_latitude.png."),
    ls_table: list[Path] = typer.Option(
        [],
        "--ls-table",
        help="_ls.txt files or folders holding them (e.g. the mdgm/ "
        "tree), for masks without 'solar_longitude'/'mars_year' attributes.",
    ),
    threshold: Optional[float] = typer.Option(None, help="Cloud threshold (default: each file's, else 0.912)."),
    labels: bool = typer.Option(False, "--labels", help="The masks are labels: cloud where value > 0."),
    lat_bin: float = typer.Option(5.0, help="Latitude band width of the Hovmöller table, degrees."),
    ls_bin: float = typer.Option(5.0, help="Ls bin width of the Hovmöller table, degrees."),
    min_valid_days: int = typer.Option(
        3, "--min-valid-days", help="Fewest valid days for a pixel's frequency (fewer: undefined, grey)."
    ),
) -> None:
    """Cloud occurrence frequency per pixel and zonal-mean cloud fraction per latitude band and Ls bin."""
    from ..netcdf import find_mask_files
    from .stack import cube_steps
    from .stats import check_bins, collect, plot_frequency, plot_hovmoller, write_stats

    _check_threshold(threshold)
    try:
        check_bins(lat_bin, ls_bin)
    except ValueError as exc:
        _fail(f"--{str(exc).replace('_', '-', 1)}")
        raise typer.Exit(2) from None
    if min_valid_days < 1:
        _fail(f"--min-valid-days {min_valid_days}: must be at least 1")
        raise typer.Exit(2)
    _check_outputs({"--out": out}, {"--png": png})
    if png is not None:
        _need_matplotlib("cm-stats --png")
    missing = [m for m in masks if not m.exists()]
    for m in missing:
        _fail(f"{m}: no such file or folder")
    present = [m for m in masks if m.exists()]
    total = sum(len(find_mask_files(m)) if m.is_dir() else (cube_steps(m) or 1) for m in present)
    with _progress() as bar:
        task = bar.add_task("reading", total=total)
        try:
            run = collect(
                present,
                ls_table=ls_table,
                threshold=threshold,
                label=labels,
                lat_bin=lat_bin,
                ls_bin=ls_bin,
                progress=lambda name: bar.update(task, advance=1, description=name),
                min_valid_days=min_valid_days,
            )
        except Exception as exc:  # noqa: BLE001 - a bad --ls-table is one line, not a traceback
            _fail(str(exc))
            raise typer.Exit(2) from None
    for line in run.errors:
        _fail(line)
    for line in run.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {escape(line)}", highlight=False, soft_wrap=True)
    stats = run.stats
    if not stats.days:
        _fail("no mask could be used")
        raise typer.Exit(1)
    try:
        write_stats(stats, out)
    except OSError as exc:  # one line naming the file (write_stats wraps netCDF's errors too)
        _fail(f"--out {exc.strerror or exc}")
        raise typer.Exit(1) from None
    console.print(
        f"wrote {out}: {len(stats.days)} days, Ls {min(d.ls for d in stats.days):.1f}-"
        f"{max(d.ls for d in stats.days):.1f}, Mars years {stats.mars_years}"
        + (" pooled" if len(stats.mars_years) > 1 else "")
        + f", threshold {stats.threshold_text()}, frequency where valid on >= {min_valid_days} days",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    if png is not None:
        for plot, name in ((plot_frequency, "cloud_frequency.png"), (plot_hovmoller, "cloud_ls_latitude.png")):
            try:
                path = plot(stats, png / name)
            except OSError as exc:
                _fail(f"--png {png / name}: cannot write ({exc.strerror or exc})")
                raise typer.Exit(1) from None
            console.print(f"wrote {path}", highlight=False, soft_wrap=True, markup=False)
    if run.errors or missing:
        raise typer.Exit(1)


def _run(command) -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(command)
    app()


def eval_main() -> None:
    """Entry point of ``cm-eval``."""
    _run(eval_command)


def view_main() -> None:
    """Entry point of ``cm-view``."""
    _run(view_command)


def stats_main() -> None:
    """Entry point of ``cm-stats``."""
    _run(stats_command)
