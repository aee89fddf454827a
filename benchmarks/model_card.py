"""Figures of a model's card: ``python -m mars_cloudmask.benchmarks.model_card``.

Runs ``cm-infer``'s own pipeline with the model on every map of the ``mdgm/`` tree, then scores
the masks with ``cm-eval``'s code:

* against the human labels (P01) on the validation and the test days, next to the original
  model's published masks on the same days;
* against the original model's masks (``reference/``), per subphase it was not trained on
  (agreement F1);
* a ``cm-eval --png`` picture of the worst test day.

Writes ``<out>/card.json`` (and ``--card models/<name>.card.json``, the file the regression
test reads) with every figure and the commands that reproduce them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from .paths import DATA_HELP, data_dir


def _pooled(result: Any) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in result.pooled_metrics().items()}


def _per_day(result: Any) -> dict[str, float]:
    return {d.day: round(float(d.metrics["f1"]), 4) for d in result.days}


def trained_subphases(metadata: dict[str, str]) -> set[str]:
    """Subphases (``P07``...) whose maps the model saw in training, read from its ``split`` metadata.

    Labelled days and weak-target reference maps both count (names ``P01day05`` or ``P07_day03``;
    parsed by :func:`mars_cloudmask.infer.science.split.parse_split`, as ``cm-eval`` does).
    """
    from mars_cloudmask.infer.science.split import parse_split

    return {day.split("_", 1)[0] for day, role in parse_split(metadata.get("split", "")).items() if role == "train"}


def model_card_figures(
    model_path: Path,
    data: Path,
    out: Path,
    *,
    val_days: str = "16-17",
    test_days: str = "18-20",
    regression_days: str = "18-19",
    stitch: str = "seamless",
) -> dict[str, Any]:
    """Run the model on ``data/mdgm`` and score it; returns the card's figures as a dict."""
    from mars_cloudmask.infer.engine import run_folder
    from mars_cloudmask.infer.runtime import load_model
    from mars_cloudmask.infer.science.evaluate import evaluate
    from mars_cloudmask.infer.science.masks import find_masks, select_days

    model = load_model(model_path, provider="cpu")
    masks = out / "masks"
    t0 = time.perf_counter()
    report = run_folder(data / "mdgm", out=masks, model=model, stitch=stitch)
    infer_s = time.perf_counter() - t0
    labels = data / "labels" / "P01"
    reference = data / "reference" / "P"
    label_days = list(find_masks(labels))

    def against_labels(pred: Path, spec: str, png: Path | None = None) -> Any:
        return evaluate(
            pred, labels, days=select_days(spec, label_days), png_dir=png, map_roots=[data / "mdgm"] if png else ()
        )

    figures: dict[str, Any] = {
        "model": {
            "path": str(model_path),
            "name": model.info.name,
            "version": model.info.version,
            "sha256": model.sha256,
            "threshold": model.info.threshold,
            "polar_offset": model.info.polar_offset,
        },
        "stitch": stitch,
        "cm_infer": {"maps": len(report.results), "counts": report.counts(), "wall_s": round(infer_s, 1)},
        "labels": {},
    }
    for split, spec in (("val", val_days), ("test", test_days), ("regression", regression_days)):
        ours = against_labels(masks / "P" / "P01", spec)
        original = against_labels(reference / "P01", spec)
        figures["labels"][split] = {
            "days": spec,
            "model": _pooled(ours),
            "model_per_day": _per_day(ours),
            "original": _pooled(original),
            "original_per_day": _per_day(original),
        }
    test = figures["labels"]["test"]["model_per_day"]
    worst = min(test, key=test.get)
    against_labels(masks / "P" / "P01", worst, png=out / "png")
    figures["worst_test_day"] = {"day": worst, "f1": test[worst], "png": str(out / "png" / f"eval_{worst}.png")}

    seen = trained_subphases(model.info.metadata) | {"P01"}
    agreement: dict[str, Any] = {}
    for sub in sorted(p.name for p in (masks / "P").iterdir() if p.is_dir() and p.name != "P01"):
        res = evaluate(masks / "P" / sub, reference / sub)
        if res.days:
            agreement[sub] = {"days": len(res.days), "trained_on": sub in seen, **_pooled(res)}
    figures["agreement_with_original"] = agreement
    unseen = {k: v for k, v in agreement.items() if not v["trained_on"]}
    if unseen:  # the target is about subphases the model was not trained on
        f1s = sorted(v["f1"] for v in unseen.values())
        figures["agreement_summary"] = {
            "subphases": len(f1s),
            "min_f1": f1s[0],
            "median_f1": f1s[len(f1s) // 2],
            "below_0.75": [k for k, v in unseen.items() if v["f1"] < 0.75],
            "trained_on_excluded": sorted(seen - {"P01"}),
        }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"the shared data folder (mdgm/, labels/, reference/); default: {DATA_HELP}",
    )
    parser.add_argument("--out", type=Path, required=True, help="work folder (masks, pictures, card.json)")
    parser.add_argument("--card", type=Path, default=None, help="also write the figures here (models/NAME.card.json)")
    parser.add_argument("--stitch", default="seamless")
    args = parser.parse_args(argv)
    from mars_cloudmask.infer.atomic import write_text_atomic
    from mars_cloudmask.models import default_model_path

    model = args.model or default_model_path()
    figures = model_card_figures(model, data_dir(args.data), args.out, stitch=args.stitch)
    import sys

    figures["command"] = "python -m mars_cloudmask.benchmarks.model_card " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    text = json.dumps(figures, indent=1)
    write_text_atomic(args.out / "card.json", text)
    if args.card:
        write_text_atomic(args.card, text)
    print(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
