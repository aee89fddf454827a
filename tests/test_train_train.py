"""train_kit.train, .averaging, .validation and cm-train: a tiny U-Net learns synthetic clouds,
checkpoints, resumes.

Tiny settings everywhere (width 2, tiles of 52 px output, a few steps) keep this fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mars_cloudmask.train_kit.averaging import average_epochs, average_name
from mars_cloudmask.train_kit.checkpoint import (
    BEST,
    CURVES,
    EPOCHS,
    LAST,
    METRICS,
    STATE,
    CheckpointError,
    epoch_weights,
    load_model,
)
from mars_cloudmask.train_kit.cli import app, average_app
from mars_cloudmask.train_kit.config import TrainConfig
from mars_cloudmask.train_kit.data import DataError
from mars_cloudmask.train_kit.train import train
from mars_cloudmask.train_kit.validation import revalidate
from tests.test_train_data import TILE_OUT, write_labelled


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    return write_labelled(tmp_path_factory.mktemp("labels") / "P01", days=(1, 2, 3))


def tiny(labelled: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        data=[str(labelled)],
        out=str(out),
        val_days=[3],
        epochs=3,
        batch_size=4,
        steps_per_epoch=6,
        width=2,
        depth=4,
        lr=1e-2,
        w0=0.5,
        tile_out=TILE_OUT,
        seed=0,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(labelled, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny(labelled, out), log=lambda _: None)
    return out


def test_loss_goes_down_and_run_files_appear(trained):
    history = json.loads((trained / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    for name in (BEST, LAST, STATE, METRICS, CURVES, "run.json"):
        assert (trained / name).is_file(), name
    metrics = json.loads((trained / METRICS).read_text())
    assert metrics["best_epoch"] in (1, 2, 3)
    assert set(metrics["best_val"]) >= {"loss", "f1", "iou", "accuracy", "precision", "recall", "best_threshold"}
    run = json.loads((trained / "run.json").read_text())
    assert run["split"]["val"] == ["P01day03"] and run["split"]["train"] == ["P01day01", "P01day02"]
    model = load_model(trained)
    assert model.get_layer("down0_conv1").filters == 2


def test_revalidate_reproduces_the_best_epoch(trained, tmp_path):
    import shutil

    run = tmp_path / "tiny"
    shutil.copytree(trained, run)
    before = json.loads((run / METRICS).read_text())["best_val"]
    after = revalidate(run)
    assert after["loss"] == pytest.approx(before["loss"], rel=1e-4)
    assert after["at_best_threshold"]["f1"] == pytest.approx(before["at_best_threshold"]["f1"], abs=1e-6)


def test_resume_continues_and_keeps_the_better_checkpoint(labelled, trained, tmp_path):
    import shutil

    run = tmp_path / "tiny"
    shutil.copytree(trained, run)
    state = json.loads((run / STATE).read_text())
    # pretend an earlier epoch was far better: the resumed epoch must not replace best.keras
    state["best_val_loss"] = -1.0
    del state["stopped"]  # as state.json was before RunState: no "stopped" until early stopping
    (run / STATE).write_text(json.dumps(state))
    best_bytes = (run / BEST).read_bytes()
    last_before = (run / LAST).stat().st_mtime_ns
    train(tiny(labelled, run, epochs=4), log=lambda _: None)
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert (run / BEST).read_bytes() == best_bytes
    assert (run / LAST).stat().st_mtime_ns != last_before
    assert json.loads((run / STATE).read_text())["best_val_loss"] == -1.0


def test_resume_refuses_other_settings(labelled, trained, tmp_path):
    import shutil

    run = tmp_path / "tiny"
    shutil.copytree(trained, run)
    with pytest.raises(ValueError, match=r"run\.json: the run was started with other settings: width=2 \(now 4\)"):
        train(tiny(labelled, run, epochs=4, width=4), log=lambda _: None)


def test_corrupt_checkpoint_is_named(labelled, trained, tmp_path):
    import shutil

    run = tmp_path / "tiny"
    shutil.copytree(trained, run)
    (run / LAST).write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match=r"last\.keras: corrupt or unreadable checkpoint"):
        train(tiny(labelled, run, epochs=4), log=lambda _: None)


def test_validation_day_must_exist(labelled, tmp_path):
    with pytest.raises(DataError, match="none of the validation days"):
        train(tiny(labelled, tmp_path / "r", val_days=[9]), log=lambda _: None)


def test_cli_reports_bad_data_on_one_line(tmp_path):
    folder = write_labelled(tmp_path / "P01", days=(1, 2), list_days=(1,))
    result = CliRunner().invoke(app, ["--data", str(folder), "--val-days", "2", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "P01day02 missing from" in lines[0] and "list_ls.txt" in lines[0]
    assert not (tmp_path / "run").exists()


def test_cli_trains_and_resumes(labelled, tmp_path):
    def args(epochs: int) -> list[str]:
        return [
            "--data",
            str(labelled),
            "--val-days",
            "3",
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            str(epochs),
            "--steps-per-epoch",
            "2",
            "--batch-size",
            "2",
            "--width",
            "2",
            "--tile-out",
            str(TILE_OUT),
        ]

    first = CliRunner().invoke(app, args(1))
    assert first.exit_code == 0, first.output
    assert "best epoch 1" in first.output
    again = CliRunner().invoke(app, args(2))  # one more epoch, resumed
    assert again.exit_code == 0, again.output
    assert "resuming" in again.output
    assert json.loads((tmp_path / "run" / STATE).read_text())["epoch"] == 2


def test_a_run_recorded_before_a_setting_existed_resumes_with_its_default(labelled, trained, tmp_path):
    """run.json of an older version lacks bn_momentum: resuming with the default is the same run."""
    import shutil

    run = tmp_path / "tiny"
    shutil.copytree(trained, run)
    record = json.loads((run / "run.json").read_text())
    del record["config"]["bn_momentum"]
    (run / "run.json").write_text(json.dumps(record))
    train(tiny(labelled, run, epochs=4), log=lambda _: None)
    assert json.loads((run / STATE).read_text())["epoch"] == 4
    with pytest.raises(ValueError, match=r"bn_momentum=0\.99 \(now 0\.9\)"):
        train(tiny(labelled, run, epochs=5, bn_momentum=0.9), log=lambda _: None)


def test_bn_momentum_reaches_every_batchnorm_layer(labelled, tmp_path):
    run = tmp_path / "m09"
    train(tiny(labelled, run, epochs=1, bn_momentum=0.9), log=lambda _: None)
    model = load_model(run / BEST)
    momenta = {layer.momentum for layer in model.layers if layer.__class__.__name__ == "BatchNormalization"}
    assert momenta == {0.9}
    assert json.loads((run / "run.json").read_text())["config"]["bn_momentum"] == 0.9


def test_each_epoch_keeps_its_weights_and_the_last_ones_are_last_keras(trained):
    import numpy as np

    kept = sorted(p.name for p in (trained / EPOCHS).iterdir())
    assert kept == ["epoch-001.weights.h5", "epoch-002.weights.h5", "epoch-003.weights.h5"]
    model = load_model(trained / LAST)
    last = model.get_weights()
    model.load_weights(epoch_weights(trained, 3))
    assert all(np.array_equal(a, b) for a, b in zip(last, model.get_weights(), strict=True))


def test_average_of_epochs_is_the_mean_of_their_weights_and_is_scored(trained, tmp_path):
    import shutil

    import numpy as np

    run = tmp_path / "tiny"
    shutil.copytree(trained, run)
    result = average_epochs(run, [2, 3])
    assert result["epochs"] == [2, 3]
    assert 0.05 <= result["threshold"] <= 0.95 and result["best_val"]["loss"] > 0
    averaged = load_model(run / "average-002-003.keras")
    model = load_model(run / LAST)
    model.load_weights(epoch_weights(run, 2))
    second = model.get_weights()
    model.load_weights(epoch_weights(run, 3))
    for a, b, mean in zip(second, model.get_weights(), averaged.get_weights(), strict=True):
        np.testing.assert_allclose(mean, (a.astype(np.float64) + b) / 2, rtol=1e-6, atol=1e-7)
    assert json.loads((run / "average-002-003.json").read_text())["epochs"] == [2, 3]
    assert average_name([3, 1, 2]) == "average-001-003" and average_name([1, 3]) == "average-001+003"


def test_cm_average_recompute_bn_keeps_the_mean_weights_and_renews_the_statistics(trained, tmp_path):
    import shutil

    import numpy as np

    run = tmp_path / "tiny"
    shutil.copytree(trained, run)
    result = CliRunner().invoke(average_app, [str(run), "--epochs", "2-3", "--recompute-bn", "2"])
    assert result.exit_code == 0, result.output
    assert "average-002-003-bn.keras" in result.output
    plain = average_epochs(run, [2, 3])
    assert json.loads((run / "average-002-003-bn.json").read_text())["bn_batches"] == 2 and plain["bn_batches"] == 0
    mean, renewed = load_model(run / "average-002-003.keras"), load_model(run / "average-002-003-bn.keras")
    for layer in mean.layers:
        a, b = layer.get_weights(), renewed.get_layer(layer.name).get_weights()
        if layer.__class__.__name__ == "BatchNormalization":  # gamma, beta kept; moving mean, variance new
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
            assert not np.allclose(a[2], b[2])
        else:
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)


def test_cm_average_names_a_missing_epoch_on_one_line(trained, tmp_path):
    import shutil

    run = tmp_path / "tiny"
    shutil.copytree(trained, run)
    result = CliRunner().invoke(average_app, [str(run), "--epochs", "2-4"])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "epoch-004.weights.h5: missing" in lines[0]
    assert not list(run.glob("average-*"))


def test_no_keep_epochs_keeps_no_weights(labelled, tmp_path):
    run = tmp_path / "lean"
    train(tiny(labelled, run, epochs=1, keep_epochs=False), log=lambda _: None)
    assert (run / LAST).is_file() and not (run / EPOCHS).exists()


def test_a_resumed_run_is_the_run_it_would_have_been(labelled, trained, tmp_path):
    """2 epochs, stop, resume to 3: the same losses and the same weights as 3 epochs in one go."""
    import numpy as np

    run = tmp_path / "stopped"
    train(tiny(labelled, run, epochs=2), log=lambda _: None)
    train(tiny(labelled, run, epochs=3), log=lambda _: None)
    once = json.loads((trained / "history.json").read_text())
    resumed = json.loads((run / "history.json").read_text())
    assert [h["loss"] for h in resumed] == [h["loss"] for h in once]
    for a, b in zip(load_model(run / LAST).get_weights(), load_model(trained / LAST).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_init_starts_from_another_models_weights(labelled, trained, tmp_path):
    """Fine-tuning: before its first step the new run holds the given model's weights exactly,
    and its first epoch starts far below a fresh run's loss (the weights were already trained)."""
    import numpy as np

    from mars_cloudmask.train_kit.train import initial_model

    cfg = tiny(labelled, tmp_path / "ft", epochs=1, init=str(trained / BEST), bn_momentum=0.9)
    start = initial_model(cfg)
    for a, b in zip(start.get_weights(), load_model(trained / BEST).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert {layer.momentum for layer in start.layers if layer.__class__.__name__ == "BatchNormalization"} == {0.9}
    train(cfg, log=lambda _: None)
    fresh = json.loads((trained / "history.json").read_text())[0]["loss"]
    tuned = json.loads((tmp_path / "ft" / "history.json").read_text())[0]["loss"]
    assert tuned < 0.8 * fresh


def test_init_of_another_architecture_is_named(labelled, trained, tmp_path):
    with pytest.raises(CheckpointError, match=r"best\.keras: width/depth \(2, 4\) differ from the run's \(4, 4\)"):
        train(tiny(labelled, tmp_path / "wide", width=4, init=str(trained)), log=lambda _: None)
    assert not (tmp_path / "wide").exists()


def test_cosine_schedule_decays_the_lr_per_epoch_and_never_halves(labelled, tmp_path):
    import math

    run = tmp_path / "cos"
    train(tiny(labelled, run, epochs=4, lr_schedule="cosine", lr_patience=1), log=lambda _: None)
    lrs = [h["lr"] for h in json.loads((run / "history.json").read_text())]
    assert lrs == pytest.approx([1e-2 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)])
    with pytest.raises(ValueError, match=r"epochs=4 \(now 6\)"):  # the schedule depends on --epochs
        train(tiny(labelled, run, epochs=6, lr_schedule="cosine", lr_patience=1), log=lambda _: None)


