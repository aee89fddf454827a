"""The accuracy cost of a backend / precision: ``cm-bench --suite precision`` (or
``python -m mars_cloudmask.benchmarks.precision``).

Each map is predicted once per backend (default: onnxruntime CPU fp32, OpenVINO fp32, OpenVINO
bf16), in this process, with ``cm-infer``'s defaults (``seamless`` stitching, the model's polar
offset and threshold).  The masks are compared in memory with ``cm-eval``'s scorer
(:func:`mars_cloudmask.infer.evaluate.confusion`; no NetCDF is written):

* against the human labels on the test days (P01 days 18-20, never trained on) and on the
  validation days (16-17, used to choose the model), pooled F1 per backend;
* against the original model's masks (``reference/``), agreement F1 per subphase the model was
  not trained on (the 5 maps of each);
* each backend against the first (onnxruntime fp32): the share of valid pixels whose cloud/clear
  call changes, and the largest probability difference.

The verdict: bf16 is acceptable as the ``precision="auto"`` default when its test-day F1 is at
most :data:`MAX_F1_COST` below fp32's (``infer.runtime.AUTO_BF16`` follows it by hand).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

MAX_F1_COST = 0.003
"""Largest F1 loss on the test days that bf16 may cost (issue 22)."""
TEST_DAYS = ("P01_day18", "P01_day19", "P01_day20")
VAL_DAYS = ("P01_day16", "P01_day17")


@dataclass(frozen=True)
class BackendSpec:
    """One way of running the model: a ``load_model`` provider and precision."""

    label: str
    provider: str
    precision: str


DEFAULT_BACKENDS = (
    BackendSpec("onnxruntime-fp32", "cpu", "fp32"),
    BackendSpec("openvino-fp32", "openvino", "fp32"),
    BackendSpec("openvino-bf16", "openvino", "bf16"),
)


def _pooled_f1(counts: Sequence[Any]) -> float | None:
    if not counts:
        return None
    total = counts[0]
    for c in counts[1:]:
        total = total + c
    f1 = total.metrics()["f1"]
    return None if f1 != f1 else round(float(f1), 5)  # NaN: no cloud anywhere


def precision_figures(
    model_path: str | Path,
    maps_root: str | Path,
    labels: str | Path | None,
    reference: str | Path | None,
    *,
    backends: Sequence[BackendSpec] = DEFAULT_BACKENDS,
    threads: int | None = None,
    per_subphase: int = 5,
    progress: Callable[[str], None] | None = None,
    partial: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Predict the labelled P01 days 16-20 and ``per_subphase`` maps of each unseen subphase with
    every backend; the F1 figures and pixel flips described in the module docstring.

    ``partial`` is called with the figures so far after each map (a long run keeps its results).
    """
    from mars_cloudmask.infer.evaluate import confusion
    from mars_cloudmask.infer.maps import find_maps, read_ls_table, read_map
    from mars_cloudmask.infer.masks import binarise, day_name, find_masks, load_binary
    from mars_cloudmask.infer.predict import predict
    from mars_cloudmask.infer.runtime import load_model

    say = progress or (lambda _msg: None)
    models = {
        b.label: load_model(model_path, provider=b.provider, precision=b.precision, threads=threads) for b in backends
    }
    first = next(iter(models.values()))
    threshold = first.info.threshold
    label_files = find_masks(labels) if labels and Path(labels).is_dir() else {}
    ref_files = find_masks(reference) if reference and Path(reference).is_dir() else {}
    from .model_card import trained_subphases

    seen = trained_subphases(first.info.metadata) | {"P01"}
    chosen, by_sub = [], {}
    for job in find_maps(maps_root):
        day = day_name(job.path)
        if job.subphase == "P01":
            if day in TEST_DAYS + VAL_DAYS and day in label_files:
                chosen.append((job, day))
        elif job.subphase not in seen and day in ref_files:
            by_sub.setdefault(job.subphase, [])
            if len(by_sub[job.subphase]) < per_subphase:
                by_sub[job.subphase].append(job)
                chosen.append((job, day))
    counts: dict[str, dict[str, dict[str, Any]]] = {b.label: {} for b in backends}
    flips: dict[str, list[tuple[int, int, float]]] = {b.label: [] for b in backends}
    seconds = {b.label: 0.0 for b in backends}
    tables: dict[Path, Any] = {}
    for k, (job, day) in enumerate(chosen):
        say(f"precision: {k + 1}/{len(chosen)} {job.name}")
        if job.ls_file not in tables:
            tables[job.ls_file] = read_ls_table(job.ls_file)
        ls = tables[job.ls_file][job.name].ls
        rgb = read_map(job.path)
        truth = load_binary(label_files[day] if job.subphase == "P01" else ref_files[day], label=True)
        base_prob = base_mask = None
        for b in backends:
            t = time.perf_counter()
            prob = predict(models[b.label], rgb, ls=ls)
            seconds[b.label] += time.perf_counter() - t
            mask = binarise(prob, threshold)
            counts[b.label][day] = {"subphase": job.subphase, "counts": confusion(mask, truth)}
            if base_prob is None:
                base_prob, base_mask = prob, mask
            else:
                valid = mask.valid & base_mask.valid
                changed = int(np.count_nonzero((mask.cloud != base_mask.cloud) & valid))
                diff = float(np.abs(prob[valid] - base_prob[valid]).max()) if valid.any() else 0.0
                flips[b.label].append((changed, int(np.count_nonzero(valid)), diff))
        if partial is not None:
            partial(_summary(model_path, threshold, k + 1, backends, models, seconds, counts, flips, by_sub))
    return _summary(model_path, threshold, len(chosen), backends, models, seconds, counts, flips, by_sub)


