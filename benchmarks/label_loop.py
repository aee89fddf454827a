"""The correct-then-fine-tune loop, measured (issue 34 item 3).

A simulated cm-label user on P01: a width-8 base model trained on days 01-05 only, then
fine-tuned (``init`` = the base's ``last.keras``) on days 01-05 plus ``k`` more days whose
masks were "corrected" perfectly, i.e. replaced by their true labels (k = 1, 2, 4, spread over
days 06-15), and a k = 0 control (the same fine-tune on days 01-05 alone).  Every model is
scored on whole P01 maps of days 16-20 (as cm-infer predicts); each training's wall minutes
are recorded.

    python -m mars_cloudmask.benchmarks.label_loop --data /work/shared/data --runs runs/loop \\
        --out docs/loop/loop.json --plot docs/img/label-loop.png

Resumable: a step (training or scoring) recorded in the JSON is skipped; an interrupted
training resumes from its run folder, as cm-train does.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from mars_cloudmask.train_kit.checkpoint import LAST, STATE, read_json, write_json
from mars_cloudmask.train_kit.config import TrainConfig
from mars_cloudmask.train_kit.evaluate import Histograms

BASE_DAYS = (1, 2, 3, 4, 5)
"""The days the base model trains on (and every fine-tune keeps)."""
ADDED_DAYS: dict[int, tuple[int, ...]] = {0: (), 1: (10,), 2: (8, 12), 4: (6, 9, 12, 15)}
"""k -> the days 'corrected' into labels and added to the fine-tune (spread over days 06-15)."""
EVAL_DAYS = (16, 17, 18, 19, 20)
"""The days every model is scored on (never trained on)."""
THRESHOLDS = (0.67, 0.5)
"""0.67: width 8's cross-validated threshold (docs/cv/width.json); 0.5: the plain one."""

RECIPE: dict[str, Any] = {
    "width": 8, "depth": 4, "epochs": 12, "batch_size": 8, "lr": 1e-3, "lr_schedule": "cosine",
    "patience": 12, "bn_momentum": 0.9, "brightness": 0.1, "w0": 0.5, "dice_weight": 0.5,
    "seed": 0, "threads": 2, "keep_epochs": False,
}
"""The base's recipe: docs/cv/recipes-width.json's ``base`` with width 8."""
FINETUNE: dict[str, Any] = {"lr": 5e-4, "epochs": 6, "patience": 6}
"""What a fine-tune changes from :data:`RECIPE` (besides ``init``)."""

Scorer = Callable[[Path, Path, Path, Sequence[int]], Mapping[str, Histograms]]
"""``(model, run folder, data root, P01 days) -> {day name: Histograms}``."""


def labelled_days(labels: Path) -> list[int]:
    """The day numbers of a labelled P01 folder (its ``cloudmask/cloudmask_P01dayNN.ncdf`` files)."""
    return sorted(int(p.stem[-2:]) for p in (labels / "cloudmask").glob("cloudmask_P01day??.ncdf"))


def train_days(k: int | None, base_days: Sequence[int] = BASE_DAYS,
               added: Mapping[int, Sequence[int]] = ADDED_DAYS) -> list[int]:
    """The days a step trains on: ``k`` None is the base, else the base days plus ``added[k]``."""
    return sorted(set(base_days) | (set(added[k]) if k is not None else set()))


def step_config(labels: Path, out: Path, days: Sequence[int], all_days: Sequence[int],
                recipe: Mapping[str, Any], init: Path | None = None,
                finetune: Mapping[str, Any] | None = None) -> TrainConfig:
    """The TrainConfig of one step: trains on ``days`` of ``labels``, no validation days (cosine,
    patience >= epochs), every other labelled day set aside as a test day (never loaded)."""
    kw = {**recipe, **(finetune or {})}
    return TrainConfig(
        data=[str(labels)], out=str(out), val_days=[],
        test_days=[d for d in all_days if d not in set(days)],
        init=str(init) if init is not None else None, **kw,
    )


