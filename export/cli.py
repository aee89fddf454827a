"""``cm-export --to onnx RUN_DIR_OR_WEIGHTS --out models/NAME.onnx``: thin CLI over :mod:`.onnx_export`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from mars_cloudmask.infer.contract import DEFAULT_THRESHOLD, DEFAULT_TILE_OUT
from mars_cloudmask.infer.geometry import DEFAULT_POLAR_OFFSET

app = typer.Typer(add_completion=False, help="Export a trained cloud-mask U-Net to ONNX.")


def run_metadata(source: Path) -> dict[str, Any]:
    """What a run folder says about its model: training data, split, threshold, val metrics."""
    from mars_cloudmask.train_kit.checkpoint import BEST, METRICS, RUN, read_json

    folder = source if source.is_dir() else source.parent
    info: dict[str, Any] = {}
    if (folder / RUN).is_file():
        run = read_json(folder / RUN)
        info["training_data"] = ", ".join(run.get("data", [])) + (
            f"; reference: {', '.join(run['reference'])} (weight {run.get('reference_weight')})"
            if run.get("reference")
            else ""
        )
        info["split"] = json.dumps(run.get("split", {}), sort_keys=True)
        command = run.get("environment", {}).get("command")
        if command:  # "/path/to/bin/cm-train --data ..." -> "cm-train --data ..."
            program, _, args = command.partition(" ")
            info["training_command"] = f"{Path(program).name} {args}".strip()
    # an averaged model (cm-average) has its own scores beside it; otherwise the run's best epoch
    beside = source.with_suffix(".json") if source.suffix == ".keras" else None
    scores = beside if beside is not None and beside.is_file() else folder / METRICS
    if source.suffix == ".keras" and source.name != BEST and scores == folder / METRICS and scores.is_file():
        # e.g. last.keras: the run's metrics are its best epoch's, not this file's
        info["unscored"] = f"cm-average {folder} --epochs N"
    elif scores.is_file():
        metrics = read_json(scores)
        best = metrics.get("best_val", {})
        epoch = {"epochs_averaged": metrics["epochs"]} if "epochs" in metrics else {"epoch": metrics.get("best_epoch")}
        if "epochs" in metrics and "training_command" in info:
            ep = metrics["epochs"]
            span = f"{ep[0]}-{ep[-1]}" if ep == list(range(ep[0], ep[-1] + 1)) else ",".join(map(str, ep))
            bn = f" --recompute-bn {metrics['bn_batches']}" if metrics.get("bn_batches") else ""
            info["training_command"] += f"; cm-average {folder} --epochs {span}{bn}"
        # the scores at the threshold the model ships with, when the run recorded them
        info["val_metrics"] = (
            {"threshold": best.get("best_threshold"), "loss": best.get("loss"), **best["at_best_threshold"], **epoch}
            if "at_best_threshold" in best
            else best
        )
        if metrics.get("threshold") is not None:
            info["threshold"] = float(metrics["threshold"])
    return info


def run_channels(source: Path, n_channels: int) -> str:
    """The input channel spec of the model at ``source`` (a run folder or a ``.keras`` file in
    one): its run's ``run.json`` ``config.channels`` (``rgb`` for runs from before channels),
    checked against the model's ``n_channels``.  A ``.keras`` file with no ``run.json`` beside
    it is ``rgb`` when it takes 3 channels.

    Raises:
        ValueError: the spec is unknown, or does not match the model (one line naming the file).
    """
    from mars_cloudmask.infer.channels import parse_spec
    from mars_cloudmask.train_kit.checkpoint import RUN, read_json

    folder = source if source.is_dir() else source.parent
    where = folder / RUN
    if where.is_file():
        text = str(read_json(where).get("config", {}).get("channels") or "rgb")
    elif n_channels == 3:
        return "rgb"
    else:
        raise ValueError(
            f"{source}: the model takes {n_channels} input channels, but there is no {RUN} beside it to say "
            "what they hold; export it from its run folder"
        )
    try:
        spec = parse_spec(text)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if spec.n_channels != n_channels:
        raise ValueError(
            f"{where}: channels {spec.text!r} are {spec.n_channels} input channels, the model takes {n_channels}"
        )
    return spec.text


def _polar_offset(option: Optional[float], extra: dict[str, str]) -> float:
    """``--polar-offset``, else an older export's ``--meta polar_offset=C``, else the default (deg)."""
    if option is not None:
        return float(option)
    text = extra.get("polar_offset")
    if text is None:
        return DEFAULT_POLAR_OFFSET
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--meta polar_offset={text}: not a number of degrees (use --polar-offset C)") from None


