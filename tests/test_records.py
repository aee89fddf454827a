"""Run records and the contents file (infer/records.py): ``cm-infer-contents.json`` says what the
disk holds, whoever wrote it, however the runs before ended (issue 32 items 5 and 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mars_cloudmask.infer import records
from mars_cloudmask.infer.engine import run
from mars_cloudmask.infer.maps import find_maps
from mars_cloudmask.infer.netcdf import read_attrs
from mars_cloudmask.infer.plan import InferOptions
from mars_cloudmask.infer.records import CONTENTS
from mars_cloudmask.infer.runtime import load_model

KEYS = ["P/P01/cloudmasks/cloudmask_P01_day01.ncdf", "P/P01/cloudmasks/cloudmask_P01_day02.ncdf"]


@pytest.fixture(scope="module")
def model(tiny_model):
    return load_model(tiny_model, provider="cpu")


def contents_of(out: Path) -> dict:
    return json.loads((out / CONTENTS).read_text())


def test_the_masks_of_a_killed_run_are_listed_by_the_next_run(model, map_tree, tmp_path):
    """A run killed (SIGKILL) after its first mask never updates the contents: the rerun lists it."""
    out = tmp_path / "out"
    jobs = find_maps(map_tree)
    killed = run(jobs[:1], model, InferOptions(out=out), write_record=False)  # its mask, no record
    rerun = run(jobs, model, InferOptions(out=out))
    assert [r.status for r in rerun.results] == ["skipped", "done"]
    contents = contents_of(out)
    assert sorted(contents["masks"]) == KEYS
    first = contents["masks"][KEYS[0]]
    assert first["run_id"] == killed.record["run_id"] != rerun.record["run_id"]
    assert first["source"] == str(jobs[0].path) and first["model_sha256"] == model.sha256
    assert contents["masks"][KEYS[1]]["run_id"] == rerun.record["run_id"]
    assert killed.record["run_id"] in contents["runs"]
    assert any("repaired" in n and "1 mask on disk it did not list" in n for n in rerun.notes), rerun.notes


def test_a_truncated_contents_file_is_rebuilt_from_the_disk_and_said(model, map_tree, tmp_path):
    out = tmp_path / "out"
    jobs = find_maps(map_tree)
    first = run(jobs, model, InferOptions(out=out))
    text = (out / CONTENTS).read_text()
    (out / CONTENTS).write_text(text[: len(text) // 2])
    again = run(jobs, model, InferOptions(out=out))
    contents = contents_of(out)
    assert sorted(contents["masks"]) == KEYS
    assert {e["run_id"] for e in contents["masks"].values()} == {first.record["run_id"]}
    assert [n for n in again.notes if "rebuilt from the 2 masks on disk" in n and str(out / CONTENTS) in n]


def test_a_concurrent_overwrite_run_cannot_leave_the_contents_naming_the_wrong_writer(model, map_tree, tmp_path):
    """Run A writes binary masks, run B overwrites them with probabilities and writes its records,
    then A writes its records last: the contents must name B, and binary false, as the files do."""
    out = tmp_path / "out"
    jobs = find_maps(map_tree)
    a = run(jobs, model, InferOptions(out=out, binary=True), write_record=False)
    b = run(jobs, model, InferOptions(out=out, overwrite=True))
    records.write_records(out, a.record)  # A finishes last
    masks = contents_of(out)["masks"]
    for key in KEYS:
        assert masks[key]["run_id"] == b.record["run_id"] and masks[key]["binary"] is False
        assert read_attrs(out / key)["run_id"] == b.record["run_id"]


@pytest.mark.parametrize("extras", [dict(quicklook=True), dict(copy_maps=True)])
def test_a_rerun_that_only_adds_extras_is_not_credited_with_the_masks(model, map_tree, tmp_path, extras):
    out = tmp_path / "out"
    jobs = find_maps(map_tree)
    first = run(jobs, model, InferOptions(out=out))
    rerun = run(jobs, model, InferOptions(out=out, **extras))
    assert rerun.counts()["done"] == 2 and rerun.record["run_id"] != first.record["run_id"]
    masks = contents_of(out)["masks"]
    for key in KEYS:
        assert masks[key]["run_id"] == first.record["run_id"]
        assert first.record["run_id"] in read_attrs(out / key)["history"]
    assert not rerun.notes


def test_a_mask_removed_by_hand_leaves_the_contents(model, map_tree, tmp_path):
    out = tmp_path / "out"
    jobs = find_maps(map_tree)
    run(jobs, model, InferOptions(out=out))
    (out / KEYS[1]).unlink()
    again = run(jobs[:1], model, InferOptions(out=out))
    assert sorted(contents_of(out)["masks"]) == KEYS[:1]
    assert [n for n in again.notes if "1 entry whose mask is gone" in n]


def test_entries_naming_the_wrong_writer_are_corrected_from_the_masks(model, map_tree, tmp_path):
    """Contents left by an older version (no fingerprints) after a concurrent run: corrected."""
    out = tmp_path / "out"
    jobs = find_maps(map_tree)
    first = run(jobs, model, InferOptions(out=out))
    contents = contents_of(out)
    for entry in contents["masks"].values():
        del entry["fingerprint"]
        entry.update(run_id="20200101T000000Z-1", binary=True)
    (out / CONTENTS).write_text(json.dumps(contents))
    again = run(jobs, model, InferOptions(out=out))
    masks = contents_of(out)["masks"]
    assert {(e["run_id"], e["binary"]) for e in masks.values()} == {(first.record["run_id"], False)}
    assert again.notes == [f"{out / CONTENTS}: repaired from the masks on disk (2 entries naming the wrong writer)"]
