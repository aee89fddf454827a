"""train_kit.model: the U-Net's geometry (crops, margin, sizes) and its uint8 -> probability contract."""

from __future__ import annotations

import numpy as np
import pytest

from mars_cloudmask.train_kit.model import (
    alignment,
    architecture_of,
    build_unet,
    margin,
    recompute_batchnorm,
    skip_crops,
    valid_input_size,
)


def test_original_geometry():
    assert skip_crops(4) == [4, 16, 40, 88]
    assert margin(4) == 92 and alignment(4) == 16
    assert valid_input_size(668, 4) and valid_input_size(684, 4) and not valid_input_size(670, 4)


def test_original_size_and_parameters():
    model = build_unet(8, 4)
    assert architecture_of(model) == (8, 4)
    assert 480_000 < model.count_params() < 500_000  # docs/spec.md §3: about 0.49 M


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_dynamic_sizes_lose_margin_on_each_side(depth):
    model = build_unet(2, depth)
    m = margin(depth)
    sizes = [n for n in range(2 * m + 4, 2 * m + 80) if valid_input_size(n, depth)][:2]
    x = np.random.default_rng(0).integers(0, 256, (2, sizes[0], sizes[1], 3), dtype=np.uint8)
    y = model.predict(x, verbose=0)
    assert y.shape == (2, sizes[0] - 2 * m, sizes[1] - 2 * m, 1)
    assert y.dtype == np.float32 and 0 <= y.min() and y.max() <= 1


def test_translation_equivariance_on_the_alignment_grid():
    model = build_unet(2, 4)
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, (1, 236 + 32, 236, 3), dtype=np.uint8)
    whole = model.predict(big, verbose=0)
    shifted = model.predict(big[:, 32:], verbose=0)
    np.testing.assert_allclose(whole[:, 32:], shifted, atol=1e-6)


def test_recompute_batchnorm_sets_the_mean_of_the_batch_statistics():
    """Precise BN: the first BatchNorm's moving mean/variance become the mean over the batches
    of its input's per-channel mean/variance; weights stay; momentum is restored."""
    import keras

    model = build_unet(2, 4)
    rng = np.random.default_rng(2)
    batches = [rng.integers(0, 256, (2, 188, 188, 3), dtype=np.uint8) for _ in range(3)]
    conv = model.get_layer("down0_conv1")
    before = [w.copy() for w in conv.get_weights()]
    features = keras.Model(model.input, conv.output)  # the first BN's input (conv + ReLU)
    stats = [np.asarray(features(b)) for b in batches]
    want_mean = np.mean([s.mean(axis=(0, 1, 2)) for s in stats], axis=0)
    want_var = np.mean([s.var(axis=(0, 1, 2)) for s in stats], axis=0)

    assert recompute_batchnorm(model, iter(batches)) == 3
    bn = model.get_layer("down0_bn1")
    np.testing.assert_allclose(np.asarray(bn.moving_mean), want_mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), want_var, rtol=1e-3, atol=1e-6)
    assert bn.momentum == 0.99
    for a, b in zip(before, conv.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_extra_input_channels_change_only_the_first_convolution():
    from mars_cloudmask.train_kit.model import input_channels

    rgb, five = build_unet(2, 4), build_unet(2, 4, channels=5)
    assert input_channels(rgb) == 3 and rgb.inputs[0].name.startswith("rgb")
    assert input_channels(five) == 5 and five.input_shape[1:] == (None, None, 5)
    assert five.count_params() - rgb.count_params() == 2 * 3 * 3 * 2  # 2 more input channels x 3x3 x 2 filters
    y = five.predict(np.zeros((1, 236, 236, 5), dtype=np.uint8), verbose=0)
    assert y.shape == (1, 52, 52, 1)
    with pytest.raises(ValueError, match="channels must be >= 3"):
        build_unet(2, 4, channels=1)
