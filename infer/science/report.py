"""A static report page of a run: ``OUT/index.html`` (``cm-report OUT``).

One row per map (quicklook thumbnail linked to the full quicklook when a PNG lies beside the
mask, name, Ls, cloud and valid fractions, status), the failures with their reasons, an inline
SVG plot of cloud fraction against Ls (axis fitted to the maps, :func:`ls_axis`), the threshold
the fractions use, and the model, its version, provider and precision.  The page needs no
server and no network: no scripts, thumbnails linked by relative path, the plot drawn inline.

Sources: ``OUT/cm-infer-run.json`` and every ``OUT/cm-infer-runs/*.json`` (a run history),
oldest first; for each map the latest entry that is not "skipped" wins.  Masks found in OUT
that no record names get a row too (status "on disk").  Fractions are read from the masks:
cloud fraction = cloudy / valid pixels at the mask's ``threshold`` attribute (0.912 when
absent), valid fraction = valid / all 1801 x 3600 pixels.

The OUT may come from elsewhere, so nothing read is trusted: every record value is
type-checked (:func:`parse_run_record`; a wrong one is left out with one line naming the
record) and HTML-escaped; every link is a path relative to OUT, percent-encoded from the name's
bytes and never read as a URL scheme (:func:`link`); a record's mask paths are taken relative
to the run's own OUT, so a moved or copied OUT is read where it is now (:func:`relative_output`).
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Callable, Iterable, Iterator
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
    threshold: float | None = None
    """The mask's threshold attribute the cloud fraction used (None: none, the default used)."""


@dataclass
class ReportData:
    """Everything the page shows."""

    out: Path
    rows: list[MapRow] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(source, reason) of the failed maps and inputs."""
    models: list[dict[str, str]] = field(default_factory=list)
    """Distinct (model name, version, sha256, provider, precision) over the runs."""
    runs: list[dict[str, Any]] = field(default_factory=list)
    """started, finished, counts of each run record read."""
    problems: list[str] = field(default_factory=list)
    """One line per record, or value in a record, that could not be used."""


RECORD_LIMIT = 256 * 2**20
"""Largest run record read (bytes): a record of 100,000 maps is about 60 MB."""


def printable(text: str) -> str:
    """``text`` on one line: control characters (newlines, escapes) shown as Python escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def readable(text: str) -> str:
    """``text`` as it can be shown: bytes of a file name that are not UTF-8 as U+FFFD."""
    return _raw_bytes(text).decode("utf-8", "replace")


