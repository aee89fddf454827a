"""Atomic output and its temporaries (infer/atomic.py): names within NAME_MAX, exact prefix
matching for the cleanup (issue 32 item 9 and 14 parts)."""

from __future__ import annotations

import os

from mars_cloudmask.infer.atomic import (
    NAME_MAX,
    atomic_path,
    is_temporary_of,
    remove_stale_temporaries_in,
    remove_stale_temporaries_of,
    temporary_prefix,
    write_text_atomic,
)


def test_a_name_that_fits_gets_a_temporary_that_fits(tmp_path):
    for name in ("a" * 255, "é" * 125 + ".ncdf"):
        target = tmp_path / name
        assert len(os.fsencode(target.name)) <= NAME_MAX
        seen = []
        with atomic_path(target) as tmp:
            seen += [p.name for p in tmp_path.iterdir()]  # the temporary and its lock sidecar
            tmp.write_text("x")
        assert target.read_text() == "x" and all(len(os.fsencode(n)) <= NAME_MAX for n in seen)
        assert len(seen) == 2 and [n for n in seen if is_temporary_of(tmp_path / n, target)] == [tmp.name]
        target.unlink()
    assert temporary_prefix(tmp_path / "short.ncdf") == ".short.ncdf."


def test_stale_temporaries_of_a_long_name_are_found_again(tmp_path):
    target = tmp_path / ("b" * 250)
    dead = tmp_path / (temporary_prefix(target) + "dead1234.tmp")
    dead.write_text("half")
    other = tmp_path / (temporary_prefix(tmp_path / ("b" * 249 + "c")) + "dead1234.tmp")
    other.write_text("another file's")
    assert remove_stale_temporaries_of(target) == [dead] and other.exists()


def test_names_with_glob_characters_are_matched_exactly(tmp_path):
    target = tmp_path / "cloudmask_P01_day01[1].ncdf"
    dead = tmp_path / ".cloudmask_P01_day01[1].ncdf.dead1234.tmp"
    lookalike = tmp_path / ".cloudmask_P01_day011.ncdf.dead1234.tmp"  # what the glob [1] matches
    dead.write_text("half")
    lookalike.write_text("another map's")
    assert remove_stale_temporaries_of(target) == [dead]
    assert not dead.exists() and lookalike.exists()


def test_stale_run_record_temporaries_are_removed_and_live_ones_kept(tmp_path):
    dead = tmp_path / ".20261204T195546Z-99.json.dead1234.tmp"
    dead.write_text("{")
    kept = tmp_path / "notes.txt"
    kept.write_text("kept")
    with atomic_path(tmp_path / "20261204T195547Z-98.json") as live:
        live.write_text("{")
        assert remove_stale_temporaries_in(tmp_path, ".json") == [dead]
        assert live.exists() and kept.exists()
    write_text_atomic(tmp_path / "x.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20261204T195547Z-98.json", "notes.txt", "x.json"]


def test_many_targets_list_each_folder_once(tmp_path, monkeypatch):
    from mars_cloudmask.infer import atomic

    targets = [tmp_path / f"cloudmask_P01_day{d:03d}.ncdf" for d in range(300)]
    dead = [tmp_path / f".{t.name}.dead{k:04d}.tmp" for k, t in enumerate(targets[::30])]
    for p in dead:
        p.write_text("half")
    (tmp_path / ".cloudmask_P01_day999.ncdf.dead9999.tmp").write_text("not one of the targets")
    calls = []
    real = os.listdir
    monkeypatch.setattr(atomic.os, "listdir", lambda folder: calls.append(folder) or real(folder))
    assert sorted(atomic.remove_stale_temporaries_of_many(targets)) == sorted(dead)
    assert len(calls) == 1 and (tmp_path / ".cloudmask_P01_day999.ncdf.dead9999.tmp").exists()