def _summary(model_path, threshold, n_maps, backends, models, seconds, counts, flips, by_sub) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": str(model_path),
        "threshold": threshold,
        "maps": n_maps,
        "backends": {
            b.label: {
                "provider": models[b.label].provider,
                "precision": models[b.label].precision,
                "requested": [b.provider, b.precision],
                "predict_s": round(seconds[b.label], 1),
            }
            for b in backends
        },
        "labels": {},
        "agreement": {},
        "vs_first": {},
    }
    for b in backends:
        c = counts[b.label]
        out["labels"][b.label] = {
            "test_days_18_20": _pooled_f1([c[d]["counts"] for d in TEST_DAYS if d in c]),
            "val_days_16_17": _pooled_f1([c[d]["counts"] for d in VAL_DAYS if d in c]),
        }
        out["agreement"][b.label] = {
            sub: _pooled_f1([v["counts"] for v in c.values() if v["subphase"] == sub]) for sub in sorted(by_sub)
        }
        if flips[b.label]:
            changed = sum(f[0] for f in flips[b.label])
            valid = sum(f[1] for f in flips[b.label])
            out["vs_first"][b.label] = {
                "pixels_flipped_pct": round(100 * changed / valid, 4) if valid else None,
                "max_abs_prob_diff": _sig(max(f[2] for f in flips[b.label])),
            }
    out["verdict"] = bf16_verdict(out["labels"])
    return out


def _sig(x: float) -> float:
    return float(f"{x:.3g}")


def bf16_verdict(labels: dict[str, dict[str, float | None]], max_cost: float = MAX_F1_COST) -> dict[str, Any]:
    """Whether bf16 may be the default: its test-day F1 loss against OpenVINO fp32 (pure function)."""
    fp32 = (labels.get("openvino-fp32") or {}).get("test_days_18_20")
    bf16 = (labels.get("openvino-bf16") or {}).get("test_days_18_20")
    if fp32 is None or bf16 is None:
        return {"measured": False, "bf16_default": None}
    cost = round(fp32 - bf16, 5)
    return {"measured": True, "f1_cost": cost, "max_cost": max_cost, "bf16_default": cost <= max_cost}


def markdown(fig: dict[str, Any]) -> str:
    """The figures as Markdown tables (what the model card shows)."""
    names = list(fig["backends"])
    lines = ["| | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for key, title in (
        ("test_days_18_20", "F1 vs labels, P01 days 18-20 (test)"),
        ("val_days_16_17", "F1 vs labels, P01 days 16-17 (validation)"),
    ):
        lines.append(f"| {title} | " + " | ".join(str(fig["labels"][n][key]) for n in names) + " |")
    subs = sorted({s for n in names for s in fig["agreement"][n]})
    for sub in subs:
        lines.append(
            f"| agreement F1 with the original, {sub} | "
            + " | ".join(str(fig["agreement"][n].get(sub)) for n in names)
            + " |"
        )
    lines.append(
        "| pixels flipped vs the first (%) | "
        + " | ".join(str(fig["vs_first"].get(n, {}).get("pixels_flipped_pct", "-")) for n in names)
        + " |"
    )
    lines.append(
        "| max probability difference vs the first | "
        + " | ".join(str(fig["vs_first"].get(n, {}).get("max_abs_prob_diff", "-")) for n in names)
        + " |"
    )
    v = fig["verdict"]
    if v.get("measured"):
        lines.append(
            f"\nbf16 costs {v['f1_cost']:+.4f} F1 on the test days (limit {v['max_cost']}): "
            f"{'bf16 may be the auto default' if v['bf16_default'] else 'auto must stay fp32'}."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument("--data", type=Path, required=True, help="data folder holding mdgm/, labels/P01/, reference/P/")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--per-subphase", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=Path("precision.json"), help="JSON figures (default ./precision.json)"
    )
    args = parser.parse_args(argv)
    from mars_cloudmask.infer.atomic import write_text_atomic
    from mars_cloudmask.models import default_model_path

    fig = precision_figures(
        args.model or default_model_path(),
        args.data / "mdgm",
        args.data / "labels" / "P01",
        args.data / "reference" / "P",
        threads=args.threads,
        per_subphase=args.per_subphase,
        progress=lambda m: print(m, file=sys.stderr, flush=True),
        partial=lambda f: write_text_atomic(args.out.with_suffix(".partial.json"), json.dumps(f, indent=1)),
    )
    fig["command"] = "python -m mars_cloudmask.benchmarks.precision " + " ".join(sys.argv[1:] if argv is None else argv)
    write_text_atomic(args.out, json.dumps(fig, indent=1))
    print(markdown(fig))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
