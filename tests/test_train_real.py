"""End to end on two real labelled days (skipped without ../shared/data): cm-train, then cm-export.

Tiny settings (width 2, 2 steps of 2 tiles): this checks that the real layout, labels
and maps flow through training and export, not the model's quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mars_cloudmask.export.cli import app as export_app
from mars_cloudmask.export.onnx_export import read_metadata
from mars_cloudmask.train_kit.cli import app as train_app


@pytest.fixture
def two_days(data_dir: Path, tmp_path: Path) -> Path:
    """labels/P01 reduced to days 01 and 02 (symlinks, nothing copied)."""
    src = data_dir / "labels" / "P01"
    dst = tmp_path / "P01"
    (dst / "mdgms").mkdir(parents=True)
    (dst / "cloudmask").mkdir()
    for name in ("P01day01", "P01day02"):
        (dst / "mdgms" / f"{name}.jpeg").symlink_to(src / "mdgms" / f"{name}.jpeg")
        (dst / "cloudmask" / f"cloudmask_{name}.ncdf").symlink_to(src / "cloudmask" / f"cloudmask_{name}.ncdf")
    (dst / "list_ls.txt").symlink_to(src / "list_ls.txt")
    return dst


@pytest.mark.slow
def test_train_and_export_two_real_days(two_days: Path, tmp_path: Path):
    run = tmp_path / "run"
    result = CliRunner().invoke(
        train_app,
        [
            "--data",
            str(two_days),
            "--val-days",
            "2",
            "--out",
            str(run),
            "--epochs",
            "1",
            "--steps-per-epoch",
            "2",
            "--batch-size",
            "2",
            "--width",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    split = json.loads((run / "run.json").read_text())["split"]
    assert split["train"] == ["P01day01"] and split["val"] == ["P01day02"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["best_val"]["accuracy"] <= 1.0 and metrics["best_val"]["loss"] > 0
    out = tmp_path / "real.onnx"
    result = CliRunner().invoke(
        export_app, [str(run), "--out", str(out), "--check-map", str(two_days / "mdgms" / "P01day01.jpeg")]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["parity_tiles"]["real"] == 2 and report["parity_max_abs_diff"]["real"] < 1e-4
    assert json.loads(read_metadata(out)["split"])["train"] == ["P01day01"]


def test_reference_seasons_as_weak_targets(data_dir: Path):
    from mars_cloudmask.infer.geometry import bounds_from_ls
    from mars_cloudmask.infer.maps import read_map
    from mars_cloudmask.train_kit.data import load_sample, scan_reference

    refs = scan_reference(data_dir / "mdgm" / "P", data_dir / "reference" / "P")
    assert refs and all(r.source == "reference" for r in refs)
    assert not any(r.mask.parent.name == "P01" for r in refs)  # P01 is excluded: it holds the test days
    sample = refs[0]
    tm = load_sample(sample)
    box = bounds_from_ls(read_map(sample.image), sample.ls)
    # the target canvas is the Ls box (extended to the seamless plan), 0/1 inside, -1 beyond
    assert tm.target.shape[0] >= box.height and tm.target.shape[1] >= box.width
    import numpy as np

    assert set(np.unique(tm.target).tolist()) <= {-1, 0, 1}
    assert (tm.target[box.height :] == -1).all()


def test_reference_of_one_subphase(data_dir: Path):
    """A single subphase folder works as a reference root: its maps are found by subphase name."""
    from mars_cloudmask.train_kit.data import scan_reference

    refs = scan_reference(data_dir / "mdgm" / "P", data_dir / "reference" / "P" / "P07")
    assert refs and {r.mask.parent.name for r in refs} == {"P07"}
    assert all(r.image.parent.name == "P07" and r.image.is_file() for r in refs)
