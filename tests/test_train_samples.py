"""train_kit.samples: which days of which subphases a run trains, validates and tests on."""

from __future__ import annotations

import pytest

from mars_cloudmask.train_kit.config import TrainConfig
from mars_cloudmask.train_kit.data import DataError
from mars_cloudmask.train_kit.samples import collect_samples
from tests.test_train_data import archive, stub_subphase  # noqa: F401  (the fixture)


def _cfg(data, **kw) -> TrainConfig:
    return TrainConfig(data=[str(d) for d in data], out="unused", **{"val_days": [], **kw})


def test_an_archive_root_splits_by_subphase_and_day(archive):  # noqa: F811
    train, val, test, ref = collect_samples(_cfg([archive], val_days=[1], test_subphases=["P03"]))
    assert [s.name for s in val] == ["B01day01", "P02day01"]
    assert [s.name for s in test] == ["P03day01", "P03day02", "P03day03"]
    assert [s.name for s in train] == ["B01day02", "P02day02", "P02day03", "P02day04"] and ref == []


def test_a_subphase_folder_and_a_root_combine(archive, tmp_path):  # noqa: F811
    one = stub_subphase(tmp_path / "mine" / "P01", "P01", (1, 2, 16))
    train, val, _, _ = collect_samples(_cfg([one, archive], val_days=[16], val_subphases=["B01"]))
    assert [s.name for s in val] == ["P01day16", "B01day01", "B01day02"]
    assert {s.subphase for s in train} == {"P01", "P02", "P03"}
    with pytest.raises(DataError, match=r"labels/P02: given twice in --data"):
        collect_samples(_cfg([archive, archive / "P02"], val_days=[1]))


def test_background_channels_are_refused_on_several_subphases(archive, tmp_path):  # noqa: F811
    cfg = _cfg([archive], val_days=[1], channels="rgb,bdiff10", background_maps=[str(tmp_path)])
    with pytest.raises(DataError, match=r"--channels rgb,bdiff10: one --background-maps composite .* 3 subphases"):
        collect_samples(cfg)
    # one subphase of the archive: as before (the maps are read later)
    collect_samples(_cfg([archive / "P02"], val_days=[1], channels="rgb,bdiff10", background_maps=[str(tmp_path)]))
