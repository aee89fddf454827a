"""Runs of a model with extra input channels (infer/composites.py and its use by the engine and
the plan): one background composite per subphase before the maps, written beside the masks,
reused on a rerun, a given one with --background, a one-map folder, an unreadable folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mars_cloudmask.infer import composites
from mars_cloudmask.infer.background import composite_of_files, map_files, read_attrs, read_netcdf, write_netcdf
from mars_cloudmask.infer.channels import model_input, parse_spec
from mars_cloudmask.infer.engine import run
from mars_cloudmask.infer.geometry import INVALID
from mars_cloudmask.infer.maps import find_maps, read_map
from mars_cloudmask.infer.netcdf import find_mask_files, read_mask
from mars_cloudmask.infer.netcdf import read_attrs as read_mask_attrs
from mars_cloudmask.infer.plan import InferOptions, PlanError, resolve_plan
from mars_cloudmask.infer.predict import map_bounds, place_box, plan_for, predict, predict_box
from mars_cloudmask.infer.records import CONTENTS, RUN_RECORD
from mars_cloudmask.infer.runtime import load_model
from tests.synthetic import write_map_tree
from tests.tiny_model import make_tiny_unet_onnx

CHANNELS = "rgb,bdiff10,bdiff50"  # 5 input channels


@pytest.fixture(scope="module")
def five(tmp_path_factory):
    """A tiny 5-channel model (metadata input_channels = CHANNELS) on onnxruntime's CPU provider."""
    path = make_tiny_unet_onnx(tmp_path_factory.mktemp("five") / "five.onnx", seed=1, channels=CHANNELS)
    return load_model(path, provider="cpu")


def composite_path(out: Path, subphase: str = "P01", phase: str = "P") -> Path:
    return out / phase / subphase / f"background_{subphase}.nc"


def by_hand(model, map_path: Path, ls: float, background, channels: str = CHANNELS) -> np.ndarray:
    """The mask of one map computed without the engine: model_input, the tiled predict, place_box."""
    rgb = read_map(map_path)
    image = model_input(rgb, parse_spec(channels), background, ls)
    bounds = map_bounds(rgb, ls, None, model.info.polar_offset)
    box = predict_box(model, image, plan_for(model, bounds, "seamless"), "seamless")
    mask = place_box(rgb, box, bounds)
    np.clip(mask, 0.0, 1.0, out=mask, where=mask > INVALID + 0.5)  # as the engine does
    return mask


def test_the_model_reads_its_channels_and_runs_five_channel_tiles(five):
    assert five.n_channels == 5 and five.spec.text == CHANNELS and five.info.input_channels == CHANNELS
    assert five.run(np.zeros((1, 188, 188, 5), np.uint8)).shape == (1, 4, 4)
    with pytest.raises(ValueError, match=r"five\.onnx: tiles of shape \(1, 188, 188, 3\), the model takes"):
        five.run(np.zeros((1, 188, 188, 3), np.uint8))


def test_a_run_builds_one_composite_and_its_masks_equal_model_input_and_the_tiled_predict(five, tmp_path):
    root = tmp_path / "maps"
    paths = write_map_tree(root, days=(1, 2, 3))
    out = tmp_path / "out"
    reads = composites.CACHE.reads
    report = run(find_maps(root), five, InferOptions(out=out))
    assert report.ok and report.counts() == {"done": 3, "skipped": 0, "failed": 0}
    assert composites.CACHE.reads == reads + 1  # read back once for the three maps
    comp = composite_path(out)
    (result,) = report.composites
    assert (result.status, result.path, result.n_maps, result.folder) == ("built", str(comp), 3, str(paths[0].parent))
    # the composite on disk is the folder's composite (all its maps), as training builds it
    expected_bg = composite_of_files(map_files(paths[0].parent), [10, 50])
    got_bg = read_netcdf(comp)
    assert sorted(got_bg.percentiles) == [10, 50] and got_bg.n_maps == 3
    np.testing.assert_array_equal(got_bg.count, expected_bg.count)
    for q in (10, 50):
        np.testing.assert_array_equal(got_bg.plane(q), expected_bg.plane(q))
    assert read_attrs(comp)["source_folder"] == str(paths[0].parent)
    # exact: the mask is what model_input + the tiled predict give by hand, and what predict gives
    day2 = out / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day02.ncdf"
    np.testing.assert_array_equal(read_mask(day2), by_hand(five, paths[1], 132.9, expected_bg))
    np.testing.assert_array_equal(read_mask(day2), predict(five, read_map(paths[1]), ls=132.9, background=got_bg))
    # the composite is not a mask to the mask finders; the record says which composite each map used
    assert comp not in find_mask_files(out) and len(find_mask_files(out)) == 3
    attrs = read_mask_attrs(day2)
    assert attrs["input_channels"] == CHANNELS and attrs["background_composite"] == str(comp)
    record = json.loads((out / RUN_RECORD).read_text())
    assert [m["background"] for m in record["maps"]] == [str(comp)] * 3
    assert record["backgrounds"][0]["status"] == "built" and record["plan"]["channels"] == CHANNELS
    contents = json.loads((out / CONTENTS).read_text())
    assert {e["background"] for e in contents["masks"].values()} == {str(comp)}
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temporaries left


