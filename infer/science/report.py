"""A static report page of a run: ``OUT/index.html`` (``cm-report OUT``).

One row per map (quicklook thumbnail when a PNG lies beside the mask, name, Ls, cloud and
valid fractions, status), the failures with their reasons, an inline SVG plot of cloud
fraction against Ls, and the model, its version and the provider.  The page needs no server
and no network: no scripts, thumbnails linked by relative path, the plot drawn inline.

Sources: ``OUT/cm-infer-run.json`` and every ``OUT/cm-infer-runs/*.json`` (a run history),
oldest first; for each map the latest entry that is not "skipped" wins.  Masks found in OUT
that no record names get a row too (status "on disk").  Fractions are read from the masks:
cloud fraction = cloudy / valid pixels at the mask's ``threshold`` attribute (0.912 when
absent), valid fraction = valid / all 1801 x 3600 pixels.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from ..contract import DEFAULT_THRESHOLD
from ..geometry import INVALID, MAP_HEIGHT, MAP_WIDTH

RUN_RECORD = "cm-infer-run.json"
RUN_HISTORY = "cm-infer-runs"
REPORT_NAME = "index.html"


@dataclass
class MapRow:
    """One map of the report."""

    name: str
    status: str
    ls: float | None = None
    mars_year: int | None = None
    cloud_fraction: float | None = None
    """Cloudy share of the valid pixels (None: no readable mask or no valid pixel)."""
    valid_fraction: float | None = None
    """Valid share of all pixels of the map."""
    mask: str | None = None
    """Mask path relative to OUT."""
    thumbnail: str | None = None
    """Quicklook PNG path relative to OUT."""
    reason: str | None = None


@dataclass
class ReportData:
    """Everything the page shows."""

    out: Path
    rows: list[MapRow] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(source, reason) of the failed maps and inputs."""
    models: list[dict[str, str]] = field(default_factory=list)
    """Distinct (model name, version, sha256, provider) over the runs."""
    runs: list[dict[str, Any]] = field(default_factory=list)
    """started, finished, counts of each run record read."""
    problems: list[str] = field(default_factory=list)
    """Records that could not be read."""


def read_run_records(out: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The run records in OUT, oldest first, duplicates (the same run in both places) once;
    and one line per record that cannot be read."""
    paths = [out / RUN_RECORD] if (out / RUN_RECORD).is_file() else []
    history = out / RUN_HISTORY
    if history.is_dir():
        paths += sorted(history.glob("*.json"))
    records, problems, seen = [], [], set()
    for path in paths:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: unreadable run record ({' '.join(str(exc).split())})")
            continue
        key = (record.get("started"), record.get("finished"), json.dumps(record.get("command")))
        if key in seen:
            continue
        seen.add(key)
        records.append(record)
    records.sort(key=lambda r: (str(r.get("finished") or ""), str(r.get("started") or "")))
    return records, problems


def _resolve(out: Path, path: str | None) -> Path | None:
    if not path:
        return None
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return out / p


def _relative(out: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(out.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_uri()


SCHEME_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
"""A path segment a browser would read as a URL scheme (``javascript:``, ``data:``, ``C:``)."""


def _raw_bytes(text: str) -> bytes:
    """The bytes a name stands for: a file name's own bytes (undecodable ones kept by Python as
    lone surrogates), else UTF-8 with any other lone surrogate replaced."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def link(relative: str) -> str:
    """An ``href`` / ``src`` value for a POSIX path relative to OUT, safe in an HTML attribute:
    every segment percent-encoded from its bytes (``:``, ``#``, ``?``, ``%``, quotes, spaces,
    non-ASCII), and ``./`` before a first segment that looks like a URL scheme, so the browser
    can only read it as a relative path."""
    segments = relative.split("/")
    encoded = "/".join(quote(_raw_bytes(s), safe="") for s in segments)
    if SCHEME_LIKE.match(segments[0]) or relative.startswith("/"):
        encoded = "./" + encoded.lstrip("/")
    return html.escape(encoded, quote=True)


