"""The shipped model (models/): it loads with its metadata, and its accuracy does not regress.

The regression guard runs ``cm-infer``'s pipeline with the shipped model on two held-out
labelled days and fails if their pooled F1 drops more than 0.02 below the figure recorded in
the model card (``models/cloudmask-unet.card.json``, written by
``python -m mars_cloudmask.benchmarks.model_card``).  Skipped without ``../shared/data``.
"""

from __future__ import annotations

import json
import shutil

import pytest

from mars_cloudmask.infer.engine import run_folder
from mars_cloudmask.infer.runtime import load_model
from mars_cloudmask.infer.science.evaluate import evaluate
from mars_cloudmask.infer.science.masks import find_masks, select_days
from mars_cloudmask.models import default_model_path

CARD = default_model_path().with_suffix(".card.json")


@pytest.fixture(scope="module")
def shipped():
    if not default_model_path().is_file():
        pytest.fail(f"no model shipped at {default_model_path()}")
    return load_model(provider="cpu")


def test_the_shipped_model_carries_the_metadata_cm_infer_needs(shipped):
    info = shipped.info
    assert info.name == "cloudmask-unet" and info.tile_out == info.tile_in - 2 * info.margin
    assert 0.0 < info.threshold < 1.0
    meta = shipped.info.metadata
    split = json.loads(meta["split"])
    assert not set(split["train"]) & (set(split["val"]) | set(split["test"]))
    assert "cm-train" in meta["training_command"]


def test_the_model_card_figures_belong_to_the_shipped_file(shipped):
    card = json.loads(CARD.read_text())
    assert card["model"]["sha256"] == shipped.sha256, "card.json is from another model file: rerun model_card"
    assert card["model"]["polar_offset"] == shipped.info.polar_offset


def test_f1_on_two_held_out_days_does_not_drop_below_the_model_card(shipped, data_dir, tmp_path):
    card = json.loads(CARD.read_text())
    recorded = card["labels"]["regression"]
    days = select_days(recorded["days"], find_masks(data_dir / "labels" / "P01"))
    assert len(days) == 2
    src = data_dir / "mdgm" / "P" / "P01"
    tree = tmp_path / "maps" / "P" / "P01"
    tree.mkdir(parents=True)
    shutil.copy(src / "P01_ls.txt", tree)
    for day in days:
        shutil.copy(src / f"{day}_zequat.jpg", tree)

    report = run_folder(tmp_path / "maps", out=tmp_path / "out", model=shipped, stitch=card["stitch"])
    assert report.ok and report.counts()["done"] == 2
    result = evaluate(tmp_path / "out", data_dir / "labels" / "P01", days=days)
    f1 = result.pooled_metrics()["f1"]
    assert f1 >= recorded["model"]["f1"] - 0.02, f"F1 {f1:.4f} < card {recorded['model']['f1']} - 0.02"
    assert result.pooled_metrics()["coverage"] >= recorded["model"]["coverage"] - 0.02


def test_every_shipped_onnx_file_has_the_card_of_its_own_bytes():
    """Each model in models/ (the default and the faster width-8 version 1) has a card whose
    sha256 is that file's, so no figure is quoted for a file it was not measured on."""
    from mars_cloudmask.infer.runtime import file_sha256

    folder = default_model_path().parent
    for onnx in sorted(folder.glob("cloudmask-unet*.onnx")):
        if onnx.stem.endswith("-fp16"):
            continue  # the fp16 twin of the default: its difference is in the export report
        card = json.loads(onnx.with_suffix(".card.json").read_text())
        assert card["model"]["sha256"] == file_sha256(onnx), f"{onnx.name}: card is from another file"