def export_command(
    source: Path,
    out: Path,
    *,
    name: str = "cloudmask-unet",
    version: str = "0",
    threshold: Optional[float] = None,
    check_maps: list[Path] | None = None,
    fp16: bool = False,
    fold: bool = True,
    polar_offset: Optional[float] = None,
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Load a run folder's best model (or a ``.keras`` file), export it to ``out``, self-check.

    Real check tiles come from ``check_maps`` (JPEG maps), else none; 2 random tiles always.
    A run trained with extra channels (``run.json`` ``config.channels``, :func:`run_channels`)
    exports with that many input channels and ``input_channels`` in its metadata; its real
    check tiles are the maps' model inputs (background: the composite of each map's folder).
    ``polar_offset`` (deg): the polar-bound offset the model was validated with (None: an
    ``extra["polar_offset"]`` as older exports gave it with ``--meta``, else the default 3).
    Returns the export report (op counts, transposes, parity figures).
    """
    from mars_cloudmask.train_kit.checkpoint import load_model, resolve_weights
    from mars_cloudmask.train_kit.model import architecture_of, input_channels, margin

    from .onnx_export import contract_metadata, export_onnx, random_tiles, tiles_from_maps

    weights = resolve_weights(source)
    model = load_model(weights)
    width, depth = architecture_of(model)
    n_channels = input_channels(model)
    channels = run_channels(source, n_channels)
    info = run_metadata(source)
    if "unscored" in info and threshold is None:
        raise ValueError(
            f"{source}: not the run's best epoch, so the run's threshold and validation scores are not "
            f"this file's; score it with `{info['unscored']}` and export that file, or give --threshold"
        )
    meta = contract_metadata(
        width,
        depth,
        name=name,
        version=version,
        threshold=threshold if threshold is not None else info.get("threshold", DEFAULT_THRESHOLD),
        polar_offset=_polar_offset(polar_offset, extra or {}),
        input_channels=channels,
        training_data=info.get("training_data", ""),
        split=info.get("split", ""),
        val_metrics=info.get("val_metrics"),
        extra={
            **({"training_command": info["training_command"]} if "training_command" in info else {}),
            **{k: v for k, v in (extra or {}).items() if k != "polar_offset"},
        },
    )
    tile_in = DEFAULT_TILE_OUT + 2 * margin(depth)
    tiles = {"random": random_tiles(2, tile_in, channels=n_channels)}
    if check_maps:
        tiles["real"] = tiles_from_maps(check_maps, per_map=2, depth=depth, channels=channels)
    fp16_out = out.with_name(out.stem + "-fp16.onnx") if fp16 else None
    report = export_onnx(model, out, meta, tiles, fp16_out=fp16_out, fold=fold)
    report["weights"] = str(weights)
    report["metadata"] = meta
    return report


@app.command()
def export(
    source: Path = typer.Argument(..., help="Run folder (uses best.keras) or a .keras file."),
    out: Path = typer.Option(..., "--out", help="ONNX file to write, e.g. models/cloudmask-unet.onnx."),
    to: str = typer.Option("onnx", "--to", help="Target format (only 'onnx')."),
    name: str = typer.Option("cloudmask-unet", help="metadata 'name'."),
    version: str = typer.Option("0", help="metadata 'version'."),
    threshold: Optional[float] = typer.Option(
        None, help=f"Cloud threshold (default: the run's, else {DEFAULT_THRESHOLD})."
    ),
    polar_offset: Optional[float] = typer.Option(
        None,
        "--polar-offset",
        help=f"Offset c (deg) of the polar bounds the model was validated with (default {DEFAULT_POLAR_OFFSET:g}; "
        "--meta polar_offset=C is still read).",
    ),
    check_maps: list[Path] = typer.Option([], "--check-map", help="JPEG map(s) for real parity tiles (repeatable)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also write NAME-fp16.onnx and report its difference."),
    fold: bool = typer.Option(True, "--fold/--no-fold", help="Fold BatchNorm into the convolutions."),
    meta: list[str] = typer.Option([], "--meta", help="Extra metadata KEY=VALUE (repeatable)."),
) -> None:
    """Export a Keras cloud-mask model to ONNX with the contract metadata, and check parity."""
    from mars_cloudmask.train_kit.tf_logs import start_tensorflow

    start_tensorflow("cm-export")
    from rich.console import Console

    from mars_cloudmask.train_kit.checkpoint import CheckpointError

    from .onnx_export import ExportError

    console = Console(stderr=True)
    if to != "onnx":
        console.print(f"[red]error:[/] --to {to}: only 'onnx' is supported")
        raise typer.Exit(2)
    extra = {}
    for item in meta:
        if "=" not in item:
            console.print(f"[red]error:[/] --meta {item!r}: expected KEY=VALUE")
            raise typer.Exit(2)
        k, v = item.split("=", 1)
        extra[k] = v
    try:
        report = export_command(
            source,
            out,
            name=name,
            version=version,
            threshold=threshold,
            check_maps=check_maps,
            fp16=fp16,
            fold=fold,
            polar_offset=polar_offset,
            extra=extra,
        )
    except (CheckpointError, ExportError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    print(json.dumps({k: v for k, v in report.items() if k != "metadata"}, indent=2))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