def summarise(per_day: Mapping[str, Histograms], thresholds: Sequence[float] = THRESHOLDS) -> dict[str, Any]:
    """Pooled F1 (all days' pixels together) and per-day F1 at each threshold, keyed ``"0.67"``."""
    pooled = Histograms.empty()
    for h in per_day.values():
        pooled.cloud += h.cloud
        pooled.clear += h.clear
    return {
        "f1": {f"{t:g}": pooled.scores(t)["f1"] for t in thresholds},
        "pooled": {f"{t:g}": pooled.scores(t) for t in thresholds},
        "per_day": {name: {f"{t:g}": h.scores(t)["f1"] for t in thresholds} for name, h in sorted(per_day.items())},
    }


def default_scorer(model: Path, run: Path, data: Path, days: Sequence[int]) -> Mapping[str, Histograms]:
    """Whole-map histograms of ``model`` on P01 ``days`` (train_kit.crossval.score_fold)."""
    from mars_cloudmask.train_kit.crossval import score_fold

    return score_fold(model, run, data, days, None)


def _train(cfg: TrainConfig, log: Callable[[str], None]) -> dict[str, Any]:
    from mars_cloudmask.train_kit.train import train

    resumed = (Path(cfg.out) / STATE).is_file()
    start = time.monotonic()
    train(cfg, log=log)
    return {"minutes": round((time.monotonic() - start) / 60, 2), "resumed": resumed}


def run_loop(
    data: Path, runs: Path, out: Path, *, ks: Sequence[int] = (0, 1, 2, 4),
    base_days: Sequence[int] = BASE_DAYS, added: Mapping[int, Sequence[int]] = ADDED_DAYS,
    eval_days: Sequence[int] = EVAL_DAYS, recipe: Mapping[str, Any] = RECIPE,
    finetune: Mapping[str, Any] = FINETUNE, scorer: Scorer = default_scorer,
    trainer: Callable[[TrainConfig, Callable[[str], None]], dict[str, Any]] = _train,
    log: Callable[[str], None] = print, base: bool = True,
) -> dict[str, Any]:
    """Train and score the base (unless ``base`` is False: another call trains and records it) and
    each fine-tune ``k``, recording into ``out`` (JSON, rewritten atomically after every training
    and scoring); steps already in ``out`` are skipped."""
    labels = data / "labels" / "P01"
    all_days = labelled_days(labels)
    if not all_days:
        raise FileNotFoundError(f"{labels}: no cloudmask/cloudmask_P01dayNN.ncdf labels")
    record: dict[str, Any] = read_json(out) if out.is_file() else {}
    record.update({
        "version": 1,
        "about": "Issue 34 item 3: a width-8 model trained on P01 days 01-05, fine-tuned on k more days "
                 "whose masks were corrected perfectly (their true labels); F1 on whole maps of days 16-20.",
        "command": " ".join(["python -m mars_cloudmask.benchmarks.label_loop", *sys.argv[1:]]),
        "base_days": list(base_days), "added_days": {str(k): list(added[k]) for k in ks},
        "eval_days": list(eval_days), "thresholds": list(THRESHOLDS),
        "recipe": dict(recipe), "finetune": dict(finetune),
    })
    steps: dict[str, Any] = record.setdefault("steps", {})
    base_run = runs / "base"
    plan: list[tuple[str, int | None]] = ([("base", None)] if base else []) + [(f"k{k}", k) for k in ks]
    if not base and not (base_run / LAST).is_file():
        raise FileNotFoundError(f"{base_run / LAST}: no base model to fine-tune (run without --no-base first)")
    for name, k in plan:
        days = train_days(k, base_days, added)
        run = runs / name
        cfg = step_config(labels, run, days, all_days, recipe,
                          init=None if k is None else base_run / LAST,
                          finetune=None if k is None else finetune)
        step = steps.setdefault(name, {})
        step.update({"k": k, "train_days": days, "run": str(run)})
        if "minutes" not in step:
            log(f"{name}: training on days {days}")
            step["config"] = asdict(cfg)
            step.update(trainer(cfg, log))
            write_json(out, record)
        else:
            log(f"{name}: trained ({step['minutes']} min), skipped")
        if "f1" not in step:
            log(f"{name}: scoring on days {list(eval_days)}")
            step.update(summarise(scorer(run / LAST, run, data, eval_days)))
            write_json(out, record)
        log(f"{name}: F1 " + ", ".join(f"{v:.4f} at {t}" for t, v in step["f1"].items()))
    return record


