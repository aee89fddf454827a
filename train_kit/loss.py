"""The training loss: per-pixel weighted binary cross-entropy (domain.md 6), -999 ignored.

Targets are float ``(N, h, w, 1)`` (or ``(N, h, w)``) holding 1 = cloud, 0 = clear and
:data:`IGNORE` (-999) for pixels that count nowhere.  Cloudy pixels weigh ``1 - w0`` and clear
ones ``w0``; the original used ``w0 = 0.03688``, the cloudy fraction of its training set
(:func:`cloudy_fraction` computes it for any set of masks).  An optional soft-Dice term helps
F1 directly.  Everything is written with ``keras.ops``: it runs unchanged on TensorFlow and JAX.
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


def _flatten(y_true, y_pred):
    y_true = ops.reshape(ops.cast(y_true, "float32"), (ops.shape(y_true)[0], -1))
    y_pred = ops.reshape(ops.cast(y_pred, "float32"), (ops.shape(y_pred)[0], -1))
    return y_true, y_pred


@keras.saving.register_keras_serializable(package="cloudmask")
class MaskedWeightedBCE(keras.losses.Loss):
    """Weighted BCE over valid pixels (+ optional soft Dice), one value per sample.

    Per sample: ``sum(weight * bce) / n_valid`` with weight ``1 - w0`` on cloud and ``w0`` on
    clear pixels, plus ``dice_weight * (1 - soft_dice)`` over the valid pixels.  Samples with
    no valid pixel contribute 0.  Keras multiplies the per-sample values by ``sample_weight``
    (used for the weaker reference targets).
    """

    def __init__(self, w0: float = ORIGINAL_W0, dice_weight: float = 0.0, name: str = "masked_wbce", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 < w0 < 1.0:
            raise ValueError(f"w0 must be in (0, 1), got {w0}")
        self.w0 = float(w0)
        self.dice_weight = float(dice_weight)

    def call(self, y_true, y_pred):
        y_true, y_pred = _flatten(y_true, y_pred)
        valid = ops.cast(y_true >= 0, "float32")
        target = ops.where(y_true >= 0, ops.clip(y_true, 0.0, 1.0), 0.0)
        p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        bce = -(target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))
        weight = valid * (target * (1.0 - self.w0) + (1.0 - target) * self.w0)
        n_valid = ops.sum(valid, axis=1)
        loss = ops.sum(weight * bce, axis=1) / ops.maximum(n_valid, 1.0)
        if self.dice_weight:
            inter = ops.sum(valid * p * target, axis=1)
            total = ops.sum(valid * p, axis=1) + ops.sum(target * valid, axis=1)
            dice = (2.0 * inter + 1.0) / (total + 1.0)
            loss = loss + self.dice_weight * ops.where(n_valid > 0, 1.0 - dice, 0.0)
        return loss

    def get_config(self):
        return {**super().get_config(), "w0": self.w0, "dice_weight": self.dice_weight}
