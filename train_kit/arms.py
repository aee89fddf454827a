"""Tables comparing training arms (issue 21): one row per scored run, against a reference model.

Input: the JSON results of :func:`mars_cloudmask.train_kit.evaluate.evaluate_model` (one per run,
``eval.json``) and, as the reference, the model card's ``agreement_with_original`` (version 2).
A run's weak-target subphases (its ``run.json`` ``reference`` folders) are marked as trained on:
their agreement is shown in brackets and left out of the "unseen" columns.

Pure functions over dictionaries; :func:`main` is the command line.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

FRACTION_SUBPHASES = ("P09", "P10")  # where the original marks almost nothing: judged by cloud fraction
MARGIN = 0.03  # the issue's allowance below version 2's agreement


@dataclass
class Arm:
    """One scored run: its name, its scores, and the subphases it trained on (weak targets)."""

    name: str
    result: Mapping[str, Any]
    trained_on: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def load(cls, eval_json: str | Path) -> "Arm":
        """Read ``RUN/eval.json``; the run's name and weak-target subphases come from ``RUN/run.json``."""
        path = Path(eval_json)
        result = json.loads(path.read_text())
        trained: set[str] = set()
        run_json = path.parent / "run.json"
        if run_json.is_file():
            run = json.loads(run_json.read_text())
            trained = {Path(p).name for p in run.get("reference") or []}
        return cls(path.parent.name, result, frozenset(trained))


def reference_agreement(card: Mapping[str, Any]) -> dict[str, float]:
    """Subphase -> agreement F1 of the card's model (``agreement_with_original``)."""
    return {sub: float(row["f1"]) for sub, row in card["agreement_with_original"].items()}


def judge(arm: Arm, reference: Mapping[str, float], margin: float = MARGIN) -> dict[str, Any]:
    """The arm's agreement verdict: unseen subphases (F1-judged, so P09/P10 excluded) below reference - margin."""
    below = []
    for sub, row in sorted(arm.result["agreement"].items()):
        if sub in arm.trained_on or sub in FRACTION_SUBPHASES or sub not in reference:
            continue
        if row["f1"] < reference[sub] - margin:
            below.append(sub)
    unseen = [r["f1"] for s, r in arm.result["agreement"].items() if s not in arm.trained_on]
    return {
        "below_reference": below,
        "unseen_median": round(statistics.median(unseen), 4) if unseen else float("nan"),
        "unseen": len(unseen),
    }