def plot_loop(record: Mapping[str, Any], path: Path, threshold: str = "0.67") -> Path:
    """F1 on the eval days against k (base dashed) and minutes per fine-tune, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = record["steps"]
    fine = sorted((s for s in steps.values() if s.get("k") is not None and "f1" in s), key=lambda s: s["k"])
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 2]})
    ks = [s["k"] for s in fine]
    for t, style, color in ((threshold, "o-", "tab:blue"), ("0.5", "s:", "tab:orange")):
        if t in steps.get("base", {}).get("f1", {}):
            ax.axhline(steps["base"]["f1"][t], ls="--", color=color, alpha=0.6,
                       label=f"base (days 01-05 only), threshold {t}")
        ax.plot(ks, [s["f1"][t] for s in fine], style, color=color, label=f"fine-tuned, threshold {t}")
    for s in fine:
        added = s["train_days"][len(record["base_days"]):]
        ax.annotate("+" + ",".join(f"{d:02d}" for d in added) if added else "no day added",
                    (s["k"], s["f1"][threshold]), textcoords="offset points", xytext=(4, -14), fontsize=7)
    ax.set_xticks(ks)
    ax.set_xlabel("k: corrected days added to days 01-05")
    ax.set_ylabel(f"pixel F1, P01 days {record['eval_days'][0]}-{record['eval_days'][-1]} (whole maps)")
    ax.set_title("Correcting k more days, then fine-tuning (width 8)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    bx.bar([str(k) for k in ks], [s["minutes"] for s in fine], color="tab:orange")
    for i, s in enumerate(fine):
        bx.text(i, s["minutes"], f"{s['minutes']:.1f}", ha="center", va="bottom", fontsize=8)
    base_min = steps.get("base", {}).get("minutes")
    bx.set_title(f"fine-tune wall minutes ({FINETUNE['epochs']} epochs, 2 cores)"
                 + (f"\nbase: {base_min:.1f} min" if base_min is not None else ""), fontsize=9)
    bx.set_xlabel("k")
    bx.set_ylabel("minutes")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def card_table(record: Mapping[str, Any]) -> str:
    """The model card's Markdown table of ``record``: one row per step done (base first, then k)."""
    steps = record["steps"]
    names = [n for n in ["base"] + sorted((n for n in steps if n != "base"), key=lambda n: steps[n]["k"])
             if n in steps and "f1" in steps[n]]
    days = sorted({d for n in names for d in steps[n]["per_day"]})
    head = ["model", "days added", "F1 at 0.67", "F1 at 0.5", *(f"day {d[-2:]}" for d in days), "minutes"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in names:
        s = steps[n]
        added = s["train_days"][len(record["base_days"]):] if s["k"] is not None else []
        label = "base (01-05, 12 epochs)" if s["k"] is None else f"k = {s['k']}"
        cells = [label, ", ".join(f"{d:02d}" for d in added) or "none", f"{s['f1']['0.67']:.4f}",
                 f"{s['f1']['0.5']:.4f}", *(f"{s['per_day'][d]['0.67']:.3f}" for d in days), f"{s['minutes']:.1f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: run (or resume) the loop, then draw the plot."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="folder holding labels/P01 and mdgm/P/P01")
    p.add_argument("--runs", type=Path, required=True, help="folder of the run folders (base, k0, k1, ...)")
    p.add_argument("--out", type=Path, required=True, help="the JSON record")
    p.add_argument("--plot", type=Path, help="the PNG figure")
    p.add_argument("--ks", default="0,1,2,4", help="the fine-tunes to run, comma separated (default 0,1,2,4)")
    p.add_argument("--no-base", action="store_true",
                   help="only the fine-tunes, from RUNS/base/last.keras trained by another call")
    a = p.parse_args(argv)
    from mars_cloudmask.train_kit.tf_logs import start_tensorflow

    start_tensorflow("label_loop")  # TensorFlow's CUDA and oneDNN start-up lines stay off the terminal
    try:
        ks = [int(k) for k in a.ks.split(",")]
        unknown = [k for k in ks if k not in ADDED_DAYS]
        if unknown:
            raise ValueError(f"--ks {a.ks}: no day set for k={unknown} (known: {sorted(ADDED_DAYS)})")
        record = run_loop(a.data, a.runs, a.out, ks=ks, base=not a.no_base)
    except (OSError, ValueError) as exc:
        print(f"label_loop: {exc}", file=sys.stderr)
        return 1
    if a.plot is not None:
        plot_loop(record, a.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