def test_a_rerun_reuses_the_composite_and_rebuilds_it_when_a_source_map_changes(five, tmp_path, monkeypatch):
    root = tmp_path / "maps"
    paths = write_map_tree(root, days=(1, 2))
    out = tmp_path / "out"
    assert run(find_maps(root), five, InferOptions(out=out)).ok
    comp = composite_path(out)
    stamp = comp.stat().st_mtime_ns
    day1_mask = out / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day01.ncdf"
    first = read_mask(day1_mask)
    day1_mask.unlink()  # one map to redo

    def no_build(*args, **kwargs):
        raise AssertionError("the composite was built again")

    with monkeypatch.context() as m:
        m.setattr(composites, "composite_of_readable", no_build)
        again = run(find_maps(root), five, InferOptions(out=out))
    assert again.counts() == {"done": 1, "skipped": 1, "failed": 0}
    assert [c.status for c in again.composites] == ["reused"] and comp.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(read_mask(day1_mask), first)
    # a changed source map (here: its time stamp) means another composite
    os.utime(paths[1], ns=(paths[1].stat().st_atime_ns, paths[1].stat().st_mtime_ns + 10**9))
    day1_mask.unlink()
    third = run(find_maps(root), five, InferOptions(out=out))
    (result,) = third.composites
    assert result.status == "built" and result.notes == ["existing composite rebuilt (its source maps changed)"]
    assert comp.stat().st_mtime_ns != stamp
    # nothing to predict: no composite needed, none looked at
    assert run(find_maps(root), five, InferOptions(out=out)).composites == []


def test_background_file_is_used_instead_of_the_subphase_composite(five, tmp_path):
    root = tmp_path / "maps"
    paths = write_map_tree(root, days=(1, 2))
    given = tmp_path / "day1-only.nc"
    bg = composite_of_files(paths[:1], [10, 30, 50])
    write_netcdf(bg, given, sources=[paths[0].name])
    out = tmp_path / "out"
    report = run(find_maps(root), five, InferOptions(out=out, background=given))
    assert report.ok and not composite_path(out).exists()
    assert [c.status for c in report.composites] == ["given"] and report.composites[0].path == str(given)
    assert {r.background for r in report.results} == {str(given)}
    day2 = out / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day02.ncdf"
    np.testing.assert_array_equal(read_mask(day2), by_hand(five, paths[1], 132.9, bg))
    own = by_hand(five, paths[1], 132.9, composite_of_files(paths, [10, 50]))
    assert not np.array_equal(read_mask(day2), own)  # the given composite made a difference


def test_background_option_is_settled_in_the_plan(five, tiny_model, tmp_path):
    paths = write_map_tree(tmp_path / "maps", days=(1,))
    good = write_netcdf(composite_of_files(paths, [10, 50]), tmp_path / "bg.nc")
    only10 = write_netcdf(composite_of_files(paths, [10]), tmp_path / "bg10.nc")
    (tmp_path / "junk.nc").write_bytes(b"not netcdf")
    plan = resolve_plan(InferOptions(out=tmp_path / "o", background=good), five)
    assert plan.background == str(good) and plan.percentiles == (10, 50) and plan.channels == CHANNELS
    cases = [
        (five, only10, r"bg10\.nc: background has percentiles \[10\], not \[50\]"),
        (five, tmp_path / "junk.nc", r"junk\.nc: not a background composite"),
        (five, tmp_path / "none.nc", r"none\.nc: no such file"),
        (load_model(tiny_model, provider="cpu"), good, r"input channels 'rgb' need no background composite"),
    ]
    for model, path, message in cases:
        with pytest.raises(PlanError, match=message):
            resolve_plan(InferOptions(out=tmp_path / "o", background=path), model)
    # one composite, one subphase: maps of two folders are refused before anything is written
    write_map_tree(tmp_path / "maps", subphase="P02", days=(1,))
    with pytest.raises(PlanError, match=r"the maps come from 2 folders"):
        run(find_maps(tmp_path / "maps"), five, InferOptions(out=tmp_path / "o", background=good))
    assert not (tmp_path / "o").exists()


