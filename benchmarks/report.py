"""Benchmark results as files: ``<machine>-<date>[-label].json``, a markdown table and a PNG chart.

The markdown is what the README quotes; the JSON keeps every figure (per-repeat walls, stage
times, load averages, the hardware fingerprint and the providers that really ran).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .measure import STAGES

GB = 1e9


def _f(v: Any, fmt: str = ".2f", none: str = "n/a") -> str:
    return none if v is None else format(v, fmt)


def results_stem(doc: dict[str, Any], label: str | None = None) -> str:
    """``<machine>-<UTC date and minute>[-<label>]``."""
    stem = f"{doc['machine']['machine']}-{doc['started_utc']}"
    return f"{stem}-{label}" if label else stem


def header_lines(doc: dict[str, Any]) -> list[str]:
    """Machine, software, provider, load and what was run."""
    m, cfg = doc["machine"], doc["config"]
    v = m["versions"]
    lines = [
        f"- machine `{m['machine']}`: {m['cpu'].get('model')} ({', '.join(m['cpu'].get('flags', []))}), "
        f"{m['cores']} cores ({m['usable_cores']} usable), {_f((m['memory_bytes'] or 0) / GB, '.1f')} GB RAM",
        f"- onnxruntime {v.get('onnxruntime') or v.get('onnxruntime-gpu')}, tensorflow {v.get('tensorflow')}, "
        f"keras {v.get('keras')}, numpy {v.get('numpy')}, numba {v.get('numba')}, python {v.get('python')}",
        f"- provider asked `{cfg['provider']}`, sessions really ran on "
        f"{', '.join(doc['provider_check']['session_providers'])}",
        f"- load average (1/5/15 min) at start {doc.get('loadavg_start')}, at end {doc.get('loadavg_end')}"
        " (other jobs share this machine: figures are noisy)",
        f"- models: ONNX `{cfg['onnx']}`, Keras `{cfg.get('keras')}`; {len(doc.get('maps', []))} map(s) x "
        f"{cfg['repeats']} repeat(s); started {doc['started_utc']}, {doc.get('wall_s')} s in all",
        f"- command: `{' '.join(Path(doc['command'][0]).name if i == 0 else a for i, a in enumerate(doc['command']))}`",
    ]
    return lines


def main_table(variants: dict[str, dict[str, Any]]) -> list[str]:
    """One row per variant of the main suite."""
    head = (
        "| variant | s/map | maps/s | x (1) maps/s | x (4) time | peak RSS GB | "
        + " | ".join(STAGES)
        + " | staged s/map | limit (same process) s/map | tiles/map | ran on |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in variants.items():
        if not r.get("ok"):
            rows.append(f"| {name} | FAILED: {r.get('error', '')[:120]} |" + " |" * (head.count("|") - 3))
            continue
        stages = r.get("staged", {}).get("stages_s_per_map", {})
        stage_cells = " | ".join(_f(stages.get(s)) if stages else "-" for s in STAGES)
        rows.append(
            f"| {name} | {_f(r['s_per_map'])} | {_f(r['maps_per_s'], '.3f')} | {_f(r.get('x_baseline'), '.1f')} | "
            f"{_f(r.get('x_limit'))} | {_f(r['peak_rss_bytes'] / GB)} | {stage_cells} | "
            f"{_f(r.get('staged', {}).get('s_per_map'))} | "
            f"{_f(r['limit']['s_per_map']) if 'limit' in r and r['spec']['kind'] != 'limit' else '-'} | "
            f"{_f(r.get('tiles_per_map'), '.0f')} | "
            f"{r.get('provider')}{' ' + r['precision'] if r.get('precision') else ''} |"
        )
    return rows


def targets_table(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| target | measured | pass |", "|---|---|---|"]
    for t in rows:
        verdict = {True: "yes", False: "**no**", None: "not measured"}[t["passed"]]
        out.append(f"| {t['target']} | {_f(t['value'])} | {verdict} |")
    return out


def simple_table(variants: dict[str, dict[str, Any]]) -> list[str]:
    """Scaling / threads / precision rows: maps, s/map (pipeline and staged), maps/s, RSS."""
    out = [
        "| variant | maps | pipeline s/map | staged s/map | maps/s | peak RSS GB | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in variants.items():
        if not r.get("ok"):
            out.append(f"| {name} | FAILED: {r.get('error', '')[:120]} | | | | | |")
            continue
        pipe, staged, lim = r.get("pipeline", {}), r.get("staged", {}), r.get("limit", {})
        out.append(
            f"| {name} | {r['n_maps']} | {_f(pipe.get('s_per_map'))} | "
            f"{_f(staged.get('s_per_map') or lim.get('s_per_map'))}"
            f"{' (model alone)' if lim else ''} | {_f(r['maps_per_s'], '.3f')} | {_f(r['peak_rss_bytes'] / GB)} | "
            f"{r['spec'].get('note', '')} |"
        )
    return out


def precision_lines(name: str, suite: dict[str, Any]) -> list[str]:
    lines = [
        f"### {name}",
        "",
        f"Maps: {', '.join(Path(m).name for m in suite['maps'])}; threshold "
        f"{suite['threshold']}; trained model: {suite['trained_model']}.",
        "",
    ]
    lines += simple_table(suite["variants"])
    c = suite.get("comparison")
    if c:
        lines += [
            "",
            f"- F1 of {name} masks against the fp32 model's own masks: {_f(c['f1_vs_fp32'], '.4f')} "
            f"({c['fp32_cloud_pixels']} fp32 cloud pixels); "
            f"max |probability difference| {_f(c['max_abs_diff'], '.2e')}; "
            f"pixels changing class {_f(c['class_flips'], '.2e')}",
        ]
        if "probe_threshold" in c:
            lines.append(
                f"- no fp32 cloud pixel at the threshold (untrained model): at the fp32 95th-percentile "
                f"probability {_f(c['probe_threshold'], '.4f')} the F1 against fp32 is "
                f"{_f(c['f1_vs_fp32_at_probe'], '.4f')}"
            )
        if "f1_labels_fp32" in c:
            lines.append(
                f"- F1 against labels ({', '.join(c['label_days'])}): fp32 {_f(c['f1_labels_fp32'], '.4f')}, "
                f"{name} {_f(c['f1_labels_variant'], '.4f')}, drop {_f(c['f1_drop'], '.4f')}"
            )
    v = suite.get("verdict")
    if v:
        lines.append(
            f"- verdict: offer in cm-infer: **{'yes' if v['offer_in_cm_infer'] else 'no'}** "
            f"(F1 drop {_f(v['f1_drop'], '.4f')} by {v['basis']}; end-to-end speed-up over fp32 "
            f"{_f(v['speedup'])}x; rule: {v['rule']})"
        )
    return lines + [""]


def profile_lines(profiles: dict[str, dict[str, Any]], top: int = 6) -> list[str]:
    """Milliseconds per 668 px tile by operator type, one column per thread count."""
    threads = list(profiles)
    ops = list(next(iter(profiles.values()))["ops_ms_per_tile"])[:top]
    lines = [
        "## Profile: onnxruntime's own profiler, ms per 668 px tile",
        "",
        "| op | " + " | ".join(f"{t} thread(s)" for t in threads) + " |",
        "|---|" + "---|" * len(threads),
    ]
    for op in ops:
        lines.append(
            f"| {op} | " + " | ".join(_f(profiles[t]["ops_ms_per_tile"].get(op), ".1f") for t in threads) + " |"
        )
    lines.append("| all kernels | " + " | ".join(_f(profiles[t]["kernel_ms_per_tile"], ".1f") for t in threads) + " |")
    lines.append("| wall per tile | " + " | ".join(_f(profiles[t]["tile_s"] * 1000, ".1f") for t in threads) + " |")
    return lines + [""]


def startup_lines(suite: dict[str, Any]) -> list[str]:
    """Seconds from the cm-infer command to the first map written, per variant."""
    v = suite["version"]
    lines = [
        "## Start-up: `cm-infer` on one map, command to first map written",
        "",
        f"Map `{Path(suite['map']).name}`. `cm-infer --version`: {_f(v['median_s'])} s; heavy modules on "
        f"importing the CLI: {', '.join(v['heavy_modules_on_import']) or 'none'}.",
        "",
        "| variant | first map s (median) | exit s (median) | cold (empty Numba cache) first map s |",
        "|---|---|---|---|",
    ]
    for name, r in suite["variants"].items():
        cold = r.get("cold", {})
        lines.append(
            f"| {name} | {_f(r.get('first_map_s'))} | {_f(r.get('exit_s'))} | {_f(cold.get('first_map_s'))} |"
            + ("" if r.get("ok") else f" FAILED: {r.get('error')}")
        )
    return lines + [""]


def endtoend_lines(suite: dict[str, Any]) -> list[str]:
    """Whole cm-infer runs on the same maps, start-up included: maps/s, ratio, peak RSS."""
    lines = [
        f"## End to end: `cm-infer` on {len(suite['maps'])} maps, start-up included "
        f"(median of {suite['repeats']}, interleaved)",
        "",
        "| variant | wall s | maps/s | x first row | first map s | peak RSS GB |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in suite["variants"].items():
        if not r.get("ok"):
            lines.append(f"| {name} | FAILED: {r.get('error')} | | | | |")
            continue
        lines.append(
            f"| {name} | {_f(r['wall_s'])} | {_f(r['maps_per_s'], '.3f')} | {_f(r['x_first'])} | "
            f"{_f(r['first_map_s'])} | {_f(r['peak_rss_bytes'] / GB)} |"
        )
    return lines + [""]


def tilesize_lines(suite: dict[str, Any]) -> list[str]:
    """Seconds per tile by size and backend, and the seamless plan estimates."""
    sizes = [str(t) for t in suite["tile_outs"]]
    lines = [
        "## Tile size: the model alone on one seamless tile (output px), s per tile",
        "",
        "| backend | " + " | ".join(sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    ok = {n: b for n, b in suite["backends"].items() if b.get("ok")}
    for name, b in suite["backends"].items():
        lines.append(
            f"| {name} | "
            + (
                " | ".join(_f(b["s_per_tile"].get(t), ".3f") for t in sizes)
                if b.get("ok")
                else f"FAILED: {b.get('error')}"
            )
            + " |"
        )
    lines += [
        "",
        "Estimated seconds per map of a seamless plan (n_tiles x s/tile) for a 3600 px wide box:",
        "",
        "| backend | box rows | seamless_tile_out picks | its s | fastest timed | its s |",
        "|---|---|---|---|---|---|",
    ]
    for name, b in ok.items():
        for h, p in b["plans"].items():
            lines.append(
                f"| {name} | {h} | {p['seamless_tile_out']} | {_f(p['chosen_s'])} | {p['fastest_timed']} | "
                f"{_f(p['fastest_s'])} |"
            )
    return lines + [""]


def markdown(doc: dict[str, Any]) -> str:
    """The whole report as markdown."""
    lines = ["# cm-bench results", ""] + header_lines(doc) + [""]
    suites = doc["suites"]
    if "main" in suites:
        lines += [
            "## Main: the same maps through every variant",
            "",
            "s/map: median over repeats of wall / maps (pipeline variants: cm-infer's overlapped pipeline; "
            "Keras and whole-map variants: sequential). x (1): maps/s relative to the baseline keras-original. "
            "x (4): time relative to onnxruntime alone on the same tiles (for ort-center/blend/seamless timed in the "
            "same process, interleaved with the variant's passes, so under the same load; else the limit-* row). "
            "limit (same process): that model-alone time, s/map. Stage columns: seconds per map in "
            "the sequential (staged) pass.",
            "",
        ]
        lines += (
            main_table(suites["main"]["variants"])
            + ["", "### Targets", ""]
            + targets_table(suites["main"]["targets"])
            + [""]
        )
    if "scaling" in suites:
        lines += ["## Scaling (default mode, one pass)", ""] + simple_table(suites["scaling"]["variants"]) + [""]
    if "threads" in suites:
        lines += ["## Threads (default mode; pipeline = decode/write overlapped, staged = not)", ""]
        lines += simple_table(suites["threads"]["variants"]) + [""]
    for name in ("fp16", "int8"):
        if name in suites:
            lines += precision_lines(name, suites[name])
    if "profile" in suites:
        lines += profile_lines(suites["profile"])
    if "precision" in suites:
        from .precision import markdown as precision_markdown

        lines += [
            "## Precision: accuracy of OpenVINO fp32 / bf16 against onnxruntime fp32",
            "",
            precision_markdown(suites["precision"]),
            "",
        ]
    if "startup" in suites:
        lines += startup_lines(suites["startup"])
    if "endtoend" in suites:
        lines += endtoend_lines(suites["endtoend"])
    if "tilesize" in suites:
        lines += tilesize_lines(suites["tilesize"])
    if doc.get("errors"):
        lines += ["## Errors", ""] + [f"- {e}" for e in doc["errors"]] + [""]
    return "\n".join(lines)


def chart(doc: dict[str, Any], path: Path) -> Path | None:
    """PNG: maps/s, stage time and peak RSS of the main suite, and the scaling suite."""
    suites = doc["suites"]
    main = {k: v for k, v in suites.get("main", {}).get("variants", {}).items() if v.get("ok")}
    scaling = {k: v for k, v in suites.get("scaling", {}).get("variants", {}).items() if v.get("ok")}
    if not main and not scaling:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mars_cloudmask.infer.atomic import atomic_path

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    names = list(main)
    colours = ["#b03030" if n.startswith("keras") else "#808080" if n.startswith("limit") else "#2a70b8" for n in names]
    ax = axes[0, 0]
    ax.barh(names, [main[n]["maps_per_s"] for n in names], color=colours)
    ax.set_xlabel("maps per second (higher is better)")
    ax.set_title("Throughput, same maps")
    ax.invert_yaxis()
    ax = axes[0, 1]
    left = [0.0] * len(names)
    for stage, colour in zip(STAGES, ["#8c6d31", "#bd9e39", "#2a70b8", "#d62728", "#7b4173"], strict=True):
        vals = [
            main[n].get("staged", {}).get("stages_s_per_map", {}).get(stage, 0.0)
            or (main[n]["s_per_map"] if stage == "infer" and main[n]["spec"]["kind"] == "limit" else 0.0)
            for n in names
        ]
        ax.barh(names, vals, left=left, color=colour, label=stage)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_xlabel("seconds per map, sequential pass (limit: the model alone)")
    ax.set_title("Where the time goes")
    ax.legend(fontsize=8)
    ax.invert_yaxis()
    ax = axes[1, 0]
    ax.barh(names, [main[n]["peak_rss_bytes"] / GB for n in names], color=colours)
    ax.axvline(1.5, color="k", ls="--", lw=1)
    ax.text(1.5, len(names) - 0.5, " 1.5 GB target", fontsize=8, va="bottom")
    ax.set_xlabel("peak RSS of the variant's process, GB")
    ax.set_title("Memory")
    ax.invert_yaxis()
    ax = axes[1, 1]
    if scaling:
        n_maps = [scaling[k]["n_maps"] for k in scaling]
        ax.plot(n_maps, [scaling[k]["maps_per_s"] for k in scaling], "o-", color="#2a70b8", label="maps/s")
        ax.set_xlabel("maps in the run")
        ax.set_ylabel("maps per second", color="#2a70b8")
        ax.set_ylim(bottom=0)
        ax2 = ax.twinx()
        ax2.plot(n_maps, [scaling[k]["peak_rss_bytes"] / GB for k in scaling], "s--", color="#d62728")
        ax2.set_ylabel("peak RSS, GB", color="#d62728")
        ax2.set_ylim(bottom=0)
        ax.set_title("Scaling (default mode)")
    else:
        ax.axis("off")
    load = doc.get("loadavg_start")
    fig.suptitle(
        f"cm-bench {doc['machine']['machine']} {doc['started_utc']} - load average at start {load}", fontsize=10
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path


def write_results(doc: dict[str, Any], out_dir: str | Path, label: str | None = None) -> dict[str, Path]:
    """Write the JSON, markdown and PNG; returns their paths (``png`` absent if nothing to draw)."""
    from mars_cloudmask.infer.atomic import write_text_atomic

    out_dir = Path(out_dir)
    stem = results_stem(doc, label)
    paths = {
        "json": write_text_atomic(out_dir / f"{stem}.json", json.dumps(doc, indent=1, default=str)),
        "markdown": write_text_atomic(out_dir / f"{stem}.md", markdown(doc)),
    }
    png = chart(doc, out_dir / f"{stem}.png")
    if png is not None:
        paths["png"] = png
    return paths


def rerender(json_path: str | Path) -> dict[str, Path]:
    """Rewrite the markdown and PNG beside a results JSON (after a change to this module)."""
    from mars_cloudmask.infer.atomic import write_text_atomic

    json_path = Path(json_path)
    doc = json.loads(json_path.read_text())
    paths = {"markdown": write_text_atomic(json_path.with_suffix(".md"), markdown(doc))}
    png = chart(doc, json_path.with_suffix(".png"))
    if png is not None:
        paths["png"] = png
    return paths


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        print(rerender(arg))
