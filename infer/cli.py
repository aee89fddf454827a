"""``cm-infer``: folders of MDGMs in, NetCDF cloud masks out (a thin shell over :mod:`engine`).

Exit status: 0 when every map was written or skipped, 1 when any map or input failed (or the
run stopped on a full disk), 2 when the run could not start (bad model, unwritable --out, bad
options: nothing is written then), 128 + N when stopped by signal N (130 SIGINT, 143 SIGTERM).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import typer

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0], rich_markup_mode=None)

EXIT_FAILED = 1
EXIT_FATAL = 2


def _version_callback(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"cm-infer (mars-cloudmask) {__version__}")
        raise typer.Exit()


def _fatal(message: str) -> "typer.Exit":
    typer.echo(f"cm-infer: error: {' '.join(message.split())}", err=True)
    return typer.Exit(EXIT_FATAL)


def _progress():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Maps per second over the run so far."""

        def render(self, task) -> Text:
            elapsed = task.elapsed or 0.0
            rate = task.completed / elapsed if elapsed > 0 else 0.0
            return Text(f"{rate:.2f} maps/s")

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )


LOW_SPACE_BYTES = 16 << 20
"""Free bytes under which an "HDF error" while writing is reported as a full disk (a mask is
2-6 MB, a composite up to 30 MB)."""


def free_bytes(path: str | Path) -> int | None:
    """Bytes free to this user on the filesystem of ``path`` (its nearest existing folder); None if unknown."""
    import os

    folder = Path(path)
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def explain_failure(reason: str | None, output: str | Path | None, free=None) -> str | None:
    """``reason``, with ``disk full`` and the file said when netCDF-C's "HDF error" hides a full
    disk (``free(output)``, default :func:`free_bytes`, below :data:`LOW_SPACE_BYTES`)."""
    if output is None or not reason or "HDF error" not in reason:
        return reason
    left = (free or free_bytes)(output)
    if left is None or left >= LOW_SPACE_BYTES:
        return reason
    return f"{reason}: disk full writing {output} ({left / 1e6:.1f} MB free there)"


def composite_lines(report, shown: int = 10) -> list[str]:
    """One line per background composite of the run's first pass (built, reused, given; failed
    ones show as the failures of their maps), with its notes and the maps it left out."""
    lines = []
    for c in report.composites:
        if c.status == "failed":
            continue
        if c.status == "given":
            lines.append(f"background given: {c.path} (--background), for the maps of {c.folder}")
            continue
        left_out = f", {len(c.skipped)} unreadable maps left out" if c.skipped else ""
        lines.append(f"background {c.status}: {c.path} ({c.n_maps} maps of {c.folder}{left_out}, {c.seconds:.1f} s)")
        lines += [f"note: {c.path}: {n}" for n in c.notes]
    if len(lines) > shown:
        lines = lines[:shown] + [f"... and {len(lines) - shown} more background lines: see the run record"]
    from .engine import shown as escaped

    return [escaped(line) for line in lines]


FROM_EXISTING = " made from the existing mask"
"""The end of the note the engine gives a map whose rerun only made its quicklook / copies."""


def from_existing_counts(report) -> dict[str, int]:
    """``{"quicklook": 25}``: done maps that a rerun did not predict, only gave a quicklook or
    map copies from their existing mask (their timings hold ``extras_s`` alone), by what was made."""
    made: dict[str, int] = {}
    for r in report.by_status("done"):
        if "extras_s" in r.timings and "read_s" not in r.timings:
            what = next((n.split(FROM_EXISTING)[0] for n in r.notes if FROM_EXISTING in n), "extras")
            made[what] = made.get(what, 0) + 1
    return made