def test_a_one_map_folder_gets_a_one_map_composite_and_says_so(five, tmp_path):
    root = tmp_path / "maps"
    write_map_tree(root, days=(1,))
    report = run(find_maps(root), five, InferOptions(out=tmp_path / "out"))
    assert report.ok
    (result,) = report.composites
    assert result.n_maps == 1 and any("composite of 1 map" in n for n in result.notes)
    # every valid pixel is its own background: the bdiff channels hold 128 (no contrast)
    rgb = read_map(find_maps(root)[0].path)
    image = model_input(rgb, parse_spec(CHANNELS), read_netcdf(composite_path(tmp_path / "out")))
    assert set(np.unique(image[..., 3:])) == {128}


def test_an_unreadable_folder_fails_its_maps_with_one_line_and_the_others_go_on(five, tmp_path):
    root = tmp_path / "maps"
    write_map_tree(root, days=(1,))
    bad = write_map_tree(root, subphase="P02", days=(1, 2))
    for p in bad:
        p.write_bytes(os.urandom(3000))
    partly = write_map_tree(root, subphase="P03", days=(1, 2))
    partly[1].write_bytes(b"")  # one unreadable map among readable ones
    report = run(find_maps(root), five, InferOptions(out=tmp_path / "out"))
    assert report.counts() == {"done": 2, "skipped": 0, "failed": 3} and not report.ok
    failed = {r.source: r.reason for r in report.by_status("failed")}
    folder = bad[0].parent
    for p in bad:
        reason = failed[str(p)]
        assert reason.startswith(f"{p}: background composite of {folder} cannot be built: none of its 2 maps")
        assert "\n" not in reason
    assert failed[str(partly[1])] == f"{partly[1]}: empty file"  # fails on its own, as any bad map
    by_folder = {Path(c.folder).name: c for c in report.composites}
    assert by_folder["P02"].status == "failed" and not composite_path(tmp_path / "out", "P02").exists()
    assert by_folder["P03"].status == "built" and by_folder["P03"].n_maps == 1
    assert by_folder["P03"].skipped == [f"{partly[1]}: empty file"]


def test_two_folders_that_would_write_one_composite_both_fail(five, tmp_path):
    a = write_map_tree(tmp_path / "a", days=(1,))
    b = write_map_tree(tmp_path / "b", days=(2,))
    report = run(find_maps(a[0], b[0]), five, InferOptions(out=tmp_path / "out"))
    assert report.counts()["failed"] == 2
    for r in report.results:
        assert (
            "would both write the background composite" in r.reason
            and str(composite_path(tmp_path / "out")) in r.reason
        )


def test_a_model_with_a_same_map_channel_needs_no_composite(tmp_path):
    """``blocal`` is made from the map alone: no first pass, no composite file, masks as by hand."""
    model = load_model(make_tiny_unet_onnx(tmp_path / "local.onnx", seed=2, channels="rgb,blocal"), provider="cpu")
    assert model.n_channels == 4 and not model.spec.needs_background
    paths = write_map_tree(tmp_path / "maps", days=(1, 2))
    out = tmp_path / "out"
    report = run(find_maps(tmp_path / "maps"), model, InferOptions(out=out))
    assert report.ok and report.counts()["done"] == 2 and not report.composites
    assert not composite_path(out).exists()
    day2 = read_mask(out / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day02.ncdf")
    np.testing.assert_array_equal(day2, predict(model, read_map(paths[1]), ls=132.9))
    np.testing.assert_array_equal(day2, by_hand(model, paths[1], 132.9, None, channels="rgb,blocal"))
