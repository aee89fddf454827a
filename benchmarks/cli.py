"""``cm-bench`` (also ``python -m mars_cloudmask.benchmarks``): a thin shell over :mod:`.runner`.

Exit status: 0 when every variant ran, 1 when any variant failed, 2 when the run could not
start (missing model or maps, unknown suite, ``--provider cuda`` without CUDA).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Optional, Tuple

import typer

from .paths import DATA_HELP, data_dir
from .runner import SUITES


class Terminated(BaseException):
    """SIGTERM arrived: unwinds the run so that the worker is killed and the scratch folder removed."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0], rich_markup_mode=None)


def _sizes(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"{what}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise typer.BadParameter(f"{what}: expected integers >= 1, got {text!r}")
    return values


@app.command()
def bench(
    maps: Optional[Path] = typer.Argument(
        None,
        show_default=False,
        help=f"Folder of MDGMs (Dataverse layout) to benchmark on [default: DATA/mdgm, DATA = {DATA_HELP}].",
    ),
    onnx: Optional[Path] = typer.Option(
        None,
        "--onnx",
        show_default=False,
        help="ONNX model (cloudmask contract) [default: the shipped model, the one cm-infer runs].",
    ),
    keras: Optional[Path] = typer.Option(
        None, "--keras", help="The .keras file (or run folder) of the SAME model: the baseline."
    ),
    n_maps: int = typer.Option(3, "--maps", help="Maps in the main, threads suites (spread over the folder)."),
    repeats: int = typer.Option(3, "--repeats", help="Passes over the maps per variant (the median is reported)."),
    suite: str = typer.Option("main", "--suite", help=f"Comma-separated: {','.join(SUITES)} (or 'all')."),
    provider: Optional[str] = typer.Option(
        None,
        "--provider",
        show_default=False,
        help="auto | cuda | openvino | cpu: backend of every variant but the ov-* ones [default: onnxruntime CPU "
        "for the ort-*, fp16 and int8 variants, which measure onnxruntime; auto, what cm-infer runs, for the "
        "scaling and threads suites' default mode].",
    ),
    threads: Optional[int] = typer.Option(None, "--threads", help="onnxruntime intra-op threads (default: all cores)."),
    bounds: Optional[Tuple[int, int, int, int]] = typer.Option(
        None, "--bounds", help="XMIN XMAX YMIN YMAX box for every map instead of Ls bounds."
    ),
    scaling: str = typer.Option("1,8,32", "--scaling-sizes", help="Map counts of the scaling suite."),
    thread_counts: str = typer.Option("1,2", "--thread-counts", help="Intra-op thread counts of the threads suite."),
    labels: Optional[Path] = typer.Option(
        None,
        "--labels",
        show_default=False,
        help=f"Labels folder for F1 of fp16/int8 (P01 days 18-20) [default: DATA/labels/P01, DATA = {DATA_HELP}].",
    ),
    reference: Optional[Path] = typer.Option(
        None,
        "--reference",
        help="The original model's masks (reference/P) for the precision suite's agreement (default: beside MAPS).",
    ),
    calibration_maps: int = typer.Option(6, "--calibration-maps", help="int8: maps to draw calibration tiles from."),
    calibration_per_map: int = typer.Option(3, "--calibration-tiles", help="int8: calibration tiles per map."),
    wholemap: bool = typer.Option(
        True, "--wholemap/--no-wholemap", help="Include the whole-map pass in the main suite."
    ),
    out: Path = typer.Option(
        Path("."), "--out", help="Folder for <machine>-<date>[-label].json/.md/.png (default: the working directory)."
    ),
    label: Optional[str] = typer.Option(None, "--label", help="Suffix of the results' file names (e.g. the model)."),
    workdir: Optional[Path] = typer.Option(
        None, "--workdir", help="Scratch folder for masks and logs (default: a temp dir, removed)."
    ),
) -> None:
    """Measure the Keras baseline, cm-infer's modes and onnxruntime alone, side by side."""
    import shutil
    import tempfile

    from rich.console import Console

    from mars_cloudmask.infer.runtime import default_model_path

    from .report import markdown, write_results
    from .runner import BenchConfig, BenchError, run_benchmark

    console = Console(stderr=True)
    onnx = onnx if onnx is not None else default_model_path()
    maps = maps if maps is not None else data_dir() / "mdgm"
    labels = labels if labels is not None else data_dir() / "labels" / "P01"
    suites = SUITES if suite.strip() == "all" else tuple(s.strip() for s in suite.split(",") if s.strip())
    box = tuple(bounds) if bounds and all(v is not None for v in bounds) else None
    scratch = workdir or Path(tempfile.mkdtemp(prefix="cm-bench-"))
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        cfg = BenchConfig(
            maps_root=maps,
            onnx=onnx,
            keras=keras,
            n_maps=n_maps,
            repeats=repeats,
            suites=suites,
            provider=provider or "cpu",
            mode_provider=provider or "auto",
            threads=threads,
            bounds=box,
            scaling_sizes=_sizes(scaling, "--scaling-sizes"),
            thread_counts=_sizes(thread_counts, "--thread-counts"),
            labels=labels,
            calibration_maps=calibration_maps,
            calibration_per_map=calibration_per_map,
            wholemap=wholemap,
            workdir=scratch,
            reference=reference if reference is not None else Path(maps).parent / "reference" / "P",
        )
        with console.status("cm-bench") as status:

            def progress(msg: str) -> None:
                console.log(msg, markup=False, highlight=False)
                status.update(msg)

            doc = run_benchmark(cfg, progress)
    except BenchError as exc:
        typer.echo(f"cm-bench: error: {' '.join(str(exc).split())}", err=True)
        raise typer.Exit(2) from None
    except Terminated:
        # run_worker has killed the running worker's process group on the way out
        typer.echo("cm-bench: stopped by SIGTERM; no results written", err=True)
        raise typer.Exit(143) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        if workdir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    paths = write_results(doc, out, label)
    typer.echo(markdown(doc))
    for kind, path in paths.items():
        typer.echo(f"{kind}: {path}", err=True)
    if doc["errors"]:
        raise typer.Exit(1)


def main() -> None:
    app()
