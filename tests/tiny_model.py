"""A tiny random-weight U-Net in ONNX that honours cloudmask's model contract.

Built with the ``onnx`` package only (no TensorFlow), so tests of ``infer`` can run a real
onnxruntime session in milliseconds.  The graph has the real net's geometry:

* input 0 ``image``: uint8 NHWC ``(N, H, W, C)``, dynamic N, H, W (H, W = 12 mod 16); C = 3, or
  3 + k for a channel spec (``channels="rgb,bdiff10,bdiff50"``, metadata ``input_channels``);
* Cast + scale by 1/255 inside the model, then NCHW internally;
* 4 levels of two valid 3x3 convolutions + ReLU and a 2x2 max-pool, a bottleneck of two
  valid convolutions, 4 up levels (2x2 stride-2 transposed convolution, concatenation with the
  centre-cropped skip, two valid convolutions), a 1x1 convolution and a sigmoid;
* skip crops are constants (4, 16, 40, 88 px from the deepest level up), so any valid size works;
* output 0 ``probability``: float32 NHWC ``(N, H-184, W-184, 1)``; translation-equivariant
  for shifts that are multiples of 16 px.

Example::

    from tests.tiny_model import make_tiny_unet_onnx
    path = make_tiny_unet_onnx(tmp_path / "tiny.onnx", seed=0)
    five = make_tiny_unet_onnx(tmp_path / "five.onnx", channels="rgb,bdiff10,bdiff50")  # 5 channels
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DEPTH = 4


def skip_crops(depth: int) -> tuple[int, ...]:
    """Crop (px per side) of the skip of level 0..depth-1 before concatenation, constant for any
    size: 4 px at the deepest level, ``2 c + 8`` one level up ((88, 40, 16, 4) at depth 4)."""
    crops = [4]
    for _ in range(depth - 1):
        crops.append(2 * crops[-1] + 8)
    return tuple(reversed(crops))


def depth_metadata(depth: int) -> dict[str, str]:
    """The geometry keys of a depth-``depth`` model's metadata (margin ``6 * 2**d - 4``, align ``2**d``)."""
    margin = 6 * 2**depth - 4
    return {
        "depth": str(depth),
        "margin": str(margin),
        "align": str(2**depth),
        "tile_out": "484",
        "tile_in": str(484 + 2 * margin),
    }


DEFAULT_METADATA = {
    "name": "tiny-random-unet",
    "version": "0.0.0-test",
    "threshold": "0.5",
    "tile_in": "668",
    "tile_out": "484",
    "margin": "92",
    "align": "16",
    "input_layout": "NHWC",
    "input_dtype": "uint8",
    "depth": "4",
    "training_data": "none (random weights, tests only)",
    "split": "none",
    "val_metrics": json.dumps({}),
    "code_version": "test",
    "created": "2026-01-01",
}


def make_tiny_unet_onnx(
    path: str | Path,
    seed: int = 0,
    metadata: dict | None = None,
    width: int = 2,
    depth: int = DEPTH,
    channels: str = "rgb",
) -> Path:
    """Write a tiny valid-padded U-Net ONNX file with random weights and return its path.

    Args:
        path: the ``.onnx`` file to write (its folder must exist).
        seed: seed of the random weights (same seed, same model).
        metadata: metadata_props merged over :data:`DEFAULT_METADATA` (values made strings);
            a key mapped to None is left out.
        width: filters of the first level (doubled at each level).
        depth: number of poolings; the metadata's margin, align and tile sizes follow it.
        channels: the input channel spec (:mod:`mars_cloudmask.infer.channels`): the input has
            its ``n_channels`` and, unless ``rgb``, the metadata says ``input_channels``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from mars_cloudmask.infer.channels import parse_spec

    n_channels = parse_spec(channels).n_channels

    rng = np.random.default_rng(seed)
    nodes: list = []
    inits: list = []
    counter = [0]

    def name(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def const(arr: np.ndarray, prefix: str) -> str:
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), n))
        return n

    def conv(x: str, cin: int, cout: int, k: int = 3, relu: bool = True, gain: float = 2.0) -> str:
        w = rng.normal(0.0, np.sqrt(gain / (cin * k * k)), size=(cout, cin, k, k)).astype(np.float32)
        b = rng.normal(0.0, 0.05, size=(cout,)).astype(np.float32)
        y = name("conv")
        nodes.append(helper.make_node("Conv", [x, const(w, "W"), const(b, "B")], [y], kernel_shape=[k, k]))
        if not relu:
            return y
        r = name("relu")
        nodes.append(helper.make_node("Relu", [y], [r]))
        return r

    def crop(x: str, c: int) -> str:
        y = name("crop")
        starts = const(np.array([c, c], dtype=np.int64), "starts")
        ends = const(np.array([-c, -c], dtype=np.int64), "ends")
        axes = const(np.array([2, 3], dtype=np.int64), "axes")
        nodes.append(helper.make_node("Slice", [x, starts, ends, axes], [y]))
        return y

    # uint8 NHWC -> float NCHW in [0, 1]
    nodes.append(helper.make_node("Cast", ["image"], ["image_f"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Mul", ["image_f", const(np.array(1 / 255, np.float32), "scale")], ["scaled"]))
    nodes.append(helper.make_node("Transpose", ["scaled"], ["x0"], perm=[0, 3, 1, 2]))

    x, cin = "x0", n_channels
    skips: list[tuple[str, int]] = []
    for level in range(depth):
        cout = width * 2**level
        x = conv(conv(x, cin, cout), cout, cout)
        skips.append((x, cout))
        p = name("pool")
        nodes.append(helper.make_node("MaxPool", [x], [p], kernel_shape=[2, 2], strides=[2, 2]))
        x, cin = p, cout
    cout = width * 2**depth
    x = conv(conv(x, cin, cout), cout, cout)
    cin = cout
    crops = skip_crops(depth)
    for level in reversed(range(depth)):
        skip, cskip = skips[level]
        cout = cskip
        w = rng.normal(0.0, np.sqrt(2.0 / (cin * 4)), size=(cin, cout, 2, 2)).astype(np.float32)
        b = rng.normal(0.0, 0.05, size=(cout,)).astype(np.float32)
        up = name("up")
        nodes.append(
            helper.make_node(
                "ConvTranspose", [x, const(w, "Wt"), const(b, "Bt")], [up], kernel_shape=[2, 2], strides=[2, 2]
            )
        )
        upr = name("relu")
        nodes.append(helper.make_node("Relu", [up], [upr]))
        cat = name("cat")
        nodes.append(helper.make_node("Concat", [upr, crop(skip, crops[level])], [cat], axis=1))
        x = conv(conv(cat, 2 * cout, cout), cout, cout)
        cin = cout
    logits = conv(x, cin, 1, k=1, relu=False, gain=40.0)
    nodes.append(helper.make_node("Sigmoid", [logits], ["prob_nchw"]))
    nodes.append(helper.make_node("Transpose", ["prob_nchw"], ["probability"], perm=[0, 2, 3, 1]))

    graph = helper.make_graph(
        nodes,
        "tiny_unet",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", "H", "W", n_channels])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", "Hout", "Wout", 1])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="cloudmask-tests")
    model.ir_version = 8  # readable by every onnxruntime >= 1.15
    meta = dict(DEFAULT_METADATA, width=str(width), **(depth_metadata(depth) if depth != DEPTH else {}))
    if channels != "rgb":
        meta["input_channels"] = parse_spec(channels).text
    meta.update(metadata or {})
    for key, value in meta.items():
        if value is not None:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, str(value)
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path
