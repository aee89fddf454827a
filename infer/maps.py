"""Finding MDGMs in an archive, naming them, reading them and their ``_ls.txt`` tables.

Layouts found (domain layout of docs/):

* Dataverse: ``<phase>/<subphase>/<subphase>_ls.txt`` and ``<subphase>_dayNN_zequat.jpg``;
* the original model's copy layout: ``<phase>/<subphase>/mdgms/<name>.jpeg`` with the Ls table
  ``<phase>/<subphase>/list_ls.txt`` (or ``<subphase>_ls.txt``): a folder named ``mdgms`` is
  not a subphase, its parent is.  Its phase is the subphase's leading letters, as in the
  Dataverse layout, unless the folder above is that phase already: ``labels/P01/mdgms/P01day16.jpeg``
  (a label archive) is phase ``P``, subphase ``P01``, written to ``OUT/P/P01/cloudmasks/``.

Searching a folder (:func:`find_jobs`): hidden files and folders and folders named ``list``
or ``cloudmasks`` are never searched.  A folder named ``mdgms`` is searched only when the
folder holding it has neither maps of its own nor a ``cloudmasks`` folder: there it is a copy
(``cm-infer --copy-maps`` writes ``OUT/<phase>/<subphase>/mdgms`` beside ``cloudmasks``, so an
OUT inside a searched tree is not read back); under ``labels/P01`` it is where the maps are.
Symbolic links to files and folders are followed; a folder is never entered twice on one
branch of the walk, so link loops end.  Every name and the layout come from the path as given
(``os.path.abspath``, links not resolved): ``P77/P77_day01_zequat.jpg -> P03/...`` is a P77 map.

Names: a map's ``name`` is its file name without the extension and without a trailing
``_zequat`` (``P01_day01_zequat.jpg`` -> ``P01_day01``, ``P01_day01_zequat_v2.jpg`` ->
``P01_day01_zequat_v2``, ``P01day16.jpeg`` -> ``P01day16``); it names the output
``cloudmask_<name>.ncdf``.  Its ``ls_name``, the row looked up in the ``_ls.txt``, is the day key
at the start of the name (``<subphase>_dayNN`` or ``<subphase>dayNN``, all the day's digits:
``P01_day101`` is not ``P01_day10``), or the whole name when it starts with none.  Two files
that would write the same output are both refused; the same path given twice is one map.

Maps are returned north-up (JPEG row 0 = latitude +90), ``uint8 (1801, 3600, 3)`` RGB, decoded
strictly: any libjpeg warning (corrupt or truncated data) refuses the file.
"""

from __future__ import annotations

import math
import os
import re
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .geometry import MAP_HEIGHT, MAP_WIDTH

MAP_SUFFIXES = (".jpg", ".jpeg")
#: Folder names never searched (the MARCI swath lists, and masks written by cm-infer).
SKIPPED_FOLDERS = frozenset({"list", "cloudmasks"})
#: Folder name of the original's copy layout: its maps belong to the parent subphase.
COPY_FOLDER = "mdgms"

#: Largest map file read (bytes): MDGM JPEGs are about 0.5 MB, a quality-100 one under 15 MB.
MAX_MAP_BYTES = 64 << 20
#: Largest ``_ls.txt`` read (bytes): a row is about 30 bytes, a subphase has at most ~30 rows.
MAX_TABLE_BYTES = 16 << 20
#: Mars years a table row may give (MY 1 began in 1955; MARCI maps are MY 28 onwards).
MARS_YEAR_RANGE = (-9999, 9999)

_ZEQUAT = re.compile(r"_zequat$", re.IGNORECASE)
_DAY_KEY = re.compile(r"^(?P<sub>[A-Za-z]+\d+)_?day(?P<day>\d+)", re.IGNORECASE)
_JPEG_MODES = {"Gray": "L", "CMYK": "CMYK", "YCCK": "CMYK"}


