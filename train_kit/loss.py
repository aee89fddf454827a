"""The training loss: per-pixel weighted binary cross-entropy (docs/spec.md §6), -999 ignored.

Targets are float ``(N, h, w, 1)`` (or ``(N, h, w)``) holding 1 = cloud, 0 = clear and
:data:`IGNORE` (-999) for pixels that count nowhere.  Cloudy pixels weigh ``1 - w0`` and clear
ones ``w0``; the original used ``w0 = 0.03688``, the cloudy fraction of its training set
(:func:`cloudy_fraction` computes it for any set of masks).  Optional terms: soft Dice (helps
F1 directly), a focal factor ``(1 - p_t) ** gamma`` (weighs hard pixels more) and an edge
weight for the pixels near a cloud/clear boundary of the labels (where hand labels are least
sure; :func:`edge_band`).  Everything is written with ``keras.ops``: it runs unchanged on
TensorFlow and JAX.
"""

from __future__ import annotations

from typing import Iterable

import keras
import numpy as np
from keras import ops

IGNORE = -999.0
"""Target value of pixels the loss and the metrics ignore."""
ORIGINAL_W0 = 0.03688
"""The original model's w0 (cloudy fraction of its training tiles)."""


def cloudy_fraction(masks: Iterable[np.ndarray]) -> float:
    """Share of cloudy pixels among the valid ones (>= 0) of the given masks (0/1, -999 invalid).

    This is the original's choice of ``w0``.  Raises ValueError when no pixel is valid.
    """
    cloudy = valid = 0
    for m in masks:
        ok = m >= 0
        valid += int(ok.sum())
        cloudy += int((m[ok] > 0.5).sum())
    if valid == 0:
        raise ValueError("no valid pixel in the training masks: cannot compute w0")
    return cloudy / valid


def edge_band(y_true, radius: int = 1):
    """1.0 on valid pixels with both a cloud and a clear valid pixel within ``radius`` px
    (a ``2 radius + 1`` square), else 0.0.

    ``y_true`` is ``(N, h, w, 1)`` (1 cloud, 0 clear, -999 ignored); so is the result.  Any
    row orientation: the band is symmetric.
    """
    y_true = ops.cast(y_true, "float32")
    valid = y_true >= 0
    cloud = ops.cast(ops.logical_and(valid, y_true > 0.5), "float32")
    clear = ops.cast(ops.logical_and(valid, y_true <= 0.5), "float32")
    size = 2 * int(radius) + 1
    near_cloud = ops.max_pool(cloud, pool_size=size, strides=1, padding="same")
    near_clear = ops.max_pool(clear, pool_size=size, strides=1, padding="same")
    return near_cloud * near_clear * ops.cast(valid, "float32")


def _flatten(y_true, y_pred):
    y_true = ops.reshape(ops.cast(y_true, "float32"), (ops.shape(y_true)[0], -1))
    y_pred = ops.reshape(ops.cast(y_pred, "float32"), (ops.shape(y_pred)[0], -1))
    return y_true, y_pred


@keras.saving.register_keras_serializable(package="cloudmask")
class MaskedWeightedBCE(keras.losses.Loss):
    """Weighted BCE over valid pixels (+ optional soft Dice), one value per sample.

    Per sample: ``sum(weight * bce) / n_valid`` with weight ``1 - w0`` on cloud and ``w0`` on
    clear pixels, plus ``dice_weight * (1 - soft_dice)`` over the valid pixels.  With
    ``focal_gamma > 0`` each pixel's BCE is multiplied by ``(1 - p_t) ** focal_gamma``
    (``p_t``: the probability given to the true class); with ``edge_weight != 1`` the BCE
    weight of pixels in :func:`edge_band` (``edge_radius`` px) is multiplied by
    ``edge_weight`` (0 ignores them; needs ``(N, h, w, 1)`` targets).  Samples with
    no valid pixel contribute 0.  Keras multiplies the per-sample values by ``sample_weight``
    (used for the weaker reference targets).
    """

    def __init__(
        self,
        w0: float = ORIGINAL_W0,
        dice_weight: float = 0.0,
        focal_gamma: float = 0.0,
        edge_weight: float = 1.0,
        edge_radius: int = 1,
        name: str = "masked_wbce",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if not 0.0 < w0 < 1.0:
            raise ValueError(f"w0 must be in (0, 1), got {w0}")
        if focal_gamma < 0 or edge_weight < 0 or edge_radius < 1:
            raise ValueError(
                f"need focal_gamma >= 0, edge_weight >= 0 and edge_radius >= 1, got "
                f"{focal_gamma}, {edge_weight}, {edge_radius}"
            )
        self.w0 = float(w0)
        self.dice_weight = float(dice_weight)
        self.focal_gamma = float(focal_gamma)
        self.edge_weight = float(edge_weight)
        self.edge_radius = int(edge_radius)

    def call(self, y_true, y_pred):
        edge = None
        if self.edge_weight != 1.0:
            if len(ops.shape(y_true)) != 4:
                raise ValueError(f"edge_weight needs (N, h, w, 1) targets, got shape {ops.shape(y_true)}")
            edge = ops.reshape(edge_band(y_true, self.edge_radius), (ops.shape(y_true)[0], -1))
        y_true, y_pred = _flatten(y_true, y_pred)
        valid = ops.cast(y_true >= 0, "float32")
        target = ops.where(y_true >= 0, ops.clip(y_true, 0.0, 1.0), 0.0)
        p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        bce = -(target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))
        weight = valid * (target * (1.0 - self.w0) + (1.0 - target) * self.w0)
        if self.focal_gamma:
            p_true = target * p + (1.0 - target) * (1.0 - p)
            bce = bce * ops.power(1.0 - p_true, self.focal_gamma)
        if edge is not None:
            weight = weight * (1.0 + (self.edge_weight - 1.0) * edge)
        n_valid = ops.sum(valid, axis=1)
        loss = ops.sum(weight * bce, axis=1) / ops.maximum(n_valid, 1.0)
        if self.dice_weight:
            inter = ops.sum(valid * p * target, axis=1)
            total = ops.sum(valid * p, axis=1) + ops.sum(target * valid, axis=1)
            dice = (2.0 * inter + 1.0) / (total + 1.0)
            loss = loss + self.dice_weight * ops.where(n_valid > 0, 1.0 - dice, 0.0)
        return loss

    def get_config(self):
        return {
            **super().get_config(),
            "w0": self.w0,
            "dice_weight": self.dice_weight,
            "focal_gamma": self.focal_gamma,
            "edge_weight": self.edge_weight,
            "edge_radius": self.edge_radius,
        }
