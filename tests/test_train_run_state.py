"""train_kit.run_state: state.json as a dataclass that reads every earlier state.json and
writes the same nine keys, and the end-of-epoch bookkeeping (best, early stop, LR halving)."""

from __future__ import annotations

import json
import math

import pytest

from mars_cloudmask.train_kit.checkpoint import CheckpointError
from mars_cloudmask.train_kit.config import TrainConfig
from mars_cloudmask.train_kit.run_state import RunState, read_state, write_state

KEYS = {"epoch", "best_val_loss", "best_epoch", "wait", "lr_wait", "lr", "wall_seconds", "stopped", "best_val"}

# state.json of a real run after its 2nd epoch, as written by train.py before RunState existed
# (a dict; no "stopped" key until early stopping set it)
WRITTEN_BY_THE_DICT_VERSION = """{
  "epoch": 2,
  "best_val_loss": 0.3709646165370941,
  "best_epoch": 2,
  "wait": 0,
  "lr_wait": 0,
  "lr": 0.0009829629131445341,
  "wall_seconds": 2268.0172238349915,
  "best_val": {
    "loss": 0.3709646165370941,
    "threshold": 0.912,
    "accuracy": 0.9502752396192529,
    "iou": 0.6960050539036432,
    "precision": 0.8070399426237558,
    "recall": 0.8349509585501405,
    "f1": 0.8207582309989815,
    "best_threshold": 0.89,
    "best_threshold_f1": 0.8210532674934077,
    "at_best_threshold": {
      "accuracy": 0.9495502491836867,
      "iou": 0.6964294864686065,
      "precision": 0.7950400797666372,
      "recall": 0.8488263050842402,
      "f1": 0.8210532674934077
    }
  }
}
"""


def cfg(**kw) -> TrainConfig:
    return TrainConfig(data=[], out="", val_days=[], **kw)


def test_a_state_written_by_the_dict_version_reads_and_writes_the_same_values(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(WRITTEN_BY_THE_DICT_VERSION)
    old = json.loads(WRITTEN_BY_THE_DICT_VERSION)
    state = read_state(path, lr=1e-3)
    assert (state.epoch, state.best_epoch, state.lr, state.stopped) == (2, 2, 0.0009829629131445341, False)
    assert state.best_val["at_best_threshold"]["f1"] == 0.8210532674934077
    write_state(path, state)
    again = json.loads(path.read_text())
    assert set(again) == KEYS
    assert again == {**old, "stopped": False}  # every value as it was; the one missing key at its default
    assert list(again)[:7] == list(old)[:7]  # and in the same order
    assert read_state(path, lr=1e-3) == state


def test_an_infinite_best_loss_round_trips_as_infinity(tmp_path):
    """Before any finite validation loss, best_val_loss is inf: written as JSON Infinity, as json.dumps does."""
    path = tmp_path / "state.json"
    # what the dict version wrote after a first epoch whose validation loss was NaN (no best yet)
    path.write_text(
        json.dumps(
            {
                "epoch": 1,
                "best_val_loss": math.inf,
                "best_epoch": 0,
                "wait": 1,
                "lr_wait": 1,
                "lr": 0.01,
                "wall_seconds": 3.5,
            },
            indent=2,
        )
    )
    state = read_state(path, lr=1e-3)
    assert state.best_val_loss == math.inf and state.best_val == {} and state.wait == 1
    write_state(path, state)
    assert '"best_val_loss": Infinity' in path.read_text()
    assert read_state(path, lr=1e-3).best_val_loss == math.inf


def test_missing_keys_take_their_defaults_and_lr_the_runs_own():
    state = RunState.from_json({"epoch": 3}, lr=0.005)
    assert state == RunState(
        lr=0.005,
        epoch=3,
        best_val_loss=math.inf,
        best_epoch=0,
        wait=0,
        lr_wait=0,
        wall_seconds=0.0,
        stopped=False,
        best_val={},
    )
    assert RunState.from_json(state.to_json(), lr=1.0) == state


def test_a_malformed_state_is_named_on_one_line(tmp_path):
    path = tmp_path / "state.json"
    for text, reason in (
        ('{"epoch": "three"}', "epoch: expected a whole number"),
        ('{"epoch": 2.5}', "epoch: expected a whole number"),
        ('{"best_val": [1]}', "best_val: expected a JSON object"),
        ("[1, 2]", "expected a JSON object"),
        ('{"epoch": ', "unreadable JSON"),
    ):
        path.write_text(text)
        with pytest.raises(CheckpointError, match=reason) as info:
            read_state(path, lr=1e-3)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_lower_loss_is_a_new_best_and_resets_both_counters():
    state = RunState(lr=0.01, epoch=4, best_val_loss=0.5, best_epoch=2, wait=2, lr_wait=1)
    assert state.end_epoch(4, 0.4, {"loss": 0.4}, cfg(patience=3, lr_patience=2))
    assert (state.epoch, state.best_epoch, state.best_val_loss, state.wait, state.lr_wait) == (5, 5, 0.4, 0, 0)
    assert state.best_val == {"loss": 0.4} and state.lr == 0.01 and not state.stopped


def test_flat_epochs_halve_a_plateau_lr_and_then_stop_the_run():
    state = RunState(lr=0.01, epoch=1, best_val_loss=0.5, best_epoch=1, best_val={"loss": 0.5})
    c = cfg(patience=3, lr_patience=2)
    assert not state.end_epoch(1, 0.5, {"loss": 0.5}, c)  # equal is not better
    assert (state.wait, state.lr_wait, state.lr) == (1, 1, 0.01)
    state.end_epoch(2, 0.6, {"loss": 0.6}, c)
    assert (state.wait, state.lr_wait, state.lr, state.stopped) == (2, 0, 0.005, False)
    state.end_epoch(3, 0.7, {"loss": 0.7}, c)
    assert (state.epoch, state.wait, state.stopped, state.best_epoch, state.best_val) == (4, 3, True, 1, {"loss": 0.5})


def test_a_cosine_run_never_halves_its_lr():
    state = RunState(lr=0.01, best_val_loss=0.1)
    for epoch in range(3):
        state.end_epoch(epoch, 0.2, {}, cfg(lr_schedule="cosine", lr_patience=1, patience=10))
    assert state.lr == 0.01 and state.wait == 3


def test_metrics_json_follows_the_state():
    state = RunState(
        lr=0.01,
        epoch=3,
        best_epoch=2,
        stopped=True,
        wall_seconds=12.345,
        best_val={"loss": 0.3, "best_threshold": 0.47},
    )
    assert state.metrics({"epoch": 3}) == {
        "best_epoch": 2,
        "epochs_run": 3,
        "stopped_early": True,
        "threshold": 0.47,
        "best_val": state.best_val,
        "wall_seconds": 12.3,
        "last": {"epoch": 3},
    }
    assert RunState(lr=0.01).metrics({})["threshold"] is None