def summary_lines(report, model, wall_s: float) -> list[str]:
    """The end-of-run summary: counts, failures (one line each), provider, timing, record."""
    c = report.counts()
    made = from_existing_counts(report)
    done, skipped = c["done"] - sum(made.values()), c["skipped"]
    head = f"done {done}"
    for what, n in made.items():
        things = what.replace("quicklook", "quicklooks") if n != 1 else what
        head += f", {n} {things} from existing mask{'s' * (n != 1)}"
    head += f", skipped {skipped}" + (" (outputs exist; --overwrite to redo)" if skipped else "")
    head += f", failed {c['failed'] + len(report.input_errors)}"
    if report.not_processed:
        head += f", not processed {report.not_processed} (run the same command again to finish them)"
    lines = [head]
    if report.interrupted:
        lines.append(f"STOPPED by {report.interrupted}: finished maps are kept; the same command finishes the rest")
    if report.halted:
        lines.append(f"STOPPED: {report.halted}")
    # what really ran: the record's (a Dask run's workers), else this process's model
    provider = str(report.record.get("provider") or model.provider)
    precision = str(report.record.get("precision") or model.precision)
    session = report.record.get("model", {}).get("session_providers") or model.providers
    lines += [
        f"model {model.info.name} {model.info.version} on {provider.upper()} {precision} ({', '.join(session)})"
        + (" - loaded, nothing predicted" if made and not done else ""),
        f"wall {wall_s:.1f} s" + (f", {wall_s / done:.2f} s per map written" if done else ""),
    ]
    lines += composite_lines(report)
    lines += [f"note: {n}" for n in getattr(report, "notes", [])]
    from .engine import shown as escaped

    noted = [f"{escaped(r.source)}: {n}" for r in report.results for n in r.notes]
    lines += [f"note: {n}" for n in noted[:10]]
    failures = list(report.input_errors) + [explain_failure(r.reason, r.output) for r in report.by_status("failed")]
    shown = failures[:15]
    lines += [f"FAILED: {reason}" for reason in shown]
    if len(failures) > len(shown):
        lines.append(f"... and {len(failures) - len(shown)} more failures: see the run record")
    if report.record_error:
        lines.append(f"FAILED: {report.record_error}")
    elif report.record_path is not None:
        lines.append(f"run record: {report.record_path}")
    return lines