class MapError(ValueError):
    """A map (or its Ls table) cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class LsEntry:
    """One row of an ``_ls.txt`` table: map name, Mars year, solar longitude Ls (deg)."""

    name: str
    mars_year: int
    ls: float


class LsTable(dict[str, LsEntry]):
    """``{name: LsEntry}`` of the usable rows of one ``_ls.txt``.

    ``errors`` holds ``{name: one-line reason naming file and line}`` for the rows that cannot
    be used (non-finite Ls, Mars year not an integer, conflicting duplicates ...); they do not
    make the other rows unusable.  ``path`` is the table's file.
    """

    def __init__(self, path: Path, rows: dict[str, LsEntry], errors: dict[str, str]) -> None:
        super().__init__(rows)
        self.path = path
        self.errors = errors


@dataclass(frozen=True)
class MapJob:
    """One map to process: where it is, what it is called, where its Ls comes from.

    ``path`` is absolute but not link-resolved; ``name`` names the output, ``ls_name`` the
    ``_ls.txt`` row (it defaults to ``name``); ``phase`` and ``subphase`` are the folder names
    of the output layout ``OUT/<phase>/<subphase>/cloudmasks/cloudmask_<name>.ncdf``.
    """

    path: Path
    name: str
    phase: str
    subphase: str
    ls_file: Path | None
    ls_name: str = ""

    def __post_init__(self) -> None:
        if not self.ls_name:
            object.__setattr__(self, "ls_name", self.name)

    def relative_output(self, suffix: str = ".ncdf") -> Path:
        """Output path relative to ``--out``: ``<phase>/<subphase>/cloudmasks/cloudmask_<name><suffix>``."""
        return Path(self.phase) / self.subphase / "cloudmasks" / f"cloudmask_{self.name}{suffix}"


# --------------------------------------------------------------------------- names
def map_name(path: str | Path) -> str:
    """The map's output name: the file name without its extension and a trailing ``_zequat``."""
    return _ZEQUAT.sub("", Path(path).stem)


def day_key(name: str) -> str:
    """The ``_ls.txt`` key of a map name: the day key it starts with, else the name itself.

    ``P01_day01_zequat_v2`` -> ``P01_day01``; ``P01day16`` -> ``P01day16``; ``foo`` -> ``foo``.
    """
    m = _DAY_KEY.match(name)
    return m.group(0) if m else name


def _canonical_day(name: str) -> tuple[str, int] | None:
    """``("P01", 1)`` for ``P01_day01``, ``p01day1`` ...; None for a name with no day key."""
    m = _DAY_KEY.match(name)
    return (m.group("sub").upper(), int(m.group("day"))) if m else None


