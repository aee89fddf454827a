"""The learning-curve figure of a run (``curves.png``): losses and validation scores per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mars_cloudmask.infer.atomic import atomic_path


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Write ``path`` (PNG, atomically) from ``history.json`` records: train and validation loss
    on the left; validation F1 at the fixed and at the best threshold, and IoU, on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [h["loss"] for h in history], label="train loss")
    if all("val_loss" in h for h in history):  # a refit without validation has none
        a.plot(epochs, [h["val_loss"] for h in history], label="val loss")
    a.set_xlabel("epoch")
    a.set_ylabel("loss (masked weighted BCE + Dice term)")
    a.legend()
    a.grid(alpha=0.3)
    for key, style, label in (
        ("val_f1", "-", "val F1 at the fixed threshold"),
        ("val_best_threshold_f1", "--", "val F1 at its best threshold"),
        ("val_iou", ":", "val IoU at the fixed threshold"),
    ):
        if all(key in h for h in history):
            b.plot(epochs, [h[key] for h in history], style, label=label)
    b.set_xlabel("epoch")
    b.set_ylabel("validation score")
    if b.lines:
        b.legend()
    else:
        b.text(0.5, 0.5, "no validation days (a refit)", ha="center", va="center", transform=b.transAxes)
    b.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