def _shown(value: Any, limit: int = 60) -> str:
    """A record value in a problem line: its repr on one line, cut to ``limit`` characters."""
    text = printable(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class MapEntry:
    """One map of a run record, its values type-checked (None: absent or refused)."""

    name: str
    status: str
    source: str | None = None
    output: str | None = None
    ls: float | None = None
    """Solar longitude (deg)."""
    mars_year: int | None = None
    reason: str | None = None
    from_existing: str | None = None
    """What a rerun made from the existing mask without predicting (``quicklook``, ``map
    copies``), None when the map was predicted (or not done)."""


@dataclass
class RunEntry:
    """One run record, its values type-checked."""

    path: Path
    started: str | None = None
    finished: str | None = None
    interrupted: str | None = None
    out: str | None = None
    """The run's OUT as the run saw it (absolute)."""
    counts: dict[str, int] = field(default_factory=dict)
    model: dict[str, str] = field(default_factory=dict)
    """name, version, sha256 (first 12 hex digits), provider, precision."""
    maps: list[MapEntry] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(source, reason); the source is ``(input)`` for a failure of no single map."""


class _Checker:
    """Type checks of one record's values; each refusal is one line naming the record."""

    def __init__(self, path: Path):
        self.path = path
        self.problems: list[str] = []

    def refuse(self, where: str, value: Any, wanted: str) -> None:
        self.problems.append(f"{self.path}: {where} {_shown(value)} is not {wanted} (ignored)")

    def text(self, value: Any, where: str) -> str | None:
        """A string, or None (absent, or refused when of another type)."""
        if value is None or isinstance(value, str):
            return value
        self.refuse(where, value, "text")
        return None

    def number(self, value: Any, where: str) -> float | None:
        """A finite real number (not a boolean), or None."""
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        self.refuse(where, value, "a number")
        return None

    def whole(self, value: Any, where: str) -> int | None:
        """A whole number (not a boolean), or None."""
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        self.refuse(where, value, "a whole number")
        return None


def _map_entry(check: _Checker, k: int, raw: Any) -> MapEntry | None:
    """One ``maps`` item of a record, or None when it has no usable name."""
    if not isinstance(raw, dict):
        check.refuse(f"maps[{k}]", raw, "an object")
        return None
    name = check.text(raw.get("name"), f"maps[{k}] name")
    if not name:
        return None
    where = f"map {printable(name)}:"
    status = check.text(raw.get("status"), f"{where} status") or "?"
    return MapEntry(
        name=name,
        status=status,
        source=check.text(raw.get("source"), f"{where} source"),
        output=check.text(raw.get("output"), f"{where} output"),
        ls=check.number(raw.get("ls"), f"{where} ls"),
        mars_year=check.whole(raw.get("mars_year"), f"{where} mars_year"),
        reason=check.text(raw.get("reason"), f"{where} reason"),
        from_existing=_made_from_existing(raw) if status == "done" else None,
    )


FROM_EXISTING = " made from the existing mask"
"""How cm-infer's note names what a rerun made from an existing mask (``engine.triage``)."""


def _made_from_existing(raw: dict[str, Any]) -> str | None:
    """What a done map's entry made from its existing mask (its timings hold ``extras_s``, the
    extras-only step, and no prediction), None when it was predicted."""
    timings = raw.get("timings")
    if not isinstance(timings, dict) or "extras_s" not in timings:
        return None
    notes = raw.get("notes")
    for note in notes if isinstance(notes, list) else []:
        if isinstance(note, str) and note.endswith(FROM_EXISTING):
            return note[: -len(FROM_EXISTING)]
    return "extras"


def _model_of(check: _Checker, raw: dict[str, Any]) -> dict[str, str]:
    """The model description of a record: name, version, sha256 (12 digits), provider, precision."""
    model = raw.get("model")
    if not isinstance(model, dict):
        if model is not None:
            check.refuse("model", model, "an object")
        model = {}
    provider = check.text(raw.get("provider"), "provider") or check.text(model.get("provider"), "model provider")
    provider = provider or "?"
    session = model.get("session_providers")
    if isinstance(session, list) and session:
        names = [check.text(p, "model session_providers") for p in session]
        provider += f" ({', '.join(n for n in names if n)})"
    precision = check.text(raw.get("precision"), "precision") or check.text(model.get("precision"), "model precision")
    return {
        "name": check.text(model.get("name"), "model name") or "?",
        "version": check.text(model.get("version"), "model version") or "?",
        "sha256": (check.text(model.get("sha256"), "model sha256") or "")[:12],
        "provider": provider,
        "precision": precision or "?",
    }


def _counts_of(check: _Checker, raw: Any) -> dict[str, int]:
    """The ``counts`` of a record: status -> whole number, other entries refused in one line."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        check.refuse("counts", raw, "an object")
        return {}
    good = {k: v for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)}
    bad = {k: v for k, v in raw.items() if k not in good}
    if bad:
        check.refuse("counts", bad, "status: whole number")
    return good


def _failures_of(check: _Checker, raw: Any) -> list[tuple[str, str]]:
    """The ``failures`` of a record as (source, reason)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        check.refuse("failures", raw, "a list")
        return []
    failures = []
    for k, f in enumerate(raw):
        if not isinstance(f, dict):
            check.refuse(f"failures[{k}]", f, "an object")
            continue
        source = check.text(f.get("source"), f"failures[{k}] source") or "(input)"
        failures.append((source, check.text(f.get("reason"), f"failures[{k}] reason") or ""))
    return failures


def parse_run_record(path: Path, raw: dict[str, Any]) -> tuple[RunEntry, list[str]]:
    """A run record (parsed JSON) as a :class:`RunEntry`; a value of the wrong type is left out
    with one line naming ``path``."""
    check = _Checker(path)
    maps = raw.get("maps")
    if maps is not None and not isinstance(maps, list):
        check.refuse("maps", maps, "a list")
        maps = None
    entry = RunEntry(
        path=path,
        started=check.text(raw.get("started"), "started"),
        finished=check.text(raw.get("finished"), "finished"),
        interrupted=check.text(raw.get("interrupted"), "interrupted"),
        out=check.text(raw.get("out"), "out"),
        counts=_counts_of(check, raw.get("counts")),
        model=_model_of(check, raw),
        maps=[e for k, m in enumerate(maps or []) if (e := _map_entry(check, k, m)) is not None],
        failures=_failures_of(check, raw.get("failures")),
    )
    return entry, check.problems


def _load_json_object(path: Path) -> dict[str, Any]:
    """A record file's JSON object.  Raises ValueError (not an object, too large) or OSError."""
    size = path.stat().st_size
    if size > RECORD_LIMIT:
        raise ValueError(f"{size} bytes, more than the {RECORD_LIMIT // 2**20} MiB a record may have")
    record = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    return record


def read_run_records(out: Path) -> tuple[list[RunEntry], list[str]]:
    """The run records in OUT, oldest first, duplicates (the same run in both places) once;
    and one line per record, or value in a record, that cannot be used."""
    paths = [out / RUN_RECORD] if (out / RUN_RECORD).is_file() else []
    history = out / RUN_HISTORY
    if history.is_dir():
        paths += sorted(p for p in history.glob("*.json") if p.is_file())
    records: list[RunEntry] = []
    problems: list[str] = []
    seen: set[str] = set()
    for path in paths:
        try:
            raw = _load_json_object(path)
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: unreadable run record ({' '.join(str(exc).split())})")
            continue
        key = json.dumps([raw.get("started"), raw.get("finished"), raw.get("command")])
        if key in seen:
            continue
        seen.add(key)
        record, record_problems = parse_run_record(path, raw)
        records.append(record)
        problems += record_problems
    records.sort(key=lambda r: (r.finished or "", r.started or ""))
    return records, problems


def relative_output(out: Path, run_out: str | None, output: str) -> str | None:
    """Where a record's mask lies in OUT, as a POSIX path relative to OUT; None when it lies
    outside.  An absolute path is taken relative to the run's own OUT (``run_out``, where the
    folder was when the run wrote it: it may have been moved or copied since), else to OUT as it
    is now; a relative one is relative to OUT."""
    path = PurePath(output)
    if path.is_absolute():
        bases = ([PurePath(run_out)] if run_out and PurePath(run_out).is_absolute() else []) + [
            PurePath(os.path.abspath(out))
        ]
        for base in bases:
            if path.is_relative_to(base):
                path = path.relative_to(base)
                break
        else:
            return None
    if not path.parts or ".." in path.parts:
        return None
    return path.as_posix()


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


@contextmanager
def _netcdf_path(path: Path) -> Iterator[Path]:
    """``path`` as netCDF can open it: itself, or a symlink with an ASCII name when the name's
    bytes are not UTF-8 (netCDF4 encodes every path as UTF-8)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        with tempfile.TemporaryDirectory(prefix="cm-report-") as tmp:
            alias = Path(tmp) / f"mask{path.suffix.encode('ascii', 'replace').decode()}"
            alias.symlink_to(path.absolute())
            yield alias
        return
    yield path


@dataclass
class MaskFigures:
    """What the page shows of one mask file (None: unknown)."""

    cloud_fraction: float | None = None
    """Cloudy share of the valid pixels, a pixel cloudy at ``threshold`` or above."""
    valid_fraction: float | None = None
    """Valid share of all 1801 x 3600 pixels."""
    ls: float | None = None
    """Solar longitude (deg), from the mask's time coordinates."""
    mars_year: int | None = None
    threshold: float = DEFAULT_THRESHOLD
    threshold_given: bool = False
    """False: the mask has no usable ``threshold`` attribute and the default was used."""
    problem: str | None = None
    """Why the mask cannot be read (one line naming it); the other fields are then None."""
    note: str | None = None
    """What a reader should know of a mask that was read (an unusable threshold attribute)."""


def mask_fractions(path: Path) -> MaskFigures:
    """Cloud and valid fractions, Ls, year and threshold of one mask file (:class:`MaskFigures`)."""
    with _netcdf_path(path) as readable_path:
        return _mask_fractions(path, readable_path)


def _mask_threshold(attrs: dict[str, Any]) -> tuple[float | None, str | None]:
    """The mask's ``threshold`` attribute when it is a number in [0, 1] (else None), and why an
    attribute that is present cannot be used (else None)."""
    if "threshold" not in attrs:
        return None, None
    try:
        thr = float(attrs["threshold"])
    except (TypeError, ValueError):
        thr = math.nan
    if 0.0 <= thr <= 1.0:
        return thr, None
    return (
        None,
        f"threshold attribute {_shown(attrs['threshold'])} is not in [0, 1]: the default {DEFAULT_THRESHOLD:g} used",
    )


def _mask_fractions(path: Path, readable_path: Path) -> MaskFigures:
    from ..netcdf import check_mask_file, read_attrs, read_mask, read_time_coords
    from .masks import value_problem

    try:  # one read of a good mask; check_mask_file only says why a bad one fails
        attrs = read_attrs(readable_path)
        values = read_mask(readable_path, raw=True)
    except Exception:  # noqa: BLE001 - any failure to read makes the mask bad
        values = None
    if values is None or values.shape != (MAP_HEIGHT, MAP_WIDTH):
        problem = check_mask_file(readable_path) or f"{path}: unreadable mask"
        return MaskFigures(problem=problem.replace(str(readable_path), str(path)))
    odd = value_problem(values)  # a mask edited to NaN or 5.0 has no figures (issue 32 item 8)
    if odd is not None:
        return MaskFigures(problem=f"{path}: {odd}")
    given, note = _mask_threshold(attrs)
    thr = DEFAULT_THRESHOLD if given is None else given
    valid = values > INVALID + 0.5
    n_valid = int(np.count_nonzero(valid))
    figures = MaskFigures(
        cloud_fraction=float(np.count_nonzero(valid & (values >= thr)) / n_valid) if n_valid else None,
        valid_fraction=n_valid / values.size,
        threshold=thr,
        threshold_given=given is not None,
        note=note,
    )
    try:
        when = read_time_coords(readable_path)
    except Exception:  # noqa: BLE001 - a mask without readable time coordinates has no Ls here
        return figures
    figures.ls, figures.mars_year = when.ls, when.mars_year
    return figures


def collect_report(out: str | Path, progress: Callable[[str, int], None] | None = None) -> ReportData:
    """Read the run records and the masks of OUT into a :class:`ReportData`.

    ``progress``: called with each map name after its mask is read, and the number of masks to
    read in all."""
    from ..netcdf import find_mask_files, map_name_of

    out = Path(out)
    records, problems = read_run_records(out)
    data = ReportData(out, problems=problems)
    latest: dict[str, MapEntry] = {}
    failures: dict[str, str] = {}
    where: dict[str, str | None] = {}
    """map name -> its mask relative to OUT, from the record of its latest entry"""
    for record in records:
        data.runs.append(
            {
                "started": record.started,
                "finished": record.finished,
                "counts": record.counts,
                "interrupted": record.interrupted,
                "from_existing": _tally(m.from_existing for m in record.maps if m.from_existing),
            }
        )
        if record.model not in data.models:
            data.models.append(record.model)
        for m in record.maps:
            if m.status != "skipped" or m.name not in latest:
                latest[m.name] = m
                where[m.name] = relative_output(out, record.out, m.output) if m.output else None
        failures.update(record.failures)
    # a later success clears an earlier failure of the same map
    for m in latest.values():
        if m.status != "failed" and m.source is not None:
            failures.pop(m.source, None)
    data.failures = sorted(failures.items())
    to_read: list[tuple[MapRow, str]] = []
    """(row, its mask relative to OUT)"""
    listed: set[Path] = set()
    for name, m in sorted(latest.items()):
        row = MapRow(name, m.status, m.ls, m.mars_year, reason=m.reason)
        relative = where[name]
        if relative is not None and row.status != "failed":
            listed.add((out / relative).resolve())
            to_read.append((row, relative))
        elif m.output and row.status in ("done", "skipped"):
            row.status, row.reason = "missing", f"{m.output}: mask not in {out} (not read)"
        data.rows.append(row)
    try:
        on_disk = find_mask_files(out)
    except FileNotFoundError:
        on_disk = []
    for mask in on_disk:
        if mask.resolve() not in listed:
            row = MapRow(map_name_of(mask), "on disk")
            to_read.append((row, mask.relative_to(out).as_posix()))
            data.rows.append(row)
    for row, relative in to_read:
        _fill_from_mask(out, row, relative)
        if progress is not None:
            progress(row.name, len(to_read))
    _note_same_map(data.rows)
    data.rows.sort(
        key=lambda r: (r.mars_year if r.mars_year is not None else 9999, r.ls if r.ls is not None else 999.0, r.name)
    )
    return data


def _note_same_map(rows: list[MapRow]) -> None:
    """Say on each row whose map has more than one mask in OUT (``.nc`` beside ``.ncdf``, or
    in two folders) which masks they are: each is a row of its own, but only the first in path
    order is counted; the others become ``duplicate`` rows without figures (not plotted), as
    ``cm-stats`` and ``cm-stack`` count such a map once."""
    masks: dict[str, list[str]] = {}
    counted: dict[str, str] = {}
    for r in sorted(rows, key=lambda r: r.mask or ""):
        if r.mask is not None:
            masks.setdefault(r.name, []).append(r.mask)
            if r.status != "bad mask":
                counted.setdefault(r.name, r.mask)
    for r in rows:
        same = sorted(masks.get(r.name, []))
        if r.mask is not None and len(same) > 1:
            note = f"{len(same)} masks of this map in OUT: {', '.join(same)}"
            if r.status != "bad mask" and r.mask != counted[r.name]:
                r.status, r.cloud_fraction, r.valid_fraction = "duplicate", None, None
                note = f"the same map as {counted[r.name]}, counted once; {note}"
            r.reason = f"{r.reason}; {note}" if r.reason else note


def _tally(values: Iterable[str]) -> dict[str, int]:
    """How often each value occurs, in first-seen order."""
    tally: dict[str, int] = {}
    for v in values:
        tally[v] = tally.get(v, 0) + 1
    return tally


def _fill_from_mask(out: Path, row: MapRow, relative: str) -> None:
    """Fractions, Ls, year and quicklook of ``row`` from its mask ``OUT/relative``."""
    mask = out / relative
    if not mask.exists():
        if row.status in ("done", "skipped"):
            row.status, row.reason = "missing", f"{mask}: mask not found"
        return
    row.mask = relative
    figures = mask_fractions(mask)
    if figures.problem is not None:
        row.status, row.reason = "bad mask", figures.problem
        return
    row.cloud_fraction, row.valid_fraction = figures.cloud_fraction, figures.valid_fraction
    row.threshold = figures.threshold if figures.threshold_given else None
    if figures.note:
        row.reason = f"{row.reason}; {figures.note}" if row.reason else figures.note
    row.ls = row.ls if row.ls is not None else figures.ls
    row.mars_year = row.mars_year if row.mars_year is not None else figures.mars_year
    png = mask.with_suffix(".png")
    if png.is_file():
        row.thumbnail = PurePath(relative).with_suffix(".png").as_posix()


# --------------------------------------------------------------------------- rendering (pure)
NICE_TOPS = (0.02, 0.04, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)
"""Candidate tops of the plot's fraction axis (four tick intervals each)."""
YEAR_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


LS_STEPS = (1, 2, 5, 10, 15, 30, 45, 60)
"""Candidate tick steps of the plot's Ls axis (deg)."""
LS_MAX_TICKS = 6
"""Most tick intervals on the Ls axis."""
LS_MIN_SPAN = 10.0
"""Narrowest Ls axis (deg): a single map sits in the middle of it."""
LS_FULL_YEAR = 180.0
"""A run whose maps span more Ls than this (deg) gets the whole year, 0..360."""


def ls_axis(ls_values: list[float]) -> tuple[float, float, float]:
    """``(first, last, step)`` of the plot's Ls axis (deg): 0..360 by 60 for no map or maps that
    span more than :data:`LS_FULL_YEAR`, else fitted to the maps: the smallest of :data:`LS_STEPS`
    whose tick-aligned range holds them in at most :data:`LS_MAX_TICKS` intervals, at least
    :data:`LS_MIN_SPAN` wide."""
    values = [v % 360.0 for v in ls_values]
    if not values or max(values) - min(values) > LS_FULL_YEAR:
        return 0.0, 360.0, 60.0
    lo, hi = min(values), max(values)
    pad = max(0.0, LS_MIN_SPAN - (hi - lo)) / 2
    lo, hi = max(0.0, lo - pad), min(360.0, hi + pad)
    for step in LS_STEPS:
        first, last = math.floor(lo / step) * step, math.ceil(hi / step) * step
        if (last - first) / step <= LS_MAX_TICKS:
            return float(first), float(last), float(step)
    return 0.0, 360.0, 60.0


def svg_plot(points: list[tuple[float, float, int | None]], width: int = 720, height: int = 300) -> str:
    """Inline SVG scatter of cloud fraction (y, from 0 to the first of :data:`NICE_TOPS` above the largest) against Ls
    (x, deg, :func:`ls_axis`: fitted to the maps, 0..360 for a run spanning the year), one colour per Mars year;
    ``points`` are ``(ls, cloud fraction, year)``."""
    left, right, top, bottom = 56, 110, 16, 44
    pw, ph = width - left - right, height - top - bottom
    top_value = max([0.0] + [p[1] for p in points])
    ymax = next(v for v in NICE_TOPS if v >= top_value - 1e-12)
    ls_first, ls_last, ls_step = ls_axis([p[0] for p in points])

    def x(ls: float) -> float:
        return left + pw * (ls % 360.0 - ls_first) / (ls_last - ls_first)

    def y(f: float) -> float:
        return top + ph * (1 - f / ymax)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="cloud fraction against Ls" class="plot">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#888"/>',
    ]
    n_ticks = round((ls_last - ls_first) / ls_step)
    for k in range(n_ticks + 1):
        tick = ls_first + k * ls_step
        tx = left + pw * k / n_ticks
        parts.append(f'<line x1="{tx:.1f}" y1="{top + ph}" x2="{tx:.1f}" y2="{top + ph + 5}" stroke="#444"/>')
        parts.append(f'<text x="{tx:.1f}" y="{top + ph + 18}" text-anchor="middle" font-size="12">{tick:g}</text>')
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
            f'<text x="{left + pw + 26}" y="{ly}" font-size="12">'
            f"MY {html.escape(str(year if year is not None else '?'))}</text>"
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


