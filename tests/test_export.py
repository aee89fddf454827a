"""export: a trained tiny run -> ONNX with the contract's metadata, folded BatchNorm, parity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mars_cloudmask.export.cli import app, export_command
from mars_cloudmask.export.fold import fold_batchnorm
from mars_cloudmask.export.onnx_export import (
    ExportError,
    export_onnx,
    onnx_predict,
    random_tiles,
    read_metadata,
)
from mars_cloudmask.train_kit.checkpoint import load_model
from mars_cloudmask.train_kit.config import TrainConfig
from mars_cloudmask.train_kit.train import train
from tests.test_train_data import TILE_OUT, write_labelled

CONTRACT_KEYS = {
    "name",
    "version",
    "threshold",
    "tile_in",
    "tile_out",
    "margin",
    "align",
    "input_layout",
    "input_dtype",
    "width",
    "depth",
    "training_data",
    "split",
    "val_metrics",
    "code_version",
    "created",
}


def train_tiny_run(root: Path, epochs: int, steps: int, **config) -> Path:
    """Train a width-2 run on two synthetic labelled days under ``root``; ``config``: more TrainConfig fields
    (a callable value is called with the labelled folder)."""
    labelled = write_labelled(root / "P01", days=(1, 2))
    out = root / "run"
    extra = {k: v(labelled) if callable(v) else v for k, v in config.items()}
    cfg = TrainConfig(
        data=[str(labelled)],
        out=str(out),
        val_days=[2],
        epochs=epochs,
        batch_size=2,
        steps_per_epoch=steps,
        width=2,
        depth=4,
        lr=1e-2,
        w0=0.5,
        tile_out=TILE_OUT,
        **extra,
    )
    train(cfg, log=lambda _: None)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny run trained for 2 short epochs (BatchNorm statistics are no longer trivial)."""
    return train_tiny_run(tmp_path_factory.mktemp("export"), epochs=2, steps=3)


def test_export_run_parity_metadata_and_graph(run, tmp_path):
    out = tmp_path / "models" / "tiny.onnx"
    report = export_command(
        run, out, name="tiny", version="1.2", fp16=True, check_maps=[run.parent / "P01" / "mdgms" / "P01day01.jpeg"]
    )
    assert out.is_file() and report["parity_max_abs_diff"]["random"] < 1e-4
    assert report["parity_tiles"] == {"random": 2, "real": 2}
    assert report["batchnorm_nodes"] == 0 and report["transposes_next_to_convs"] <= 1
    assert report["fp16"]["max_abs_diff"]["real"] < 1e-2
    meta = read_metadata(out)
    assert set(meta) >= CONTRACT_KEYS
    assert (meta["name"], meta["version"], meta["tile_in"], meta["tile_out"], meta["margin"], meta["align"]) == (
        "tiny",
        "1.2",
        "668",
        "484",
        "92",
        "16",
    )
    assert (meta["input_layout"], meta["input_dtype"], meta["width"], meta["depth"]) == ("NHWC", "uint8", "2", "4")
    metrics = json.loads((run / "metrics.json").read_text())
    assert float(meta["threshold"]) == pytest.approx(metrics["threshold"])  # the run's F1-best threshold
    val_metrics = json.loads(meta["val_metrics"])  # scores at the shipped threshold
    assert val_metrics["threshold"] == pytest.approx(float(meta["threshold"]))
    assert val_metrics["f1"] == pytest.approx(metrics["best_val"]["at_best_threshold"]["f1"])
    assert json.loads(meta["split"])["val"] == ["P01day02"]
    # dynamic batch, height and width, same numbers as Keras
    model = load_model(run)
    x = random_tiles(2, 236 + 32, seed=3)[:, :, :236]
    got = onnx_predict(out, x)
    assert got.shape == (2, 84, 52, 1)
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-4)


def test_fold_batchnorm_matches_keras(run):
    model = load_model(run)
    folded = fold_batchnorm(model)
    assert not any("BatchNormalization" == type(layer).__name__ for layer in folded.layers)
    x = random_tiles(2, 236, seed=5)
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_parity_failure_names_the_figures_and_leaves_no_file(run, tmp_path):
    model = load_model(run)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match=r"bad\.onnx: Keras and onnxruntime disagree: max abs diff random .* > -1"):
        export_onnx(model, out, {"name": "x"}, {"random": random_tiles(1, 236)}, tolerance=-1.0)
    assert not out.exists() and not list(tmp_path.glob(".bad*"))


def test_cli_exports_and_reports_missing_weights(run, tmp_path):
    out = tmp_path / "cli.onnx"
    result = CliRunner().invoke(app, [str(run), "--to", "onnx", "--out", str(out), "--meta", "note=test"])
    assert result.exit_code == 0, result.output
    assert read_metadata(out)["note"] == "test"
    missing = CliRunner().invoke(app, [str(tmp_path / "nothing"), "--out", str(tmp_path / "x.onnx")])
    assert missing.exit_code == 1 and "nothing: no such file or folder" in missing.output


