"""The model contract (infer/contract.py): what the exporter writes is what the runtime reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from mars_cloudmask.infer.contract import DEFAULT_THRESHOLD, DEFAULT_TILE_OUT, ModelError, ModelInfo


def test_to_metadata_then_parse_gives_the_same_info():
    info = ModelInfo(
        name="cloudmask-unet",
        version="3",
        threshold=0.123456789,
        tile_in=700,
        tile_out=516,
        margin=92,
        align=16,
        polar_offset=-3.0,
        input_channels="rgb",
        extra={"width": "16", "depth": "4", "split": '{"test": ["P01day18"]}'},
    )
    meta = info.to_metadata()
    assert all(isinstance(v, str) for v in meta.values())
    assert meta["polar_offset"] == "-3.0" and meta["input_channels"] == "rgb" and meta["width"] == "16"
    assert ModelInfo.from_metadata(meta, Path("m.onnx")) == info


def test_missing_keys_take_the_defaults_and_version_2_files_read_as_rgb():
    info = ModelInfo.from_metadata({"version": "2", "threshold": "0.47", "polar_offset": "-3"}, Path("old.onnx"))
    assert info.name == "old" and info.input_channels == "rgb" and info.polar_offset == -3.0
    assert (info.tile_in, info.tile_out, info.margin, info.align) == (668, DEFAULT_TILE_OUT, 92, 16)
    assert ModelInfo.from_metadata({}, Path("x.onnx")).threshold == DEFAULT_THRESHOLD == 0.912
    assert ModelInfo.from_metadata({}, Path("x.onnx")).channel_spec("x.onnx").n_channels == 3


def test_a_bad_number_or_unknown_channels_name_the_file():
    with pytest.raises(ModelError, match=r"^m\.onnx: bad metadata value"):
        ModelInfo.from_metadata({"polar_offset": "north"}, Path("m.onnx"))
    info = ModelInfo.from_metadata({"input_channels": "rgb,ls"}, Path("m.onnx"))
    with pytest.raises(ModelError, match=r"^m\.onnx: the model wants input channels 'rgb,ls'"):
        info.channel_spec("m.onnx")


def test_constants_are_defined_once():
    from mars_cloudmask.infer import geometry
    from mars_cloudmask.train_kit import metrics

    assert metrics.DEFAULT_THRESHOLD is DEFAULT_THRESHOLD
    assert not hasattr(geometry, "DEFAULT_THRESHOLD")
    assert DEFAULT_TILE_OUT == geometry.TILE_OUT == 484


@pytest.mark.parametrize(
    "key, value, named",
    [
        ("threshold", "47", "threshold 47.0"),
        ("threshold", "nan", "threshold nan"),
        ("threshold", "-1", "threshold -1.0"),
        ("threshold", "0", "threshold 0.0"),
        ("align", "0", "align 0"),
        ("margin", "-4", "margin -4"),
        ("polar_offset", "100", "polar_offset 100.0"),
        ("polar_offset", "nan", "polar_offset nan"),
        ("tile_out", "500", "tile_out 500"),
    ],
)
def test_every_contract_field_is_checked_at_load(key, value, named):
    """Issue 32 item 6: a metadata value no run could use is refused when the model is read,
    naming the file and the key, instead of all-clear masks or per-map failures."""
    meta = {"threshold": "0.5", "tile_in": "668", "tile_out": "484", "margin": "92", "align": "16"}
    meta[key] = value
    if key in ("margin", "tile_out"):
        meta.pop("tile_in")
    with pytest.raises(ModelError, match=r"^m\.onnx: bad model metadata: ") as exc:
        ModelInfo.from_metadata(meta, Path("m.onnx"))
    assert named in str(exc.value) and "\n" not in str(exc.value)


def test_usable_metadata_of_other_depths_still_loads():
    from tests.tiny_model import depth_metadata

    for depth in (2, 3, 4, 5):
        meta = {**depth_metadata(depth), "threshold": "0.47", "polar_offset": "-3"}
        assert ModelInfo.from_metadata(meta, Path("m.onnx")).align == 2**depth