def threshold_note(rows: list[MapRow]) -> str:
    """One HTML sentence saying at which threshold the page's cloud fractions count a pixel
    cloudy: the masks' ``threshold`` attribute, with how many masks use each when they differ."""
    read = [r for r in rows if r.valid_fraction is not None]
    if not read:
        return ""
    tally = _tally(f"{r.threshold:g}" if r.threshold is not None else "" for r in read)
    default = f"{DEFAULT_THRESHOLD:g}"
    head = "Cloud fraction: the cloudy share of a map&#x27;s valid pixels, a pixel counted cloudy at probability &ge; "
    if len(tally) == 1:
        (value,) = tally
        if not value:
            why = "the masks have no usable threshold attribute"
            return f'<p class="threshold">{head}<b>{default}</b>, the default ({why}).</p>'
        return f'<p class="threshold">{head}threshold <b>{value}</b>, the masks&#x27; own.</p>'

    def item(value: str, n: int) -> str:
        shown = value or f"{default} (the default: no usable threshold attribute)"
        return f"{shown} ({n} mask{'s' * (n != 1)})" if value else f"{n} mask{'s' * (n != 1)} at {shown}"

    listed = ", ".join(item(v, n) for v, n in sorted(tally.items()))
    return f'<p class="threshold">{head}each mask&#x27;s threshold; the thresholds differ between masks: {listed}.</p>'