def test_unknown_lr_schedule_is_refused_before_training(labelled, tmp_path):
    with pytest.raises(ValueError, match="--lr-schedule 'step'"):
        train(tiny(labelled, tmp_path / "x", lr_schedule="step"), log=lambda _: None)
    assert not (tmp_path / "x").exists()


def test_a_net_of_another_depth_trains_on_tiles_of_its_own_margin(labelled, tmp_path):
    # depth 3: 44 px of context per side, so 52-px output tiles are cut 140 px wide
    train(tiny(labelled, tmp_path / "d3", depth=3, epochs=1, steps_per_epoch=2), log=lambda _: None)
    model = load_model(tmp_path / "d3")
    assert model.input_shape[1:] == (None, None, 3)
    x = np.zeros((1, TILE_OUT + 88, TILE_OUT + 88, 3), np.uint8)
    assert model.predict(x, verbose=0).shape == (1, TILE_OUT, TILE_OUT, 1)
    assert json.loads((tmp_path / "d3" / "history.json").read_text())[0]["epoch"] == 1


def test_a_tile_size_the_depth_cannot_produce_is_refused_before_training(labelled, tmp_path):
    with pytest.raises(
        ValueError, match=r"--tile-out 52 does not fit --depth 5: output tile size 52 px is not 4 mod 32"
    ):
        train(tiny(labelled, tmp_path / "d5", depth=5), log=lambda _: None)
    assert not (tmp_path / "d5").exists()


