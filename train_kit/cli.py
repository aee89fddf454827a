"""``cm-train`` and ``cm-average``: thin CLIs over :func:`.train.train` and :func:`.averaging.average_epochs`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mars_cloudmask.infer.contract import DEFAULT_TILE_OUT

from .tf_logs import start_tensorflow

app = typer.Typer(add_completion=False, help="Train the cloud-mask U-Net on labelled maps.")


def parse_days(text: str, option: str = "--days") -> list[int]:
    """'16,17' or '16-17' or '16-17,20' -> [16, 17, 20] (day or epoch numbers); '' -> [].

    Raises:
        ValueError: an item is not a number or an ascending range; the message names ``option``.
    """
    days: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        bounds = [b.strip() for b in part.split("-")]
        if not all(b.isdigit() for b in bounds) or len(bounds) > 2 or int(bounds[0]) > int(bounds[-1]):
            raise ValueError(
                f"{option}: {part!r} is not a day number (16), a range (16-17) or a list of them (16-17,20)"
            )
        days.extend(range(int(bounds[0]), int(bounds[-1]) + 1))
    return days


def parse_subphases(text: str, option: str) -> list[str]:
    """'P03,P07' -> ['P03', 'P07'] (subphase folder names); '' -> [].

    Raises:
        ValueError: a name holds a path separator or a space, or is repeated; the message names ``option``.
    """
    names = [p.strip() for p in text.split(",") if p.strip()]
    for name in names:
        if "/" in name or " " in name or name.startswith("."):
            raise ValueError(f"{option}: {name!r} is not a subphase name (a folder name such as P03)")
    if len(set(names)) < len(names):
        raise ValueError(f"{option}: {text!r} names a subphase twice")
    return names


@app.command()
def train_command(
    data: list[Path] = typer.Option(
        ...,
        "--data",
        help="Labelled subphase folder(s) (list_ls.txt, mdgms/, cloudmask/; its name is the subphase), or label "
        "archive root(s) holding such folders (P01/, P02/, ..., B01/).",
    ),
    val_days: str = typer.Option(
        "", "--val-days",
        help="Validation day numbers, e.g. '16-17', taken in every subphase not held out whole; 'none' for a refit "
        "on every day (needs --lr-schedule cosine and --patience >= --epochs). Optional with --val-subphases.",
    ),
    out: Path = typer.Option(..., "--out", help="Run folder (created; an existing run is resumed)."),
    test_days: str = typer.Option(
        "", "--test-days",
        help="Day numbers held out from training and validation, in every subphase not held out whole.",
    ),
    val_subphases: str = typer.Option(
        "", "--val-subphases", help="Subphases that validate whole, e.g. 'P03' (leave one season out)."
    ),
    test_subphases: str = typer.Option(
        "", "--test-subphases", help="Subphases held out whole from training and validation, e.g. 'P03,P07'."
    ),
    epochs: int = typer.Option(50, help="Maximum number of epochs."),
    batch_size: int = typer.Option(8, help="Tiles per step."),
    steps_per_epoch: Optional[int] = typer.Option(
        None, help=("Steps per epoch (default: one pass of the training tiles).")
    ),
    seed: int = typer.Option(0, help="Random seed (weights, tiles, flips)."),
    width: int = typer.Option(8, help="Filters at the first level (original 8)."),
    depth: int = typer.Option(4, help="Number of poolings (original 4)."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    lr_patience: int = typer.Option(2, help="Halve the LR after this many epochs without improvement (0: never)."),
    w0: Optional[float] = typer.Option(
        None, help=("Weight of clear pixels (cloud: 1-w0); default: cloudy fraction of the training days.")
    ),
    dice_weight: float = typer.Option(0.0, help="Weight of a soft-Dice term added to the loss."),
    focal_gamma: float = typer.Option(
        0.0, help=("Focal term: multiply each pixel's BCE by (1 - p_true) ** this (0: off).")
    ),
    edge_weight: float = typer.Option(
        1.0, help=("Loss weight of pixels within --edge-radius px of a labelled cloud edge (1: as others, 0: ignored).")
    ),
    edge_radius: int = typer.Option(1, help="Half-width in px of the label-edge band that --edge-weight applies to."),
    patience: int = typer.Option(5, help="Early-stopping patience on validation loss (epochs)."),
    brightness: float = typer.Option(0.0, help="Brightness jitter: factor in 1 +- this."),
    reference: list[Path] = typer.Option(
        [], "--reference", help=("Folder(s) of reference masks (reference/P) as weak targets.")
    ),
    mdgm: Optional[Path] = typer.Option(None, "--mdgm", help="Root of the maps of the reference masks (mdgm/P)."),
    reference_weight: float = typer.Option(0.3, help="Loss weight of reference tiles."),
    reference_fraction: float = typer.Option(0.25, help="Share of each batch drawn from reference maps."),
    tile_out: int = typer.Option(
        DEFAULT_TILE_OUT,
        help=("Output tile size (4 mod 2**depth, e.g. 484); input is this + 2 x margin (184 at depth 4)."),
    ),
    threads: int = typer.Option(2, help="TensorFlow intra-op threads."),
    bn_momentum: float = typer.Option(
        0.99, help=("BatchNorm moving-statistics momentum (0.9: they follow the weights faster).")
    ),
    keep_epochs: bool = typer.Option(
        True, "--keep-epochs/--no-keep-epochs", help=("Keep each epoch's weights in OUT/epochs/ (for cm-average).")
    ),
    init: Optional[Path] = typer.Option(
        None,
        "--init",
        help=(
            "Start from this model's weights (.keras file or run folder; same width and depth): fine-tuning, e.g. the "
            "shipped models/cloudmask-unet.keras on your own labels."
        ),
    ),
    lr_schedule: str = typer.Option(
        "plateau",
        "--lr-schedule",
        help=("plateau: halve the LR after --lr-patience flat epochs; cosine: decay --lr to 0 over --epochs."),
    ),
    channels: str = typer.Option(
        "rgb",
        "--channels",
        help=(
            "Input channels: 'rgb' or e.g. 'rgb,bdiff10,bdiff50' (blue minus the background's 10th/50th percentile), "
            "'bratioQ', 'blocal' (blue minus its +-15 degree local median, same map), 'lat', 'sinls', "
            "'cosls', 'cosi' (solar incidence at 15:00)."
        ),
    ),
    background_maps: list[Path] = typer.Option(
        [],
        "--background-maps",
        help=(
            "Maps or folder(s) of maps whose composite is the labelled days' background (e.g. mdgm/P/P01); reference "
            "maps use their own folder."
        ),
    ),
    background_subset: int = typer.Option(
        0,
        "--background-subset",
        help=(
            "0: each labelled day's background is the composite of all --background-maps; N: of its own random N of "
            "them (noise like an N-map folder)."
        ),
    ),
) -> None:
    """Train (or resume) a run; checkpoints, metrics.json and curves.png go to --out."""
    start_tensorflow("cm-train")
    from rich.console import Console
    from rich.markup import escape

    from .checkpoint import CheckpointError
    from .config import TrainConfig
    from .data import DataError
    from .train import train

    console = Console(stderr=True, width=200)
    try:
        val_subs = parse_subphases(val_subphases, "--val-subphases")
        test_subs = parse_subphases(test_subphases, "--test-subphases")
        val = [] if val_days.strip().lower() == "none" else parse_days(val_days, "--val-days")
        if not val and not val_subs and val_days.strip().lower() != "none":
            raise ValueError(
                "--val-days: give day numbers (16-17) or --val-subphases, or 'none' for a refit without validation"
            )
        test = parse_days(test_days, "--test-days")
    except ValueError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    cfg = TrainConfig(
        data=[str(d) for d in data],
        out=str(out),
        val_days=val,
        test_days=test,
        val_subphases=val_subs,
        test_subphases=test_subs,
        epochs=epochs,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        seed=seed,
        width=width,
        depth=depth,
        lr=lr,
        lr_patience=lr_patience,
        w0=w0,
        dice_weight=dice_weight,
        focal_gamma=focal_gamma,
        edge_weight=edge_weight,
        edge_radius=edge_radius,
        patience=patience,
        brightness=brightness,
        reference=[str(r) for r in reference],
        mdgm=str(mdgm) if mdgm else None,
        reference_weight=reference_weight,
        reference_fraction=reference_fraction,
        tile_out=tile_out,
        threads=threads,
        bn_momentum=bn_momentum,
        keep_epochs=keep_epochs,
        init=str(init) if init else None,
        lr_schedule=lr_schedule,
        channels=channels,
        background_maps=[str(b) for b in background_maps],
        background_subset=background_subset,
    )
    try:
        metrics = train(cfg, log=lambda msg: console.print(msg, highlight=False))
    except (DataError, CheckpointError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    best = metrics.get("best_val", {})
    console.print(
        f"best epoch {metrics.get('best_epoch')}: val loss {best.get('loss', float('nan')):.4f}, "
        f"F1 {best.get('f1', float('nan')):.4f} at {cfg.threshold:g}, "
        f"F1 {best.get('best_threshold_f1', float('nan')):.4f} at {best.get('best_threshold')}"
    )


average_app = typer.Typer(add_completion=False, help="Average the weights of a run's last epochs.")


@average_app.command()
def average_command(
    run: Path = typer.Argument(..., help="Run folder made by cm-train (with its epochs/ weights)."),
    epochs: str = typer.Option(..., "--epochs", help="Epochs to average, e.g. '14-20'."),
    recompute_bn: int = typer.Option(
        0,
        "--recompute-bn",
        help=(
            "Then recompute the BatchNorm statistics over this many fresh training batches (0: keep the mean of the "
            "epochs')."
        ),
    ),
) -> None:
    """Write RUN/average-A-B[-bn].keras (mean weights) and its validation scores RUN/average-A-B[-bn].json."""
    start_tensorflow("cm-average")
    from rich.console import Console

    from .averaging import average_epochs, average_name
    from .checkpoint import CheckpointError
    from .data import DataError

    console = Console(stderr=True, width=200)
    try:
        result = average_epochs(run, parse_days(epochs, "--epochs"), bn_batches=recompute_bn)
    except (DataError, CheckpointError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    best = result["best_val"]
    console.print(
        f"{run / average_name(result['epochs'], recompute_bn)}.keras: val loss {best['loss']:.4f}, "
        f"F1 {best['best_threshold_f1']:.4f} at {best['best_threshold']}",
        highlight=False,
    )


cv_app = typer.Typer(
    add_completion=False,
    help="Cross-validation over labelled days: train every candidate recipe per fold, score the held-out days.",
)


@cv_app.command("run")
def cv_run_command(
    recipes: Path = typer.Argument(..., help="Recipes JSON: base TrainConfig fields and one entry per candidate."),
    data: Path = typer.Option(..., "--data", help="The data root (labels/P01 trains, mdgm/P/P01 maps are scored)."),
    runs: Path = typer.Option(..., "--runs", help="Folder of the fold runs (<runs>/<candidate>/fold<k>; resumed)."),
    results: Path = typer.Option(..., "--results", help="Results JSON (per-day out-of-fold histograms; resumed)."),
    folds: int = typer.Option(4, "--folds", help="Number of folds (day i of the sorted days goes to fold i mod k)."),
    days: str = typer.Option("1-20", "--days", help="Labelled days to cross-validate over."),
    only: str = typer.Option("", "--only", help="Comma-separated candidates to run (default: all)."),
    fold: str = typer.Option("", "--fold", help="Fold numbers to run, e.g. '0' or '0-1' (default: all)."),
) -> None:
    """Train and score every (fold, candidate) missing from RESULTS, fold by fold; resumable at any point."""
    start_tensorflow("cm-cv")
    from rich.console import Console

    from .checkpoint import CheckpointError
    from .crossval import Recipes, run_cv
    from .data import DataError

    console = Console(stderr=True, width=200)
    try:
        rec = Recipes.read(recipes)
        day_list = parse_days(days, "--days")
        fold_list = parse_days(fold, "--fold") or None
        names = [s.strip() for s in only.split(",") if s.strip()] or None
        run_cv(rec, data, runs, results, folds, day_list, names, fold_list,
               log=lambda msg: console.print(msg, highlight=False, soft_wrap=True))
    except (DataError, CheckpointError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None


@cv_app.command("refit")
def cv_refit_command(
    recipes: Path = typer.Argument(..., help="Recipes JSON, as given to 'cm-cv run'."),
    candidate: str = typer.Argument(..., help="The candidate the cross-validation chose."),
    data: Path = typer.Option(..., "--data", help="Labelled folder (list_ls.txt, mdgms/, cloudmask/)."),
    out: Path = typer.Option(..., "--out", help="Run folder (created; an existing run is resumed)."),
    days: str = typer.Option("1-20", "--days", help="Labelled days to train on (the others are set aside)."),
) -> None:
    """Train the chosen candidate on every day of --days with no validation: its honest estimate is
    the cross-validation mean (the recipe must choose nothing by validation: cosine, patience >= epochs)."""
    start_tensorflow("cm-cv")
    from rich.console import Console

    from .checkpoint import CheckpointError
    from .crossval import Recipes
    from .data import DataError, day_number, scan_labelled
    from .train import train

    console = Console(stderr=True, width=200)
    try:
        rec = Recipes.read(recipes)
        if candidate not in rec.candidates:
            raise ValueError(f"{candidate}: not a candidate of {recipes} ({', '.join(rec.candidates)})")
        keep = set(parse_days(days, "--days"))
        unused = sorted({day_number(s.name) for s in scan_labelled(data)} - keep)
        train(rec.config(candidate, data, [], out, unused),
              log=lambda msg: console.print(msg, highlight=False, soft_wrap=True))
    except (DataError, CheckpointError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None


@cv_app.command("report")
def cv_report_command(
    results: Path = typer.Argument(..., help="Results JSON written by 'cm-cv run'."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the summary as JSON here."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw the reliability diagram to this PNG."),
) -> None:
    """Print per-fold F1 at each candidate's pooled out-of-fold threshold, mean, spread and per-day pairs."""
    from rich.console import Console

    from .crossval import format_summary, plot_reliability, read_results, summarise

    console = Console(stderr=True, width=200)
    try:
        res = read_results(results)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    if not res:
        console.print(f"[red]error:[/] {results}: no finished folds", highlight=False)
        raise typer.Exit(1)
    summary = summarise(res)
    print(format_summary(summary))
    if json_out is not None:
        import json

        from mars_cloudmask.infer.atomic import write_text_atomic

        write_text_atomic(json_out, json.dumps(summary, indent=2) + "\n")
    if plot is not None:
        plot_reliability(res, plot)
        console.print(f"{plot}: reliability diagram", highlight=False)


def main() -> None:
    """Console-script entry point of cm-train."""
    app()


def average_main() -> None:
    """Console-script entry point of cm-average."""
    average_app()


def cv_main() -> None:
    """Console-script entry point of cm-cv."""
    cv_app()