def mask_fractions(path: Path) -> tuple[float | None, float | None, float | None, int | None, str | None]:
    """``(cloud fraction, valid fraction, ls, mars_year, problem)`` of one mask file."""
    from ..netcdf import check_mask_file, read_attrs, read_mask, read_time_coords

    try:  # one read of a good mask; check_mask_file only says why a bad one fails
        attrs = read_attrs(path)
        values = read_mask(path)
    except Exception:  # noqa: BLE001 - any failure to read makes the mask bad
        values = None
    if values is None or values.shape != (MAP_HEIGHT, MAP_WIDTH):
        return None, None, None, None, check_mask_file(path) or f"{path}: unreadable mask"
    try:
        thr = float(attrs.get("threshold", DEFAULT_THRESHOLD))
    except (TypeError, ValueError):
        thr = DEFAULT_THRESHOLD
    valid = values > INVALID + 0.5
    n_valid = int(np.count_nonzero(valid))
    cloud = float(np.count_nonzero(valid & (values >= thr)) / n_valid) if n_valid else None
    when = read_time_coords(path)
    return cloud, n_valid / values.size, when.ls, when.mars_year, None


def collect_report(out: str | Path) -> ReportData:
    """Read the run records and the masks of OUT into a :class:`ReportData`."""
    from ..netcdf import find_mask_files, map_name_of

    out = Path(out)
    records, problems = read_run_records(out)
    data = ReportData(out, problems=problems)
    latest: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    for record in records:
        counts = record.get("counts") or {}
        data.runs.append(
            {
                "started": record.get("started"),
                "finished": record.get("finished"),
                "counts": counts,
                "interrupted": record.get("interrupted"),
            }
        )
        model = record.get("model") or {}
        provider = str(record.get("provider") or model.get("provider") or "?")
        session = model.get("session_providers")
        if isinstance(session, list) and session:
            provider += f" ({', '.join(map(str, session))})"
        desc = {
            "name": str(model.get("name", "?")),
            "version": str(model.get("version", "?")),
            "sha256": str(model.get("sha256", ""))[:12],
            "provider": provider,
        }
        if desc not in data.models:
            data.models.append(desc)
        for m in record.get("maps") or []:
            if not isinstance(m, dict) or "name" not in m:
                continue
            if m.get("status") != "skipped" or m["name"] not in latest:
                latest[m["name"]] = m
        for f in record.get("failures") or []:
            if isinstance(f, dict):
                failures[str(f.get("source") or "(input)")] = str(f.get("reason") or "")
    # a later success clears an earlier failure of the same map
    for m in latest.values():
        if m.get("status") != "failed":
            failures.pop(str(m.get("source")), None)
    data.failures = sorted(failures.items())
    listed: set[Path] = set()
    for name, m in sorted(latest.items()):
        row = MapRow(name, str(m.get("status", "?")), m.get("ls"), m.get("mars_year"), reason=m.get("reason"))
        mask = _resolve(out, m.get("output"))
        if mask is not None and row.status != "failed":
            listed.add(mask.resolve())
            _fill_from_mask(out, row, mask)
        data.rows.append(row)
    try:
        on_disk = find_mask_files(out)
    except FileNotFoundError:
        on_disk = []
    for mask in on_disk:
        if mask.resolve() in listed:
            continue
        row = MapRow(map_name_of(mask), "on disk")
        _fill_from_mask(out, row, mask)
        data.rows.append(row)
    data.rows.sort(
        key=lambda r: (r.mars_year if r.mars_year is not None else 9999, r.ls if r.ls is not None else 999.0, r.name)
    )
    return data