def test_extra_channels_train_are_recorded_and_must_match_on_resume(labelled, tmp_path):
    """--channels rgb,bdiff10,lat: a 5-channel net trains on the labelled days with the
    background of the given maps; run.json records the spec; a resume with another spec is refused."""
    from mars_cloudmask.train_kit.model import input_channels

    run = tmp_path / "bdiff"
    maps = sorted(str(p) for p in (labelled / "mdgms").glob("*.jpeg"))
    cfg = tiny(labelled, run, epochs=1, steps_per_epoch=2, channels="rgb,bdiff10,lat", background_maps=maps)
    train(cfg, log=lambda _: None)
    assert input_channels(load_model(run)) == 5
    config = json.loads((run / "run.json").read_text())["config"]
    assert config["channels"] == "rgb,bdiff10,lat" and config["background_maps"] == maps
    with pytest.raises(ValueError, match=r"channels='rgb,bdiff10,lat' \(now 'rgb'\)"):
        train(tiny(labelled, run, epochs=2, steps_per_epoch=2, background_maps=maps), log=lambda _: None)


def test_channels_that_need_only_the_map_and_its_ls_train_without_background_maps(labelled, tmp_path):
    """--channels rgb,cosi,blocal: illumination from each labelled day's Ls, local contrast from the map itself."""
    from mars_cloudmask.train_kit.model import input_channels

    run = tmp_path / "cosi"
    train(tiny(labelled, run, epochs=1, steps_per_epoch=2, channels="rgb,cosi,blocal"), log=lambda _: None)
    assert input_channels(load_model(run)) == 5


