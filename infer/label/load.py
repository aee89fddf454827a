"""Finding and reading what ``cm-label`` edits: a mask and its map, their Ls, as a Session.

``find_in_out(OUT, NAME)`` looks only inside a ``cm-infer`` output folder (paths checked with
:func:`~.core.safe_path`, so a symlink out of it is refused).  Every failure is a
:class:`LabelInputError` whose message is one line naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..maps import MAP_SUFFIXES, MapError, day_key, ls_file_for, map_name, read_ls_table, read_map
from .core import PathError, edit_from_values, label_name, safe_path
from .server import Session


class LabelInputError(ValueError):
    """A mask, map or Ls that cannot be used; one line naming the file."""


@dataclass(frozen=True)
class Found:
    """A mask file and the map it was made from."""

    mask: Path
    map: Path


def _inside(root: Path, path: Path) -> Path:
    try:
        return safe_path(root, path.relative_to(root))
    except (PathError, ValueError) as exc:
        raise LabelInputError(f"{path}: refused ({exc})") from None


def find_in_out(out: str | Path, name: str, map_path: str | Path | None = None) -> Found:
    """The mask ``cloudmask_NAME.ncdf`` (or ``.nc``) under ``out`` and its map: ``map_path`` if
    given, else the copy ``cm-infer --copy-maps`` put in ``mdgms/`` beside ``cloudmasks/``."""
    out = Path(out)
    if not out.is_dir():
        raise LabelInputError(f"{out}: no such output folder")
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        raise LabelInputError(f"{name!r}: not a map name (e.g. P01_day01)")
    wanted = {f"cloudmask_{name}.ncdf", f"cloudmask_{name}.nc"}
    masks = sorted(p for p in out.rglob("cloudmask_*") if p.name in wanted and p.is_file())
    if not masks:
        raise LabelInputError(f"{out}: no mask cloudmask_{name}.ncdf in it")
    if len(masks) > 1:
        raise LabelInputError(f"{out}: {len(masks)} masks named cloudmask_{name}: {', '.join(map(str, masks))}")
    mask = _inside(out, masks[0])
    if map_path is not None:
        return Found(mask, Path(map_path))
    from ..netcdf import read_attrs

    try:
        source = str(read_attrs(mask).get("source_map", ""))
    except OSError as exc:
        raise LabelInputError(f"{mask}: cannot read ({exc})") from None
    folders = [mask.parent.parent / "mdgms", mask.parent / "mdgms", mask.parent]
    names = [source] if source and "/" not in source else []
    names += [f"{name}_zequat{s}" for s in MAP_SUFFIXES] + [f"{name}{s}" for s in MAP_SUFFIXES]
    for folder in folders:
        for candidate in names:
            path = folder / candidate
            if path.is_file():
                return Found(mask, _inside(out, path))
    raise LabelInputError(
        f"{mask}: its map is not in {folders[0]} (run cm-infer with --copy-maps, or give --map MAP.jpeg)"
    )


def map_ls(map_path: Path) -> tuple[int, float] | None:
    """``(mars_year, ls)`` of a map from its subphase's ``_ls.txt``, None without a row."""
    table_path = ls_file_for(map_path)
    if table_path is None:
        return None
    try:
        table = read_ls_table(table_path)
    except MapError:
        return None
    entry = table.get(day_key(map_name(map_path)))
    return None if entry is None else (entry.mars_year, entry.ls)


def _first(*values):
    """The first value that is not None (None if all are)."""
    return next((v for v in values if v is not None), None)


def open_session(
    mask: str | Path,
    map_path: str | Path,
    labels: str | Path,
    *,
    threshold: float | None = None,
    mars_year: int | None = None,
    ls: float | None = None,
    name: str | None = None,
) -> Session:
    """Read a mask and its map into a :class:`Session` (nothing served yet).

    The cloud threshold is ``threshold``, else the file's, else 0.912 (labels: every value > 0
    is above it).  Mars year and Ls: the arguments, else the mask's, else the map's ``_ls.txt``.
    The label's day name: ``name``, else the map name in ``labels/P01`` style (``P01day01``).
    """
    from ..netcdf import read_attrs, read_time_coords
    from ..science.masks import MaskShapeError, file_threshold, read_values

    mask, map_path = Path(mask), Path(map_path)
    if not mask.is_file():
        raise LabelInputError(f"{mask}: no such mask file")
    try:
        values = read_values(mask)
        attrs = read_attrs(mask)
        coords = read_time_coords(mask)
    except MaskShapeError as exc:
        raise LabelInputError(str(exc)) from None
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise LabelInputError(f"{mask}: not a readable mask ({' '.join(str(exc).split())})") from None
    try:
        rgb = read_map(map_path)
    except MapError as exc:
        raise LabelInputError(str(exc)) from None
    table = map_ls(map_path)
    year = _first(mars_year, coords.mars_year, table[0] if table else None)
    sol = _first(ls, coords.ls, table[1] if table else None)
    if year is None or sol is None:
        raise LabelInputError(
            f"{mask}: no Mars year or Ls in it nor in the _ls.txt of {map_path} (give --mars-year and --ls)"
        )
    base = edit_from_values(values, file_threshold(attrs, threshold))
    day = name or label_name(map_name(map_path))
    return Session(map_path, rgb, base, Path(labels), day, int(year), float(sol), source=str(mask))