def test_polar_offset_is_a_contract_field_and_old_meta_values_still_count(run, tmp_path):
    from mars_cloudmask.infer.contract import ModelInfo

    new, old, bad = tmp_path / "new.onnx", tmp_path / "old.onnx", tmp_path / "bad.onnx"
    result = CliRunner().invoke(app, [str(run), "--out", str(new), "--polar-offset", "-3"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, [str(run), "--out", str(old), "--meta", "polar_offset=-2.5"])
    assert result.exit_code == 0, result.output
    assert ModelInfo.from_metadata(read_metadata(new), new).polar_offset == -3.0
    assert ModelInfo.from_metadata(read_metadata(old), old).polar_offset == -2.5
    assert read_metadata(new)["input_channels"] == "rgb"
    result = CliRunner().invoke(app, [str(run), "--out", str(bad), "--meta", "polar_offset=north"])
    assert result.exit_code == 1 and "polar_offset" in result.output and not bad.exists()


def test_contract_metadata_round_trips_through_model_info():
    from mars_cloudmask.export.onnx_export import contract_info
    from mars_cloudmask.infer.contract import ModelInfo

    info = contract_info(16, 4, name="m", version="3", threshold=0.47, polar_offset=-3.0, split='{"val": []}')
    assert (info.tile_in, info.tile_out, info.margin, info.align) == (668, 484, 92, 16)
    assert ModelInfo.from_metadata(info.to_metadata(), "m.onnx") == info
    assert info.extra["width"] == "16" and info.extra["split"] == '{"val": []}'


def test_a_conversion_with_a_wrong_output_shape_is_converted_again_once(run, tmp_path, monkeypatch):
    import onnx

    from mars_cloudmask.export import onnx_export

    real_parity, calls = onnx_export.parity, []

    def parity_failing_first(model, path, tiles):
        calls.append(path)
        if len(calls) == 1:
            raise ExportError(f"{path}: output shape (2, 1, 52, 52, 1) differs from Keras (2, 52, 52, 1) (random)")
        return real_parity(model, path, tiles)

    model = load_model(run)
    # tf2onnx itself now and then adds a unit axis (see export_onnx): feed every attempt a copy
    # of one conversion known to be good, so that this test sees only the simulated failure
    good, probe = None, tmp_path / "probe.onnx"
    for _ in range(3):
        candidate = onnx_export.convert(fold_batchnorm(model))
        onnx.save(candidate, str(probe))
        try:
            real_parity(model, probe, {"random": random_tiles(1, 236)})
        except ExportError:
            continue
        good = candidate
        break
    assert good is not None, "three conversions in a row had the wrong output shape"

    def good_copy(source, opset=onnx_export.OPSET):
        copy = onnx.ModelProto()
        copy.CopyFrom(good)
        return copy

    monkeypatch.setattr(onnx_export, "convert", good_copy)
    monkeypatch.setattr(onnx_export, "parity", parity_failing_first)
    report = export_onnx(model, tmp_path / "ok.onnx", {"name": "x"}, {"random": random_tiles(1, 236)})
    assert len(calls) == 2 and report["parity_max_abs_diff"]["random"] < 1e-4

    calls.clear()

    def always_wrong(model, path, tiles):
        calls.append(path)
        raise ExportError(f"{path}: output shape (1, 1, 52, 52, 1) differs from Keras (1, 52, 52, 1) (random)")

    monkeypatch.setattr(onnx_export, "parity", always_wrong)
    with pytest.raises(ExportError, match="output shape"):
        export_onnx(model, tmp_path / "bad.onnx", {"name": "x"}, {"random": random_tiles(1, 236)})
    assert len(calls) == onnx_export.CONVERT_ATTEMPTS and not (tmp_path / "bad.onnx").exists()


def test_an_averaged_model_exports_with_its_own_validation_scores(run, tmp_path):
    import shutil

    from mars_cloudmask.train_kit.averaging import average_epochs

    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    averaged = average_epochs(folder, [1, 2])
    report = export_command(folder / "average-001-002.keras", tmp_path / "avg.onnx")
    scores = json.loads(read_metadata(tmp_path / "avg.onnx")["val_metrics"])
    assert scores["epochs_averaged"] == [1, 2] and "epoch" not in scores
    assert report["metadata"]["training_command"].endswith(f"; cm-average {folder} --epochs 1-2")
    assert scores["f1"] == pytest.approx(averaged["best_val"]["at_best_threshold"]["f1"])
    assert float(report["metadata"]["threshold"]) == pytest.approx(averaged["threshold"])


def test_a_run_checkpoint_other_than_the_best_is_not_given_the_best_epochs_scores(run, tmp_path):
    """last.keras is not the best epoch: exporting it with the run's threshold and scores would
    mislabel it, so the export asks for --threshold (or a cm-average file with its own scores)."""
    with pytest.raises(ValueError, match=r"last\.keras: not the run's best epoch.*cm-average .* --epochs N"):
        export_command(run / "last.keras", tmp_path / "last.onnx")
    assert not (tmp_path / "last.onnx").exists()
    export_command(run / "last.keras", tmp_path / "last.onnx", threshold=0.4)
    meta = read_metadata(tmp_path / "last.onnx")
    assert float(meta["threshold"]) == 0.4
    assert json.loads(meta["val_metrics"]) == {}  # no scores rather than another epoch's


def test_a_model_of_another_depth_exports_its_geometry_and_runs_in_cm_infer(tmp_path):
    from mars_cloudmask.infer.maps import read_map
    from mars_cloudmask.infer.predict import predict
    from mars_cloudmask.infer.runtime import load_model as load_onnx

    labelled = write_labelled(tmp_path / "P01", days=(1, 2))
    run = tmp_path / "d3"
    train(
        TrainConfig(
            data=[str(labelled)],
            out=str(run),
            val_days=[2],
            epochs=1,
            batch_size=2,
            steps_per_epoch=2,
            width=2,
            depth=3,
            lr=1e-2,
            w0=0.5,
            tile_out=TILE_OUT,
        ),
        log=lambda _: None,
    )
    out = tmp_path / "d3.onnx"
    day1 = labelled / "mdgms" / "P01day01.jpeg"
    report = export_command(run, out, name="d3", version="1", check_maps=[day1])
    assert report["parity_tiles"] == {"random": 2, "real": 2} and report["parity_max_abs_diff"]["real"] < 1e-4
    meta = read_metadata(out)
    assert (meta["depth"], meta["margin"], meta["align"], meta["tile_in"]) == ("3", "44", "8", "572")
    prob = predict(load_onnx(out, provider="cpu"), read_map(day1), bounds=(0, 3600, 300, 1500))
    inside = prob[300:1500]
    assert ((inside >= 0) & (inside <= 1) | (inside == -999)).all() and (inside >= 0).mean() > 0.5


CHANNELS = "rgb,bdiff10,sinls"  # 5 input channels: a background one and a season one


@pytest.fixture(scope="module")
def channel_run(tmp_path_factory) -> Path:
    """A tiny run trained with extra channels (one short epoch): its run.json says CHANNELS."""
    return train_tiny_run(
        tmp_path_factory.mktemp("export-channels"),
        epochs=1,
        steps=2,
        channels=CHANNELS,
        background_maps=lambda labelled: [str(labelled / "mdgms")],
    )


def test_a_channel_run_exports_its_channels_with_parity_and_runs_in_the_runtime(channel_run, tmp_path):
    from mars_cloudmask.infer.background import composite_of_files
    from mars_cloudmask.infer.contract import ModelInfo
    from mars_cloudmask.infer.maps import read_map
    from mars_cloudmask.infer.predict import predict
    from mars_cloudmask.infer.runtime import load_model as load_onnx

    out = tmp_path / "five.onnx"
    day1 = channel_run.parent / "P01" / "mdgms" / "P01day01.jpeg"
    report = export_command(channel_run, out, name="five", version="3", check_maps=[day1])
    assert report["parity_tiles"] == {"random": 2, "real": 2}
    assert max(report["parity_max_abs_diff"].values()) < 1e-4
    meta = read_metadata(out)
    assert meta["input_channels"] == CHANNELS and set(meta) >= CONTRACT_KEYS
    info = ModelInfo.from_metadata(meta, out)
    assert info.to_metadata() == meta and info.channel_spec(out).n_channels == 5
    # the ONNX input is (N, H, W, 5) and agrees with Keras on 5-channel tiles of another size
    x = random_tiles(1, 236 + 16, seed=7, channels=5)
    np.testing.assert_allclose(onnx_predict(out, x), load_model(channel_run).predict(x, verbose=0), atol=1e-4)
    model = load_onnx(out, provider="cpu")
    assert model.n_channels == 5 and model.spec.text == CHANNELS
    rgb = read_map(day1)
    prob = predict(model, rgb, ls=132.9, bounds=(0, 3600, 300, 1500), background=composite_of_files([day1], [10]))
    inside = prob[300:1500]
    assert ((inside >= 0) & (inside <= 1) | (inside == -999)).all() and (inside >= 0).mean() > 0.5


def test_a_channel_model_without_its_run_json_is_refused_with_one_line(channel_run, tmp_path):
    import shutil

    alone = tmp_path / "alone.keras"
    shutil.copyfile(channel_run / "best.keras", alone)
    with pytest.raises(ValueError, match=r"alone\.keras: the model takes 5 input channels, but there is no run\.json"):
        export_command(alone, tmp_path / "alone.onnx", threshold=0.5)
    assert not (tmp_path / "alone.onnx").exists()
    folder = tmp_path / "run"
    shutil.copytree(channel_run, folder)
    run_json = folder / "run.json"
    record = json.loads(run_json.read_text())
    record["config"]["channels"] = "rgb,bdiff10"  # 4 channels: not what the model takes
    run_json.write_text(json.dumps(record))
    result = CliRunner().invoke(app, [str(folder), "--out", str(tmp_path / "bad.onnx")])
    assert result.exit_code == 1 and "channels 'rgb,bdiff10' are 4 input channels, the model takes 5" in result.output
    assert not (tmp_path / "bad.onnx").exists()