def test_a_background_channel_without_background_maps_is_refused_before_training(labelled, tmp_path):
    with pytest.raises(DataError, match="need a background: give --background-maps"):
        train(tiny(labelled, tmp_path / "nobg", channels="rgb,bdiff10"), log=lambda _: None)
    with pytest.raises(DataError, match="unknown channel 'blue'"):
        train(tiny(labelled, tmp_path / "bad", channels="rgb,blue"), log=lambda _: None)
    assert not (tmp_path / "nobg").exists() and not (tmp_path / "bad").exists()


def test_init_with_other_input_channels_is_named(labelled, trained, tmp_path):
    with pytest.raises(CheckpointError, match=r"3 input channels, the run's --channels 'rgb,lat' has 4"):
        train(tiny(labelled, tmp_path / "lat", channels="rgb,lat", init=str(trained)), log=lambda _: None)


def test_a_channel_run_is_scored_on_whole_maps_with_its_own_inputs(labelled, tmp_path):
    """train_kit.evaluate.keras_scorer feeds a 5-channel run's model the run's own channels."""
    from mars_cloudmask.infer.geometry import INVALID
    from mars_cloudmask.infer.maps import read_map
    from mars_cloudmask.train_kit.evaluate import keras_scorer, predict_map

    run = tmp_path / "lat"
    maps = sorted(str(p) for p in (labelled / "mdgms").glob("*.jpeg"))
    train(
        tiny(labelled, run, epochs=1, steps_per_epoch=1, channels="rgb,bdiff10,sinls", background_maps=maps),
        log=lambda _: None,
    )
    scorer = keras_scorer(run / LAST)
    path = labelled / "mdgms" / "P01day01.jpeg"
    rgb = read_map(path)
    image = scorer.inputs(path, rgb, "label", 135.0)
    assert image.shape == (1801, 3600, 5) and np.all(image[..., 4] == 128 + round(127 * np.sin(np.radians(135.0))))
    prob = predict_map(image, 135.0, scorer.run_tiles, scorer.margin, scorer.align)
    inside = prob > INVALID + 0.5
    assert inside.sum() > 1_000_000 and 0 <= prob[inside].min() and prob[inside].max() <= 1