def summary_table(arms: Sequence[Arm], reference: Mapping[str, float], margin: float = MARGIN) -> str:
    """Markdown: val F1, threshold, test F1 (and per day), unseen median, subphases below the reference."""
    lines = [
        "| arm | threshold | val F1 16-17 | test F1 18-20 (per day) | agreement median (unseen) "
        f"| unseen subphases below version 2 - {margin} |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    ref_median = statistics.median(reference.values()) if reference else float("nan")
    lines.append(f"| version 2 (card) | - | - | - | {ref_median:.4f} (18) | - |")
    for arm in arms:
        r = arm.result
        days = ", ".join(f"{v:.3f}" for v in r["test"].get("per_day", {}).values())
        j = judge(arm, reference, margin)
        below = ", ".join(j["below_reference"]) or "none"
        lines.append(
            f"| {arm.name} | {r['threshold']:.2f} | {r['val']['f1']:.4f} | {r['test']['f1']:.4f} ({days}) "
            f"| {j['unseen_median']:.4f} ({j['unseen']}) | {below} |"
        )
    return "\n".join(lines) + "\n"


def arm_family(name: str) -> str:
    """The arm a run belongs to: its name without a trailing seed suffix (``v3-rgb-s1`` -> ``v3-rgb``)."""
    return re.sub(r"-s\d+$", "", name)


def families(arms: Sequence[Arm]) -> dict[str, list[Arm]]:
    """Runs grouped by :func:`arm_family`, families and their seeds in first-seen order."""
    out: dict[str, list[Arm]] = {}
    for arm in arms:
        out.setdefault(arm_family(arm.name), []).append(arm)
    return out


def median_over(agreement: Mapping[str, float], subphases: Sequence[str]) -> float:
    """Median of ``agreement`` (subphase -> F1) over ``subphases`` it has; NaN if none."""
    values = [agreement[s] for s in subphases if s in agreement]
    return statistics.median(values) if values else float("nan")


def _f1s(arm: Arm) -> dict[str, float]:
    return {s: r["f1"] for s, r in arm.result["agreement"].items()}


def seed_table(arms: Sequence[Arm], reference: Mapping[str, float], margin: float = MARGIN) -> str:
    """Markdown, one row per arm family (runs named ``ARM-sN``): its number of seeds, their val F1,
    test F1 and agreement median (each as ``values -> mean``), and the unseen subphases below
    version 2 - margin in every seed and in some seeds only.  The median is over the subphases
    that no run given trained on, the same set for every row and for version 2 (first row), so
    that arms with and without weak targets compare.  Families in first-seen order."""
    common = common_unseen(arms)

    def cell(values: Sequence[float]) -> str:
        joined = ", ".join(f"{v:.4f}" for v in values)
        return joined if len(values) == 1 else f"{joined} -> {statistics.fmean(values):.4f}"

    lines = [
        f"| arm | seeds | val F1 16-17 | test F1 18-20 | agreement median ({len(common)} subphases unseen by all) "
        f"| below version 2 - {margin}: every seed | some seeds only |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| version 2 (card) | 1 | - | - | {median_over(reference, common):.4f} | - | - |",
    ]
    for family, runs in families(arms).items():
        belows = [set(judge(a, reference, margin)["below_reference"]) for a in runs]
        every = set.intersection(*belows)
        some = set.union(*belows) - every
        medians = [median_over(_f1s(a), common) for a in runs]
        lines.append(
            f"| {family} | {len(runs)} | {cell([a.result['val']['f1'] for a in runs])} "
            f"| {cell([a.result['test']['f1'] for a in runs])} | {cell(medians)} "
            f"| {', '.join(sorted(every)) or 'none'} | {', '.join(sorted(some)) or '-'} |"
        )
    return "\n".join(lines) + "\n"


def agreement_table(arms: Sequence[Arm], reference: Mapping[str, float]) -> str:
    """Markdown: agreement F1 per subphase (rows) for version 2 and each arm; [x] = trained on."""
    subs = sorted(set(reference) | {s for a in arms for s in a.result["agreement"]})
    lines = ["| subphase | version 2 | " + " | ".join(a.name for a in arms) + " |"]
    lines.append("| --- " * (2 + len(arms)) + "|")
    for sub in subs:
        cells = [f"{reference[sub]:.3f}" if sub in reference else "-"]
        for a in arms:
            row = a.result["agreement"].get(sub)
            if row is None:
                cells.append("-")
            elif sub in a.trained_on:
                cells.append(f"[{row['f1']:.3f}]")
            else:
                cells.append(f"{row['f1']:.3f}")
        lines.append(f"| {sub} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def fraction_table(arms: Sequence[Arm], subphases: Sequence[str] = FRACTION_SUBPHASES) -> str:
    """Markdown: cloud fraction of each arm and of the original on the subphases judged by fraction."""
    lines = ["| arm | " + " | ".join(f"{s} arm / original" for s in subphases) + " |"]
    lines.append("| --- " * (1 + len(subphases)) + "|")
    for a in arms:
        cells = []
        for s in subphases:
            row = a.result["agreement"].get(s)
            cells.append(
                "-" if row is None else f"{row['pred_cloud_fraction']:.4f} / {row['truth_cloud_fraction']:.4f}"
            )
        lines.append(f"| {a.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def common_unseen(arms: Sequence[Arm]) -> list[str]:
    """The subphases scored for every arm and trained on by none (sorted)."""
    if not arms:
        return []
    return sorted(set.intersection(*(set(a.result["agreement"]) - a.trained_on for a in arms)))


def plot_arms(
    arms: Sequence[Arm],
    reference: Mapping[str, float],
    path: Path,
    target_f1: float = 0.88,
    reference_test_f1: float | None = None,
) -> None:
    """Write ``path`` (PNG, atomically): each run's test F1 (P01 days 18-20, x) against its agreement
    median over :func:`common_unseen` (y); one colour per arm family, its seeds joined by a line.
    Dashed: version 2's agreement median on the same subphases and (if given) its test F1; dotted:
    the target F1.  Up and right is better; the agreement target itself is per subphase
    (:func:`judge`), which a median cannot show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mars_cloudmask.infer.atomic import atomic_path

    subs = common_unseen(arms)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, (family, runs) in enumerate(families(arms).items()):
        xs = [a.result["test"]["f1"] for a in runs]
        ys = [median_over(_f1s(a), subs) for a in runs]
        colour = f"C{i % 10}"
        ax.plot(xs, ys, "o-", color=colour, label=f"{family} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
        ax.annotate(family, (xs[-1], ys[-1]), textcoords="offset points", xytext=(5, 4), fontsize=8, color=colour)
    ax.axhline(median_over(reference, subs), color="k", ls="--", lw=1, label="version 2: agreement median")
    if reference_test_f1 is not None:
        ax.axvline(
            reference_test_f1, color="k", ls="--", lw=1, alpha=0.5, label=f"version 2: test F1 {reference_test_f1:.3f}"
        )
    ax.axvline(target_f1, color="r", ls=":", lw=1.5, label=f"target test F1 {target_f1}")
    ax.set_xlabel("test F1 against the labels, P01 days 18-20")
    ax.set_ylabel(f"agreement F1 with the original, median of {len(subs)} subphases no arm trained on")
    ax.set_title("Model version 3 arms (width 8): gain on P01 against agreement elsewhere")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def report(eval_paths: Sequence[str | Path], card_path: str | Path) -> str:
    """The four tables for ``eval_paths`` against the card at ``card_path``: per run, per arm over its
    seeds, agreement per subphase, cloud fractions."""
    arms = [Arm.load(p) for p in eval_paths]
    return tables_for(arms, reference_agreement(json.loads(Path(card_path).read_text())))


def tables_for(arms: Sequence[Arm], reference: Mapping[str, float]) -> str:
    """:func:`report`'s four tables for runs already loaded."""
    tables = [summary_table(arms, reference), seed_table(arms, reference), agreement_table(arms, reference)]
    return "\n".join([*tables, fraction_table(arms)])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mars_cloudmask.train_kit.arms RUN/eval.json ... --card models/cloudmask-unet.card.json``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mars_cloudmask.train_kit.arms", description=__doc__)
    parser.add_argument("evals", nargs="+", type=Path, help="eval.json files written by train_kit.evaluate")
    parser.add_argument("--card", type=Path, required=True, help="the reference model's card (JSON)")
    parser.add_argument("--plot", type=Path, help="also write test F1 against agreement as a PNG here")
    args = parser.parse_args(argv)
    missing = [p for p in [*args.evals, args.card] if not p.is_file()]
    if missing:
        parser.error(f"no such file: {missing[0]}")
    arms = [Arm.load(p) for p in args.evals]
    card = json.loads(args.card.read_text())
    reference = reference_agreement(card)
    print(tables_for(arms, reference), end="")
    if args.plot:
        test_f1 = card.get("labels", {}).get("test", {}).get("model", {}).get("f1")
        plot_arms(arms, reference, args.plot, reference_test_f1=test_f1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