@app.command()
def infer(
    roots: Optional[List[Path]] = typer.Argument(
        None, help="Phase folders (P/), folders of phases, subphase folders or single .jpg maps."
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (OUT/<phase>/<subphase>/cloudmasks/)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="ONNX model (default: the shipped one)."),
    binary: bool = typer.Option(
        False, "--binary/--probability", help="Write 0/1 at the model's threshold, or probabilities."
    ),
    threshold: Optional[float] = typer.Option(
        None,
        "--threshold",
        help="Cloud threshold on the probability, 0 < T < 1 (default: the model's, from its metadata).",
    ),
    bounds: Optional[Tuple[int, int, int, int]] = typer.Option(
        None,
        "--bounds",
        metavar="XMIN XMAX YMIN YMAX",
        help="A fixed box (north-up px, exclusive max, four numbers separated by spaces) instead of Ls bounds.",
    ),
    polar_offset: Optional[float] = typer.Option(
        None,
        "--polar-offset",
        help="Move both Ls polar bounds this many degrees equatorwards (default: the model's metadata, else 3).",
    ),
    stitch: str = typer.Option("seamless", "--stitch", help="seamless | center (the original's) | blend."),
    batch_size: int = typer.Option(1, "--batch-size", help="Tiles per onnxruntime call."),
    tile_out: Optional[int] = typer.Option(
        None,
        "--tile-out",
        help="Output tile size, px (4 mod 16 for a depth-4 model, 4 mod its align in general); default: per stitch.",
    ),
    provider: str = typer.Option(
        "auto", "--provider", help="auto (CUDA, else OpenVINO, else onnxruntime CPU) | cuda | openvino | cpu."
    ),
    precision: str = typer.Option(
        "auto", "--precision", help="auto (bf16 where the CPU has native bf16, with OpenVINO) | fp32 | bf16."
    ),
    threads: Optional[int] = typer.Option(None, "--threads", help="onnxruntime intra-op threads (default: all cores)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo maps whose output exists (default: skip them)."),
    copy_maps: bool = typer.Option(
        False, "--copy-maps", help="Also copy maps to OUT/.../mdgms/ and the _ls.txt (the original's layout)."
    ),
    quicklook: bool = typer.Option(False, "--quicklook", help="Write a PNG quicklook beside each mask."),
    report: bool = typer.Option(False, "--report", help="Write OUT/index.html, a static page of the run (cm-report)."),
    suffix: str = typer.Option(
        ".ncdf", "--suffix", help="Mask file suffix: .ncdf (the original's names) or .nc (CF-clean names)."
    ),
    background: Optional[Path] = typer.Option(
        None,
        "--background",
        help="A background composite (NetCDF) for every map, instead of building each subphase's own "
        "(models whose channels need one; the maps of one folder).",
    ),
    dask: Optional[str] = typer.Option(
        None,
        "--dask",
        help="Run on Dask: local[:N] (N worker processes here), tcp://HOST:PORT or a scheduler JSON file.",
    ),
    doctor: bool = typer.Option(
        False, "--doctor", help="Print versions, providers, CUDA libraries and threads, then exit."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Write a NetCDF cloud mask for every MDGM found under ROOTS."""
    from .runtime import option_problem  # light: the runtime imports onnxruntime lazily

    problem = option_problem(provider, precision, threads)
    if problem is not None:
        raise _fatal(problem)
    if doctor:
        from .doctor import doctor_info, format_doctor

        typer.echo(format_doctor(doctor_info(model, provider=provider, threads=threads, precision=precision)))
        raise typer.Exit(0)
    if not roots:
        raise _fatal("no input: give one or more ROOT folders or .jpg maps")
    if out is None:
        raise _fatal("missing --out OUT folder")
    box = (int(bounds[0]), int(bounds[1]), int(bounds[2]), int(bounds[3])) if bounds and None not in bounds else None

    import time

    from . import cluster
    from .engine import OutputError, RunInterrupted, ensure_output_root, find_run_jobs, run
    from .plan import InferOptions, PlanError, check_jobs, resolve_plan
    from .runtime import ModelError, ProviderError, load_model

    # Everything is settled before OUT is touched: a bad option writes nothing.
    try:
        executor = cluster.DaskExecutor(dask, threads=threads, provider=provider, precision=precision) if dask else None
        loaded = load_model(
            model,
            provider="cpu" if dask else provider,
            threads=1 if dask else threads,
            precision="fp32" if dask else precision,
        )
        plan = resolve_plan(
            InferOptions(
                out=out,
                binary=binary,
                bounds=box,
                polar_offset=polar_offset,
                stitch=stitch,
                batch_size=batch_size,
                tile_out=tile_out,
                threshold=threshold,
                overwrite=overwrite,
                copy_maps=copy_maps,
                quicklook=quicklook,
                suffix=suffix,
                report=report,
                background=background,
            ),
            loaded,
        )
        jobs, input_errors = find_run_jobs(roots, plan.out)  # OUT inside the input tree: left out
        check_jobs(plan, jobs)
        ensure_output_root(plan.out)
    except (PlanError, ModelError, ProviderError, OutputError, cluster.ClusterError) as exc:
        raise _fatal(str(exc)) from None
    from .engine import shown

    for err in input_errors:
        typer.echo(f"cm-infer: {shown(err)}", err=True)
    if not jobs and not input_errors:
        input_errors.append(f"{', '.join(map(str, roots))}: no .jpg maps found")
        typer.echo(f"cm-infer: {input_errors[-1]}", err=True)
    typer.echo(
        f"cm-infer: {len(jobs)} maps, model {loaded.path.name} on {loaded.provider.upper()} {loaded.precision}"
        + (f", input channels {plan.channels}" if plan.channels != "rgb" else ""),
        err=True,
    )

    t0 = time.perf_counter()
    status: int | None = None
    with _progress() as bar:
        task = bar.add_task("maps", total=len(jobs))

        def on_result(result) -> None:
            if result.status == "failed":
                line = f"FAILED: {explain_failure(result.reason, result.output)}"
                bar.console.print(line, markup=False, highlight=False, soft_wrap=True)
            bar.advance(task)

        try:
            run_report = run(
                jobs,
                loaded,
                plan,
                executor=executor,
                on_result=on_result,
                roots=roots,
                input_errors=input_errors,
                record_extra=executor.add_to_record if executor is not None else None,
            )
        except RunInterrupted as stopped:
            run_report, status = stopped.report, stopped.exit_status
        except (OutputError, cluster.ClusterError) as exc:
            raise _fatal(str(exc)) from None
        except RuntimeError as exc:  # netCDF4 writing a background composite on a full disk
            if "HDF error" not in str(exc):
                raise
            reason = f"{plan.out}: writing a NetCDF file under it failed ({' '.join(str(exc).split())})"
            typer.echo(f"cm-infer: error: {explain_failure(reason, plan.out)}; the run stopped", err=True)
            raise typer.Exit(EXIT_FAILED) from None
    if plan.report:
        from .science.report import report_page  # a science tool: imported only when asked for

        try:
            page, left_out = report_page(plan.out)
            lines_report = [f"FAILED: report page: {line}" for line in left_out] + [f"report: {page}"]
            status = status or (EXIT_FAILED if left_out else None)
        except (OSError, ValueError) as exc:
            lines_report = [f"FAILED: report page: {' '.join(str(exc).split())}"]
            status = status or EXIT_FAILED
    lines = summary_lines(run_report, loaded, time.perf_counter() - t0) + (lines_report if plan.report else [])
    if dask:
        lines.insert(2, cluster.summary_line(run_report))
    for line in lines:
        typer.echo(line)
    raise typer.Exit(status if status is not None else (0 if run_report.ok else EXIT_FAILED))


def main() -> None:
    """Console-script entry point of ``cm-infer``."""
    app(prog_name="cm-infer")


if __name__ == "__main__":  # pragma: no cover
    main()
