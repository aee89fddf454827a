"""train_kit.config: a run's settings, and which changes a resumed run refuses."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import pytest

from mars_cloudmask.train_kit.config import TrainConfig, changed_settings, check_resumable, run_config


def cfg(**kw) -> TrainConfig:
    base = dict(data=["labels/P01"], out="runs/a", val_days=[16, 17], width=2)
    base.update(kw)
    return TrainConfig(**base)


def test_the_same_settings_resume():
    assert changed_settings(asdict(cfg()), cfg()) == []
    check_resumable(asdict(cfg()), cfg(), "runs/a/run.json")


def test_where_threads_and_kept_epochs_may_change():
    assert changed_settings(asdict(cfg()), cfg(out="elsewhere", threads=1, keep_epochs=False, epochs=80)) == []


def test_each_changed_setting_is_listed_with_both_values():
    assert changed_settings(asdict(cfg()), cfg(width=4, channels="rgb,lat")) == [
        "width=2 (now 4)",
        "channels='rgb' (now 'rgb,lat')",
    ]
    with pytest.raises(
        ValueError,
        match=r"^runs/a/run\.json: the run was started with other settings: "
        r"seed=0 \(now 1\), width=2 \(now 4\)$",
    ):  # TrainConfig order
        check_resumable(asdict(cfg()), cfg(width=4, seed=1), "runs/a/run.json")


def test_a_cosine_schedule_ties_the_run_to_its_epochs():
    recorded = asdict(cfg(lr_schedule="cosine", epochs=4))
    assert changed_settings(recorded, cfg(lr_schedule="cosine", epochs=6)) == ["epochs=4 (now 6)"]


def test_a_setting_recorded_before_it_existed_takes_its_default():
    recorded = asdict(cfg())
    del recorded["bn_momentum"], recorded["channels"]
    assert changed_settings(recorded, cfg()) == []
    assert changed_settings(recorded, cfg(bn_momentum=0.9)) == ["bn_momentum=0.99 (now 0.9)"]


def test_run_config_reads_run_json(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"config": asdict(cfg(width=16)), "w0": 0.3}))
    assert run_config(tmp_path) == cfg(width=16)


@pytest.mark.parametrize(
    "module", ["config", "samples", "batches", "validation", "averaging", "curves", "run_state", "callbacks"]
)
def test_importing_the_kit_without_training_does_not_import_keras(module):
    code = (
        f"import sys; import mars_cloudmask.train_kit.{module}; "
        "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
