"""The cloud-mask U-Net of docs/spec.md §3, in Keras 3 (functional API, backend-neutral).

Valid-padded (unpadded) 3x3 convolutions, ``depth`` poolings, ``width * 2**i`` filters at
level ``i``; input uint8 RGB NHWC with dynamic height and width (scaled by 1/255 inside the
model, so an exported model takes raw map pixels); output float32 sigmoid cloud probability,
``(N, H - 2*margin, W - 2*margin, 1)``.  The centre crops of the skips are constants that
depend only on the depth (:func:`skip_crops`), which is what lets the model accept any
input size with ``(H - 4) / 2`` integer ``depth`` times in a row.
"""

from __future__ import annotations

from typing import Callable, Iterable

import keras
import numpy as np
from keras import layers

from .config import DEFAULT_BN_MOMENTUM

DEFAULT_WIDTH = 8
DEFAULT_DEPTH = 4


def skip_crops(depth: int) -> list[int]:
    """Centre crop (px per side) of each skip, from the deepest level up (4, 16, 40, 88 for d=4).

    The skip of level ``depth-1`` is 8 px larger than the up-sampled bottleneck; every level
    above that deficit doubles and grows by 16 (two 3x3 valid convolutions at half resolution,
    doubled, plus the 8 px of the two convolutions at full resolution).
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    crops, deficit = [], 8
    for _ in range(depth):
        crops.append(deficit // 2)
        deficit = 2 * deficit + 16
    return crops


def margin(depth: int) -> int:
    """Pixels lost on each side by a U-Net of this depth (92 for d=4)."""
    # per side: two 3x3 convs (1 px each) at scale 2**i on the way down and up, and at 2**depth
    # in the bottleneck: 4 * (2**depth - 1) + 2 * 2**depth
    return 6 * 2**depth - 4


def alignment(depth: int) -> int:
    """Shift (px) for which the net is translation-equivariant: ``2**depth`` (16 for d=4)."""
    return 2**depth


def valid_input_size(n: int, depth: int) -> bool:
    """True when an input of ``n`` px survives: ``(n - 4) / 2`` integer ``depth`` times, > 0 at the end."""
    for _ in range(depth):
        n -= 4
        if n <= 0 or n % 2:
            return False
        n //= 2
    return n - 4 > 0


def batchnorm(x, name: str, momentum: float = DEFAULT_BN_MOMENTUM):
    """The normalisation after each ReLU: a BatchNormalization layer named ``name``.

    ``momentum``: weight of the old value in the moving mean and variance per step; 0.99 (the
    Keras default) averages over about 100 steps, 0.9 over about 10 (inference statistics
    that follow fast-changing weights more closely early in training).
    """
    return layers.BatchNormalization(momentum=momentum, name=name)(x)


def _conv_block(x, filters: int, name: str, norm: Callable):
    """Two [Conv 3x3 valid, ReLU, norm] (norm = BatchNorm in training)."""
    for k in (1, 2):
        x = layers.Conv2D(filters, 3, padding="valid", activation="relu", name=f"{name}_conv{k}")(x)
        x = norm(x, f"{name}_bn{k}")
    return x


def build_unet(
    width: int = DEFAULT_WIDTH,
    depth: int = DEFAULT_DEPTH,
    name: str = "cloudmask_unet",
    norm: Callable = batchnorm,
    channels: int = 3,
) -> keras.Model:
    """The U-Net: uint8 ``(N, H, W, channels)`` NHWC -> float32 ``(N, H - 2m, W - 2m, 1)`` sigmoid.

    ``channels``: 3 (RGB, input named ``rgb``, as versions 1-2) or 3 + k extra uint8 channels
    of :mod:`mars_cloudmask.infer.channels` (input named ``image``), all scaled by 1/255.

    ``m = margin(depth)`` (92 for the original ``width=8, depth=4``, 0.49 M parameters).
    ``norm(x, layer_name)`` adds the layer after each ReLU (the exporter swaps it to fold
    BatchNorm away).
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if channels < 3:
        raise ValueError(f"channels must be >= 3 (RGB first), got {channels}")
    crops = skip_crops(depth)  # deepest first
    inputs = keras.Input(shape=(None, None, channels), dtype="uint8", name="rgb" if channels == 3 else "image")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    skips = []
    for level in range(depth):
        x = _conv_block(x, width * 2**level, f"down{level}", norm)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = _conv_block(x, width * 2**depth, "bottleneck", norm)
    for level in reversed(range(depth)):
        filters = width * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", activation="relu", name=f"up{level}_upconv")(
            x
        )
        crop = crops[depth - 1 - level]
        skip = layers.Cropping2D(crop, name=f"up{level}_crop")(skips[level])
        x = layers.Concatenate(axis=-1, name=f"up{level}_concat")([x, skip])
        x = _conv_block(x, filters, f"up{level}", norm)
    outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="prob")(x)
    return keras.Model(inputs, outputs, name=name)


def architecture_of(model: keras.Model) -> tuple[int, int]:
    """``(width, depth)`` of a model built by :func:`build_unet` (read from its layers)."""
    depth = sum(1 for layer in model.layers if layer.name.endswith("_pool"))
    width = model.get_layer("down0_conv1").filters
    return width, depth


def input_channels(model: keras.Model) -> int:
    """Number of input channels of a model (3 for RGB-only models)."""
    return int(model.inputs[0].shape[-1])


def recompute_batchnorm(model: keras.Model, batches: Iterable[np.ndarray]) -> int:
    """Set every BatchNormalization layer's moving mean and variance to the mean of its batch
    statistics over ``batches`` ("precise BN"); no trainable weight changes.

    The moving statistics of a training run lag behind its weights (momentum 0.99 averages
    over about 100 steps, i.e. two epochs here), and a mean of several epochs' weights has
    statistics of none of them; a forward pass in training mode over fresh batches gives
    the statistics of the weights as they are.  ``batches``: uint8 ``(N, H, W, 3)`` image
    batches (training tiles).  Returns the number of batches used.
    """
    norms = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    n = 0
    try:
        for images in batches:
            n += 1
            for layer in norms:  # running mean over batches: new = old * (n-1)/n + batch / n
                layer.momentum = (n - 1) / n
            model(images, training=True)
    finally:
        for layer, momentum in zip(norms, saved, strict=True):
            layer.momentum = momentum
    return n