# --------------------------------------------------------------------------- reading maps
def read_map(path: str | Path) -> np.ndarray:
    """Decode one MDGM JPEG to ``uint8 (1801, 3600, 3)`` RGB, north-up (row 0 = latitude +90).

    Strict: a libjpeg warning (corrupt data, premature end of file) refuses the map, so a
    truncated or damaged file never decodes to filled-in pixels.

    Raises:
        MapError: the file is missing, not a regular file (a FIFO, a device), larger than
            :data:`MAX_MAP_BYTES`, empty, not a JPEG, corrupt or truncated, not RGB
            (YCbCr/RGB colour), or not 3600 x 1801; the message names the file.
    """
    import simplejpeg

    path = Path(path)
    data = read_regular_file(path, MAX_MAP_BYTES, "map")
    if not data:
        raise MapError(f"{path}: empty file")
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data, strict=True)
    except ValueError as exc:
        raise MapError(f"{path}: not a readable image (not a valid JPEG: {_one_line(exc)})") from None
    if (width, height) != (MAP_WIDTH, MAP_HEIGHT):
        raise MapError(f"{path}: image is {width} x {height}, expected {MAP_WIDTH} x {MAP_HEIGHT}")
    if colorspace not in ("YCbCr", "RGB"):
        mode = _JPEG_MODES.get(colorspace, colorspace)
        raise MapError(f"{path}: image mode is {mode}, expected RGB (JPEG colour space {colorspace})")
    try:
        rgb = simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
    except ValueError as exc:
        raise MapError(f"{path}: corrupt or truncated JPEG ({_one_line(exc)})") from None
    if rgb.shape != (MAP_HEIGHT, MAP_WIDTH, 3) or rgb.dtype != np.uint8:  # defensive: header lied
        raise MapError(f"{path}: decoded to {rgb.shape} {rgb.dtype}, expected ({MAP_HEIGHT}, {MAP_WIDTH}, 3) uint8")
    return rgb


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def read_regular_file(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path`` if it is a regular file (after following links) of at most
    ``limit`` bytes; ``what`` (``map``, ``Ls table``) goes into the messages.

    The file is opened with ``O_NONBLOCK``, so a FIFO swapped in after the check cannot block,
    and read up to ``limit + 1`` bytes, so a file growing meanwhile cannot exhaust memory.

    Raises:
        MapError: missing, unreadable, not a regular file, or larger than ``limit`` (one line
            naming the file).
    """
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise MapError(f"{path}: {what} is {_file_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise MapError(f"{path}: {what} is {st.st_size} bytes, larger than the {limit} bytes a {what} may have")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):  # replaced between stat and open
                raise MapError(f"{path}: {what} is {_file_kind(mode)}, not a regular file")
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise MapError(f"{path}: no such file") from None
    except OSError as exc:
        raise MapError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise MapError(f"{path}: {what} grew past the {limit} bytes a {what} may have while being read")
    return data


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --------------------------------------------------------------------------- Ls tables
def _decode_text(raw: bytes, path: Path) -> str:
    """UTF-8 (a leading BOM dropped), else Latin-1 (which any byte string decodes as).

    Raises:
        MapError: NUL bytes (UTF-16 or UTF-32 text, or a binary file), naming ``path``.
    """
    if b"\x00" in raw:
        kind = (
            "UTF-16/UTF-32 text"
            if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or raw.count(b"\x00") * 3 >= len(raw)
            else "binary"
        )
        raise MapError(f"{path}: Ls table is not UTF-8 / ASCII text (it looks like {kind}: save it as UTF-8 or ASCII)")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _parse_row(parts: list[str]) -> tuple[int, float] | str:
    """``(Mars year, Ls)`` of a split row, or the reason it cannot be used."""
    if len(parts) < 3:
        return "expected 'NAME MARS_YEAR LS'"
    try:
        year = int(parts[1])
    except ValueError:
        return f"Mars year {parts[1]!r} is not an integer"
    if not MARS_YEAR_RANGE[0] <= year <= MARS_YEAR_RANGE[1]:
        return f"Mars year {parts[1]} is outside {MARS_YEAR_RANGE[0]}..{MARS_YEAR_RANGE[1]}"
    try:
        ls = float(parts[2])
    except ValueError:
        return f"Ls {parts[2]!r} is not a number"
    if not math.isfinite(ls):
        return f"Ls {parts[2]!r} is not a finite number"
    if not 0.0 <= ls <= 360.0:
        return f"Ls {ls:g} is outside 0-360 deg"
    return year, ls


def read_ls_table(path: str | Path) -> LsTable:
    """Parse an ``_ls.txt`` (or ``list_ls.txt``) table: ``{name: LsEntry}`` of its usable rows.

    Rows are ``NAME  MARS_YEAR  LS`` (Ls in degrees, 0-360), whitespace separated; blank lines
    are ignored.  UTF-8 with or without a BOM, or Latin-1.  A row that cannot be used (a
    non-finite Ls, a Mars year that is not an integer, two rows for one name that disagree)
    is left out and its one-line reason, naming file and line, kept in ``.errors[name]``.
    Parsed once: later calls return the same table while the file's path, inode, size and
    modification time stay the same (do not modify the table returned).

    Raises:
        MapError: the file cannot be read, is not a regular file, is larger than
            :data:`MAX_TABLE_BYTES` or is not UTF-8 / Latin-1 text (names the file).
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise MapError(f"{path}: cannot read Ls table ({exc.strerror or exc})") from None
    key = (os.path.abspath(path), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    with _TABLES_LOCK:
        cached = _TABLES.get(key)
    if cached is not None:
        return cached
    table = parse_ls_table(read_regular_file(path, MAX_TABLE_BYTES, "Ls table"), path)
    with _TABLES_LOCK:
        _TABLES[key] = table
        while len(_TABLES) > MAX_CACHED_TABLES:
            _TABLES.pop(next(iter(_TABLES)))
    return table


MAX_CACHED_TABLES = 64
"""Parsed tables kept by :func:`read_ls_table` (one per subphase of a run)."""
_TABLES: dict[tuple[str, int, int, int, int], LsTable] = {}
_TABLES_LOCK = threading.Lock()


def parse_ls_table(raw: bytes, path: Path) -> LsTable:
    """The :class:`LsTable` of the bytes ``raw`` of the table ``path`` (see :func:`read_ls_table`)."""
    text = _decode_text(raw, path)
    rows: dict[str, LsEntry] = {}
    errors: dict[str, str] = {}
    where: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        name = parts[0]
        parsed = _parse_row(parts)
        if isinstance(parsed, str):
            errors.setdefault(name, f"{path}:{lineno}: {parsed}, got {line.strip()!r}")
            rows.pop(name, None)
            continue
        entry = LsEntry(name, *parsed)
        if name in errors:
            continue
        if name in rows and rows[name] != entry:
            errors[name] = f"{path}:{lineno}: second row for {name} disagrees with line {where[name]}"
            del rows[name]
            continue
        rows.setdefault(name, entry)
        where.setdefault(name, lineno)
    return LsTable(path, rows, errors)


def ls_entry(job: MapJob) -> LsEntry:
    """The map's row of its subphase's ``_ls.txt`` (looked up by ``job.ls_name``).

    A row whose day key means the same day (``P01day1`` for ``P01_day01``) is taken when the
    exact key is absent and exactly one such row exists.

    Raises:
        MapError: no ``_ls.txt``, the table cannot be read, no row, or the row is unusable;
            the message names the map and the table (and its line).
    """
    if job.ls_file is None:
        raise MapError(f"{job.path}: no _ls.txt in {_subphase_dir(Path(job.path))} (give --bounds to run without Ls)")
    try:
        table = read_ls_table(job.ls_file)
    except MapError as exc:
        raise MapError(f"{job.path}: {exc}") from None
    key = job.ls_name
    if key not in table and key not in table.errors:
        day = _canonical_day(key)
        same = sorted({n for n in (*table, *table.errors) if day is not None and _canonical_day(n) == day})
        if len(same) == 1:
            key = same[0]
    if key in table.errors:
        raise MapError(f"{job.path}: unusable Ls row for {key}: {table.errors[key]}")
    if key not in table:
        near = near_rows(job.ls_name, [*table, *table.errors])
        hint = f"; rows for the same or a similar day: {', '.join(near)}" if near else ""
        if len(near) > 1 and _canonical_day(near[0]) == _canonical_day(job.ls_name):
            hint += " (more than one means the same day: keep one)"
        raise MapError(f"{job.path}: no row for {job.ls_name} in {job.ls_file}{hint}")
    return table[key]


def near_rows(key: str, names: Iterable[str], shown: int = 5) -> list[str]:
    """Row names of a table close to ``key``: those meaning the same day (``P01_day1`` and
    ``P01_day001`` for ``P01_day01``) first, then similar spellings; at most ``shown``."""
    import difflib

    names = list(dict.fromkeys(names))
    day = _canonical_day(key)
    same = sorted(n for n in names if day is not None and _canonical_day(n) == day)
    similar = [n for n in difflib.get_close_matches(key, names, n=shown, cutoff=0.8) if n not in same]
    return (same + similar)[:shown]


# --------------------------------------------------------------------------- finding maps
def _subphase_dir(map_path: Path) -> Path:
    """The subphase folder of a map: its folder, or that folder's parent for ``mdgms/``."""
    folder = map_path.parent
    if folder.name == COPY_FOLDER and folder.parent != folder:
        return folder.parent
    return folder


def ls_file_for(map_path: Path) -> Path | None:
    """The Ls table of the map's subphase folder: ``<subphase>_ls.txt``, else ``list_ls.txt``,
    else the folder's only ``*_ls.txt``; None if there is none."""
    folder = _subphase_dir(Path(map_path))
    for candidate in (folder / f"{folder.name}_ls.txt", folder / "list_ls.txt"):
        if candidate.is_file():
            return candidate
    candidates = sorted(p for p in folder.glob("*_ls.txt") if p.is_file())
    return candidates[0] if len(candidates) == 1 else None


def phase_of(subphase_dir: Path, copy_layout: bool = False) -> str:
    """The phase folder name of a map's output: the folder above its subphase; in the copy
    layout (``<x>/<subphase>/mdgms/``) the subphase's leading letters (``P01`` -> ``P``) when
    ``<x>`` is not already that phase, as a label archive's ``labels/P01`` is not.  'maps' for
    a map with no folder above it."""
    parent = subphase_dir.parent.name
    letters = re.match(r"([A-Za-z]+)\d+$", subphase_dir.name)
    if copy_layout and letters and parent != letters.group(1):
        return letters.group(1)
    return parent or "maps"


def make_job(path: str | Path) -> MapJob:
    """The job of one map file, named from the path as given (absolute, links not resolved)."""
    path = Path(os.path.abspath(path))
    sub = _subphase_dir(path)
    name = map_name(path)
    return MapJob(
        path=path,
        name=name,
        phase=phase_of(sub, copy_layout=path.parent.name == COPY_FOLDER),
        subphase=sub.name or "maps",
        ls_file=ls_file_for(path),
        ls_name=day_key(name),
    )


def _is_map_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in MAP_SUFFIXES


def _walk(root: str, root_key: tuple[int, int], found: list[str], errors: list[str]) -> None:
    """Collect the map files under ``root`` (absolute, as given) into ``found``, depth first
    in name order; iterative, so a tree of any depth ends without ``RecursionError``."""
    # (folder, the (dev, inode) of the folders on its branch): a link back into it is a loop
    stack: list[tuple[str, frozenset[tuple[int, int]]]] = [(root, frozenset({root_key}))]
    while stack:
        folder, ancestors = stack.pop()
        children = _scan(folder, found, errors)
        below = []
        for path in children:
            try:
                st = os.stat(path)
            except OSError as exc:
                errors.append(f"{path}: cannot open folder ({exc.strerror or exc})")
                continue
            key = (st.st_dev, st.st_ino)
            if key not in ancestors:
                below.append((path, ancestors | {key}))
        stack.extend(reversed(below))


def _scan(folder: str, found: list[str], errors: list[str]) -> list[str]:
    """Add the maps of one folder to ``found``; return its sub-folders to search, in name order."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        errors.append(f"{folder}: cannot list folder ({exc.strerror or exc})")
        return []
    maps, folders = [], []
    for e in entries:
        if e.name.startswith("."):
            continue
        try:
            is_dir = e.is_dir()  # follows links
            is_file = not is_dir and e.is_file()
        except OSError:
            is_dir = is_file = False
        if is_dir:
            folders.append(e)
        elif _is_map_name(e.name):
            if is_file:
                maps.append(e.path)
            elif os.path.lexists(e.path) and not os.path.exists(e.path):
                errors.append(f"{e.path}: broken symbolic link")
            else:
                errors.append(f"{e.path}: {_kind_of(e.path)}, not a regular file: not read")
    found.extend(maps)
    copy_beside = bool(maps) or any(e.name == "cloudmasks" for e in folders)
    return [e.path for e in folders if not (e.name in SKIPPED_FOLDERS or (e.name == COPY_FOLDER and copy_beside))]


def _kind_of(path: str) -> str:
    try:
        return _file_kind(os.stat(path).st_mode)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"


def _root_files(root: str | Path, errors: list[str]) -> list[str]:
    given = os.path.abspath(root)
    if not os.path.exists(given):
        errors.append(f"{root}: no such file or folder")
        return []
    if not os.path.isdir(given):
        if os.path.splitext(given)[1].lower() not in MAP_SUFFIXES:
            errors.append(f"{root}: not a JPEG map (expected .jpg or .jpeg)")
            return []
        return [given]
    st = os.stat(given)
    found: list[str] = []
    _walk(given, (st.st_dev, st.st_ino), found, errors)
    return found


def find_jobs(roots: Iterable[str | Path]) -> tuple[list[MapJob], list[str]]:
    """Every map under the roots, sorted by phase, subphase and name, and one-line errors.

    A root may be a folder of phases, a phase folder (``P/``), a subphase folder, an
    ``mdgms/`` folder, or a single JPEG.  Errors (each naming the file): a missing root, a
    single file that is not a JPEG, a broken link, an unreadable folder, and every map whose
    output another map would also write (one line per map, naming the other; neither is a
    job).  The same absolute path found twice is one job.
    """
    errors: list[str] = []
    by_path: dict[str, MapJob] = {}
    for root in roots:
        for p in _root_files(root, errors):
            if p not in by_path:
                by_path[p] = make_job(p)
    by_output: dict[Path, list[MapJob]] = {}
    for job in by_path.values():
        by_output.setdefault(job.relative_output(), []).append(job)
    jobs: list[MapJob] = []
    for output, group in by_output.items():
        if len(group) == 1:
            jobs.append(group[0])
            continue
        for job in group:
            others = ", ".join(str(o.path) for o in group if o is not job)
            errors.append(f"{job.path}: same output {output} as {others}; neither is processed")
    jobs.sort(key=lambda j: (j.phase, j.subphase, j.name, str(j.path)))
    return jobs, errors


def find_maps(*roots: str | Path) -> list[MapJob]:
    """The jobs of :func:`find_jobs`; raises on its first error (use find_jobs to see them all).

    Raises:
        MapError: a root does not exist, a single file is not a JPEG, or two maps collide.
    """
    jobs, errors = find_jobs(roots)
    if errors:
        raise MapError(errors[0])
    return jobs