def _fill_from_mask(out: Path, row: MapRow, mask: Path) -> None:
    if not mask.exists():
        if row.status in ("done", "skipped"):
            row.status, row.reason = "missing", f"{mask}: mask not found"
        return
    row.mask = _relative(out, mask)
    cloud, valid, ls, year, problem = mask_fractions(mask)
    if problem is not None:
        row.status, row.reason = "bad mask", problem
        return
    row.cloud_fraction, row.valid_fraction = cloud, valid
    row.ls = row.ls if row.ls is not None else ls
    row.mars_year = row.mars_year if row.mars_year is not None else year
    png = mask.with_suffix(".png")
    if png.is_file():
        row.thumbnail = _relative(out, png)


# --------------------------------------------------------------------------- rendering (pure)
NICE_TOPS = (0.02, 0.04, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)
"""Candidate tops of the plot's fraction axis (four tick intervals each)."""
YEAR_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def svg_plot(points: list[tuple[float, float, int | None]], width: int = 720, height: int = 300) -> str:
    """Inline SVG scatter of cloud fraction (y, from 0 to the first of :data:`NICE_TOPS` above the largest) against Ls
    (x, 0..360 deg), one colour per Mars year; ``points`` are ``(ls, cloud fraction, year)``."""
    left, right, top, bottom = 56, 110, 16, 44
    pw, ph = width - left - right, height - top - bottom
    top_value = max([0.0] + [p[1] for p in points])
    ymax = next(v for v in NICE_TOPS if v >= top_value - 1e-12)

    def x(ls: float) -> float:
        return left + pw * (ls % 360.0) / 360.0

    def y(f: float) -> float:
        return top + ph * (1 - f / ymax)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="cloud fraction against Ls" class="plot">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#888"/>',
    ]
    for tick in range(0, 361, 60):
        parts.append(
            f'<line x1="{x(tick) if tick < 360 else left + pw:.1f}" y1="{top + ph}" '
            f'x2="{x(tick) if tick < 360 else left + pw:.1f}" y2="{top + ph + 5}" stroke="#444"/>'
        )
        parts.append(
            f'<text x="{x(tick) if tick < 360 else left + pw:.1f}" y="{top + ph + 18}" '
            f'text-anchor="middle" font-size="12">{tick}</text>'
        )
    for k in range(5):
        f = ymax * k / 4
        parts.append(f'<line x1="{left - 5}" y1="{y(f):.1f}" x2="{left}" y2="{y(f):.1f}" stroke="#444"/>')
        parts.append(f'<text x="{left - 8}" y="{y(f) + 4:.1f}" text-anchor="end" font-size="12">{f:.2f}</text>')
    parts.append(
        f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" font-size="13">'
        "solar longitude Ls (deg)</text>"
    )
    parts.append(
        f'<text transform="translate(14,{top + ph / 2}) rotate(-90)" text-anchor="middle" '
        'font-size="13">cloud fraction</text>'
    )
    years = sorted({p[2] for p in points}, key=lambda v: (v is None, v))
    for i, year in enumerate(years):
        colour = YEAR_COLOURS[i % len(YEAR_COLOURS)]
        for ls, frac, yr in points:
            if yr == year:
                parts.append(
                    f'<circle cx="{x(ls):.1f}" cy="{y(frac):.1f}" r="3.5" fill="{colour}">'
                    f"<title>Ls {ls:.1f}: {frac:.3f}</title></circle>"
                )
        ly = top + 14 + 18 * i
        parts.append(f'<circle cx="{left + pw + 16}" cy="{ly - 4}" r="4" fill="{colour}"/>')
        parts.append(
            f'<text x="{left + pw + 26}" y="{ly}" font-size="12">MY {year if year is not None else "?"}</text>'
        )
    if not points:
        parts.append(
            f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" fill="#888">'
            "no map with a cloud fraction</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "&ndash;" if value is None else f"{value:.{digits}f}"


CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.4em; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #eee; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td, tr.bad td, tr.missing td { background: #fde8e8; }
img.thumb { width: 200px; height: auto; display: block; }
.summary span { margin-right: 1.5em; }
"""


def render_html(data: ReportData) -> str:
    """The report page as one self-contained HTML string (no scripts, no external resources)."""
    e = html.escape
    rows = data.rows
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    points = [(r.ls, r.cloud_fraction, r.mars_year) for r in rows if r.ls is not None and r.cloud_fraction is not None]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>cloudmask run report: {e(str(data.out))}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Water-ice cloud masks: {e(data.out.name or str(data.out))}</h1>",
        '<p class="summary">'
        + "".join(f"<span>{e(k)}: <b>{v}</b></span>" for k, v in sorted(counts.items()))
        + f"<span>failures: <b>{len(data.failures)}</b></span></p>",
        "<h2>Model</h2>",
        "<table><tr><th>model</th><th>version</th><th>sha256</th><th>provider</th></tr>",
    ]
    for m in data.models or [{"name": "(no run record)", "version": "", "sha256": "", "provider": ""}]:
        out.append(
            f"<tr><td>{e(m['name'])}</td><td>{e(m['version'])}</td><td><code>{e(m['sha256'])}</code></td>"
            f"<td>{e(m['provider'])}</td></tr>"
        )
    out.append("</table>")
    if data.runs:
        out.append(
            "<p>"
            + "<br>".join(
                f"run {e(str(r['started']))} &ndash; {e(str(r['finished']))}: "
                + ", ".join(f"{e(str(k))} {e(str(v))}" for k, v in (r["counts"] or {}).items())
                + (" (interrupted)" if r.get("interrupted") else "")
                for r in data.runs
            )
            + "</p>"
        )
    out += ["<h2>Cloud fraction against Ls</h2>", svg_plot(points)]
    out.append(f"<h2>Failures ({len(data.failures)})</h2>")
    if data.failures or data.problems:
        out.append('<table class="failures"><tr><th>source</th><th>reason</th></tr>')
        out += [f"<tr><td>{e(s)}</td><td>{e(r)}</td></tr>" for s, r in data.failures]
        out += [f"<tr><td>(run record)</td><td>{e(p)}</td></tr>" for p in data.problems]
        out.append("</table>")
    else:
        out.append("<p>none</p>")
    out.append(f"<h2>Maps ({len(rows)})</h2>")
    out.append(
        '<table class="maps"><tr><th>quicklook</th><th>map</th><th>MY</th><th>Ls (deg)</th>'
        "<th>cloud fraction</th><th>valid fraction</th><th>status</th></tr>"
    )
    for r in rows:
        cls = {"failed": "failed", "bad mask": "bad", "missing": "missing"}.get(r.status, "")
        thumb = (
            f'<a href="{link(r.thumbnail)}" title="the full quicklook">'
            f'<img class="thumb" src="{link(r.thumbnail)}" alt="quicklook of {e(r.name)}"></a>'
            if r.thumbnail
            else ""
        )
        name = f'<a href="{link(r.mask)}">{e(r.name)}</a>' if r.mask else e(r.name)
        status = e(r.status) + (f"<br><small>{e(r.reason)}</small>" if r.reason else "")
        out.append(
            f'<tr class="{cls}"><td>{thumb}</td><td>{name}</td>'
            f'<td class="num">{"" if r.mars_year is None else r.mars_year}</td>'
            f'<td class="num">{_fmt(r.ls, 1)}</td><td class="num">{_fmt(r.cloud_fraction)}</td>'
            f'<td class="num">{_fmt(r.valid_fraction)}</td><td>{status}</td></tr>'
        )
    out += ["</table>", "</body></html>", ""]
    return "\n".join(out)


def write_report(out: str | Path) -> Path:
    """Write ``OUT/index.html`` (atomically) and return its path.

    Raises:
        FileNotFoundError: OUT is not a folder.
    """
    from ..atomic import atomic_path

    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: no such folder")
    page = render_html(collect_report(out)).encode("utf-8")
    path = out / REPORT_NAME
    with atomic_path(path) as tmp:
        tmp.write_bytes(page)
    return path
