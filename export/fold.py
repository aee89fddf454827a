"""Fold the U-Net's BatchNorm layers (inference mode) into the convolutions that consume them.

Each BatchNorm sits after a ReLU, so it is a per-channel affine map ``a * x + b`` with
``a = gamma / sqrt(var + eps)``, ``b = beta - mean * a`` applied to a convolution's *input*.
For a valid-padded convolution that is exact: scale the kernel's input channels by ``a`` and
add ``sum(W * b)`` to the bias.  Where the affine reaches a convolution through a max-pool
(the skips of the contracting path) it commutes with the pool only when every ``a > 0``;
otherwise that BatchNorm is kept as a per-channel affine layer.  The transposed convolutions
(2x2, stride 2) take the scale into their kernel, but their per-position bias cannot absorb
the shift, so a shift-only layer (``x + b / a``, one ``Add``) remains in front of each of them.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from mars_cloudmask.train_kit.model import architecture_of, build_unet, input_channels


class ChannelAffine(layers.Layer):
    """``x * scale + shift`` per channel (what is left of a BatchNorm that cannot be folded)."""

    def __init__(self, scale: np.ndarray | None, shift: np.ndarray, **kwargs):
        super().__init__(**kwargs)
        self.scale = None if scale is None else np.asarray(scale, np.float32)
        self.shift = np.asarray(shift, np.float32)

    def call(self, x):
        if self.scale is not None:
            x = x * ops.convert_to_tensor(self.scale)
        return x + ops.convert_to_tensor(self.shift)


def bn_affine(layer) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` of an inference-mode BatchNormalization layer: ``y = a * x + b`` per channel."""
    gamma, beta, mean, var = (np.asarray(w, np.float64) for w in layer.get_weights())
    a = gamma / np.sqrt(var + layer.epsilon)
    return a, beta - mean * a


def fold_into_conv(
    kernel: np.ndarray, bias: np.ndarray, a: np.ndarray, b: np.ndarray, lo: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Kernel/bias of a valid Conv2D (kernel ``(kh, kw, cin, cout)``) whose input channels
    ``lo .. lo+len(a)`` were first mapped by ``a * x + b``."""
    k = np.asarray(kernel, np.float64).copy()
    hi = lo + len(a)
    bias = np.asarray(bias, np.float64) + np.einsum("hwio,i->o", k[:, :, lo:hi, :], b)
    k[:, :, lo:hi, :] *= a[None, None, :, None]
    return k.astype(np.float32), bias.astype(np.float32)


def fold_batchnorm(model: keras.Model) -> keras.Model:
    """An inference-only copy of a :func:`build_unet` model without BatchNorm layers.

    Same inputs (3 or 3 + k channels, as the model's) and outputs (to float rounding); layer
    names of the convolutions unchanged.
    """
    width, depth = architecture_of(model)
    affine = {layer.name: bn_affine(layer) for layer in model.layers if isinstance(layer, layers.BatchNormalization)}

    # which BatchNorms stay (partly) as layers in the folded graph
    keep: dict[str, tuple[np.ndarray | None, np.ndarray]] = {}
    for level in range(depth):
        a, b = affine[f"down{level}_bn2"]
        if np.any(a <= 0):  # does not commute with the max-pool: keep whole
            keep[f"down{level}_bn2"] = (a, b)
    # the BatchNorm feeding each transposed convolution: bottleneck -> up{d-1}, up{i} -> up{i-1}
    upconv_input = {f"up{depth - 1}_upconv": "bottleneck_bn2"}
    upconv_input.update({f"up{level - 1}_upconv": f"up{level}_bn2" for level in range(1, depth)})
    before_upconv = list(upconv_input.values())
    scaled_upconv = []
    for name in before_upconv:
        a, b = affine[name]
        if np.all(np.abs(a) > 1e-12):
            keep[name] = (None, b / a)  # a * (x + b / a): the scale goes into the transposed kernel
            scaled_upconv.append(name)
        else:
            keep[name] = (a, b)

    def norm(x, name):
        if name in keep:
            scale, shift = keep[name]
            return ChannelAffine(scale, shift, name=name)(x)
        return x

    folded = build_unet(width, depth, name=model.name, norm=norm, channels=input_channels(model))
    weights = {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in model.layers}

    def conv_fold(conv: str, bn: str, lo: int = 0) -> None:
        if bn in keep:
            return
        a, b = affine[bn]
        weights[conv] = list(fold_into_conv(weights[conv][0], weights[conv][1], a, b, lo))

    for block in [f"down{i}" for i in range(depth)] + ["bottleneck"] + [f"up{i}" for i in range(depth)]:
        conv_fold(f"{block}_conv2", f"{block}_bn1")
    for level in range(depth):
        nxt = f"down{level + 1}_conv1" if level + 1 < depth else "bottleneck_conv1"
        conv_fold(nxt, f"down{level}_bn2")
        conv_fold(f"up{level}_conv1", f"down{level}_bn2", lo=width * 2**level)  # concat [upconv, skip]
    conv_fold("prob", "up0_bn2")
    for upconv, bn in upconv_input.items():
        if bn not in scaled_upconv:
            continue
        kernel = weights[upconv][0]  # (kh, kw, cout, cin)
        weights[upconv][0] = (kernel * affine[bn][0][None, None, None, :]).astype(np.float32)

    for layer in folded.layers:
        if layer.weights:
            layer.set_weights(weights[layer.name])
    return folded