def test_a_refit_without_validation_days_trains_on_every_day_and_keeps_the_last_epoch(labelled, tmp_path):
    run = tmp_path / "refit"
    cfg = tiny(labelled, run, val_days=[], epochs=2, lr_schedule="cosine", patience=2, keep_epochs=False)
    train(cfg, log=lambda _: None)
    record = json.loads((run / "run.json").read_text())
    assert record["split"]["train"] == ["P01day01", "P01day02", "P01day03"] and record["split"]["val"] == []
    metrics = json.loads((run / METRICS).read_text())
    assert (metrics["best_epoch"], metrics["epochs_run"], metrics["threshold"]) == (2, 2, None)
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and not any("val_loss" in h for h in history)
    assert (run / BEST).is_file() and (run / LAST).is_file() and (run / CURVES).is_file()


def test_a_refit_is_refused_where_validation_would_choose_an_epoch(labelled, tmp_path):
    for kw in ({"lr_schedule": "plateau", "patience": 5}, {"lr_schedule": "cosine", "patience": 1}):
        with pytest.raises(ValueError, match="--val-days none"):
            train(tiny(labelled, tmp_path / "x", val_days=[], epochs=3, **kw), log=lambda _: None)
    assert not (tmp_path / "x").exists()


def test_cli_refit_needs_the_word_none(labelled, tmp_path):
    result = CliRunner().invoke(app, ["--data", str(labelled), "--val-days", "", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "'none'" in result.output


# --------------------------------------------------------------------------- label archives
@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """A synthetic label archive: subphases PA (days 1, 2), PB (1, 2) and PC (1)."""
    root = tmp_path_factory.mktemp("archive") / "labels"
    for sub, days in (("PA", (1, 2)), ("PB", (1, 2)), ("PC", (1,))):
        write_labelled(root / sub, days=days, prefix=sub)
    return root


def _archive_args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--data", str(root), "--out", str(out), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
        "--width", "2", "--tile-out", str(TILE_OUT), *extra,
    ]


def test_an_archive_trains_one_epoch_split_by_subphase_and_day_and_the_model_card_says_so(archive, tmp_path):
    from mars_cloudmask.export.cli import run_metadata

    out = tmp_path / "run"
    result = CliRunner().invoke(app, _archive_args(archive, out, "--val-subphases", "PB", "--test-days", "2"))
    assert result.exit_code == 0, result.output
    assert "test days PA [2] set aside" in result.output
    record = json.loads((out / "run.json").read_text())
    split = record["split"]
    assert split["train"] == ["PAday01", "PCday01"]
    assert split["val"] == ["PBday01", "PBday02"] and split["test"] == ["PAday02"]
    assert split["subphases"] == {
        "PA": {"train": [1], "val": [], "test": [2]},
        "PB": {"train": [], "val": [1, 2], "test": []},
        "PC": {"train": [1], "val": [], "test": []},
    }
    assert (record["config"]["val_subphases"], record["config"]["test_subphases"]) == (["PB"], [])
    assert json.loads((out / "history.json").read_text())[0]["epoch"] == 1
    card = run_metadata(out)  # what cm-export writes into the model's metadata
    assert json.loads(card["split"])["subphases"] == split["subphases"]
    assert card["training_data"] == str(archive)


def test_a_test_subphase_is_never_loaded(archive, tmp_path):
    out = tmp_path / "run"
    args = _archive_args(archive, out, "--val-days", "2", "--test-subphases", "PC,PB", "--steps-per-epoch", "1")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    split = json.loads((out / "run.json").read_text())["split"]
    assert (split["train"], split["val"]) == (["PAday01"], ["PAday02"])
    assert split["test"] == ["PBday01", "PBday02", "PCday01"]
    assert "test days PB [1, 2], PC [1] set aside" in result.output


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--val-subphases", "PD"), "--val-subphases PD: no such subphase in"),
        (("--val-subphases", "PB", "--test-subphases", "PB,PC"), "--val-subphases and --test-subphases both name PB"),
        (("--val-days", "1", "--test-subphases", "PA,PB,PC"), "none of the validation days [1] is in"),
    ],
)
def test_cm_train_refuses_an_impossible_archive_split_in_one_line(archive, tmp_path, extra, message):
    result = CliRunner().invoke(app, _archive_args(archive, tmp_path / "run", *extra))
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "run").exists()


def test_cm_train_refuses_a_root_without_subphase_folders_in_one_line(tmp_path):
    (tmp_path / "labels" / "notes").mkdir(parents=True)
    result = CliRunner().invoke(app, _archive_args(tmp_path / "labels", tmp_path / "run", "--val-days", "1"))
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "labels: no subphase folder in it" in lines[0], result.output
    assert not (tmp_path / "run").exists()


def test_a_subphase_folder_as_data_records_its_days_as_before(trained):
    split = json.loads((trained / "run.json").read_text())["split"]
    assert split["subphases"] == {"P01": {"train": [1, 2], "val": [3], "test": []}}


def test_a_refit_resumes_without_claiming_a_validation_loss(labelled, tmp_path):
    run = tmp_path / "refit"
    logs: list[str] = []
    cfg = tiny(labelled, run, val_days=[], epochs=1, lr_schedule="cosine", patience=1, keep_epochs=False)
    train(cfg, log=lambda _: None)
    train(cfg, log=logs.append)  # the run is finished: it resumes, says so, and has nothing to do
    assert any("resuming" in m and "(no validation)" in m for m in logs) and not any("inf" in m for m in logs)