def run_counts(run: dict[str, Any]) -> str:
    """A run's counts as words (HTML): a done map that a rerun only gave a quicklook or map
    copies from its existing mask is counted as that, not as ``done``."""
    counts = dict(run.get("counts") or {})
    made = run.get("from_existing") or {}
    if made and "done" in counts:
        counts["done"] = max(0, counts["done"] - sum(made.values()))
        if counts["done"] == 0:
            del counts["done"]
    words = [f"{html.escape(readable(str(k)))} {v}" for k, v in counts.items()]
    for what, n in made.items():
        thing = what.replace("quicklook", "quicklooks") if n != 1 else what
        words.append(f"{n} {html.escape(readable(thing))} from existing mask{'s' * (n != 1)}")
    return ", ".join(words)


def render_html(data: ReportData) -> str:
    """The report page as one self-contained HTML string (no scripts, no external resources)."""

    def e(text: str) -> str:
        return html.escape(readable(text))

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
        "<table><tr><th>model</th><th>version</th><th>sha256</th><th>provider</th><th>precision</th></tr>",
    ]
    no_record = {"name": "(no run record)", "version": "", "sha256": "", "provider": "", "precision": ""}
    for m in data.models or [no_record]:
        out.append(
            f"<tr><td>{e(m['name'])}</td><td>{e(m['version'])}</td><td><code>{e(m['sha256'])}</code></td>"
            f"<td>{e(m['provider'])}</td><td>{e(m['precision'])}</td></tr>"
        )
    out.append("</table>")
    if data.runs:
        out.append(
            "<p>"
            + "<br>".join(
                f"run {e(r['started'] or '?')} &ndash; {e(r['finished'] or '?')}: "
                + run_counts(r)
                + (f" (interrupted: {e(r['interrupted'])})" if r.get("interrupted") else "")
                for r in data.runs
            )
            + "</p>"
        )
    out += ["<h2>Cloud fraction against Ls</h2>", threshold_note(rows), svg_plot(points)]
    out.append(f"<h2>Failures ({len(data.failures)})</h2>")
    if data.failures:
        out.append('<table class="failures"><tr><th>source</th><th>reason</th></tr>')
        out += [f"<tr><td>{e(s)}</td><td>{e(r)}</td></tr>" for s, r in data.failures]
        out.append("</table>")
    else:
        out.append("<p>none</p>")
    if data.problems:
        out.append(f"<h2>Run records and values left out ({len(data.problems)})</h2>")
        out.append("<ul>" + "".join(f"<li>{e(p)}</li>" for p in data.problems) + "</ul>")
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
            f'<td class="num">{"" if r.mars_year is None else e(str(r.mars_year))}</td>'
            f'<td class="num">{_fmt(r.ls, 1)}</td><td class="num">{_fmt(r.cloud_fraction)}</td>'
            f'<td class="num">{_fmt(r.valid_fraction)}</td><td>{status}</td></tr>'
        )
    out += ["</table>", "</body></html>", ""]
    return "\n".join(out)


def report_page(out: str | Path, progress: Callable[[str, int], None] | None = None) -> tuple[Path, list[str]]:
    """Write ``OUT/index.html`` (atomically); its path, and one line per record or value in a
    record that could not be used (the page lists them too).  ``progress``: as for
    :func:`collect_report`.

    Raises:
        FileNotFoundError: OUT is not a folder.
    """
    from ..atomic import atomic_path

    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: no such folder")
    data = collect_report(out, progress)
    page = render_html(data).encode("utf-8")
    path = out / REPORT_NAME
    with atomic_path(path) as tmp:
        tmp.write_bytes(page)
    return path, data.problems


def write_report(out: str | Path) -> Path:
    """Write ``OUT/index.html`` (:func:`report_page`) and return its path."""
    return report_page(out)[0]
