"""Streaming pixel metrics at a threshold, ignoring -999 targets: accuracy, IoU, precision,
recall, F1 (one confusion matrix per metric object, accumulated over batches).

:func:`scores_from_counts` is the single formula used by the Keras metrics and by any
NumPy-side evaluation (:func:`confusion_counts`).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mars_cloudmask.infer.contract import DEFAULT_THRESHOLD

__all__ = ["DEFAULT_THRESHOLD", "MaskedScore", "confusion_counts", "pixel_metrics", "scores_from_counts"]
SCORES = ("accuracy", "iou", "precision", "recall", "f1")


def scores_from_counts(tp: float, fp: float, fn: float, tn: float) -> dict[str, float]:
    """Accuracy, IoU, precision, recall and F1 from confusion counts (0 where undefined)."""

    def ratio(a: float, b: float) -> float:
        return float(a) / float(b) if b else 0.0

    return {
        "accuracy": ratio(tp + tn, tp + fp + fn + tn),
        "iou": ratio(tp, tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
    }


def confusion_counts(target: np.ndarray, prob: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """``[tp, fp, fn, tn]`` (int64) over pixels where ``target >= 0``; cloud = ``prob >= threshold``."""
    valid = target >= 0
    truth = target[valid] > 0.5
    pred = prob[valid] >= threshold
    tp = int(np.count_nonzero(truth & pred))
    fp = int(np.count_nonzero(~truth & pred))
    fn = int(np.count_nonzero(truth & ~pred))
    return np.array([tp, fp, fn, int(truth.size) - tp - fp - fn], dtype=np.int64)


@keras.saving.register_keras_serializable(package="cloudmask")
class MaskedScore(keras.metrics.Metric):
    """One of :data:`SCORES` at ``threshold``, streaming over batches, -999 targets ignored."""

    def __init__(self, score: str = "f1", threshold: float = DEFAULT_THRESHOLD, name: str | None = None, **kwargs):
        if score not in SCORES:
            raise ValueError(f"unknown score {score!r}: use one of {', '.join(SCORES)}")
        super().__init__(name=name or score, **kwargs)
        self.score, self.threshold = score, float(threshold)
        self.counts = self.add_variable(shape=(4,), initializer="zeros", dtype="float32", name="counts")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "float32")
        valid = ops.cast(y_true >= 0, "float32")
        truth = ops.cast(y_true > 0.5, "float32") * valid
        pred = ops.cast(ops.cast(y_pred, "float32") >= self.threshold, "float32") * valid
        tp = ops.sum(truth * pred)
        fp = ops.sum(pred) - tp
        fn = ops.sum(truth) - tp
        tn = ops.sum(valid) - tp - fp - fn
        self.counts.assign_add(ops.stack([tp, fp, fn, tn]))

    def result(self):
        tp, fp, fn, tn = self.counts[0], self.counts[1], self.counts[2], self.counts[3]

        def ratio(a, b):
            return ops.where(b > 0, a / ops.maximum(b, 1.0), 0.0)

        return {
            "accuracy": lambda: ratio(tp + tn, tp + fp + fn + tn),
            "iou": lambda: ratio(tp, tp + fp + fn),
            "precision": lambda: ratio(tp, tp + fp),
            "recall": lambda: ratio(tp, tp + fn),
            "f1": lambda: ratio(2 * tp, 2 * tp + fp + fn),
        }[self.score]()

    def reset_state(self):
        self.counts.assign(ops.zeros((4,), dtype="float32"))

    def get_config(self):
        return {**super().get_config(), "score": self.score, "threshold": self.threshold}


def pixel_metrics(threshold: float = DEFAULT_THRESHOLD) -> list[MaskedScore]:
    """The five streaming metrics at ``threshold``, for ``model.compile(metrics=...)``."""
    return [MaskedScore(s, threshold) for s in SCORES]
