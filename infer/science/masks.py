"""Mask files as science inputs: finding them, naming their day, and binarising them.

Used by ``cm-eval``, ``cm-stats`` and ``cm-view``.  Three kinds of file share one layout
(docs/science.md): this package's output (probabilities or 0/1, with a ``threshold``
attribute), the original's ``reference/`` masks (0/1) and the human ``labels/`` (blue-channel
numbers, > 0 = cloud).  A day is named ``P01_day01`` whatever the file calls it
(``cloudmask_P01_day01.ncdf``, ``cloudmask_P01day01.ncdf``, ``P01day01.jpeg``,
``P01_day01_zequat.jpg``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import DEFAULT_THRESHOLD
from ..geometry import INVALID, MAP_HEIGHT, MAP_WIDTH
from ..maps import MAP_SUFFIXES
from ..netcdf import MASK_SUFFIXES

_DAY = re.compile(r"([A-Za-z]+\d+)_?day(\d+)", re.IGNORECASE)


def day_name(path: str | Path) -> str | None:
    """Canonical day name (``P01_day01``) found in a file name, or None if it holds none."""
    m = _DAY.search(Path(path).name)
    if m is None:
        return None
    return f"{m.group(1).upper()}_day{int(m.group(2)):02d}"


def index_by_day(roots: Iterable[str | Path], suffixes: tuple[str, ...]) -> dict[str, Path]:
    """``{day name: path}`` of the files with one of ``suffixes`` under the roots (files or folders).

    Searched recursively; hidden files and files without a day name are skipped.  When two
    files name the same day, the first in sorted order wins.
    """
    found: dict[str, Path] = {}
    for root in roots:
        root = Path(root)
        if root.is_file():
            files = [root]
        elif root.is_dir():
            files = sorted(p for p in root.rglob("*") if p.is_file())
        else:
            raise FileNotFoundError(f"{root}: no such file or folder")
        for p in files:
            if p.name.startswith(".") or p.suffix.lower() not in suffixes:
                continue
            name = day_name(p)
            if name is not None:
                found.setdefault(name, p)
    return dict(sorted(found.items()))


MapKey = tuple[str, int, float]
"""What makes two masks the same map: canonical name, Mars year, Ls (deg, to 1e-6)."""


def map_key(name: str, mars_year: int, ls: float) -> MapKey:
    """:data:`MapKey` of a map: its day name (:func:`day_name`, so ``P01day01``, ``P01_day01`` and
    ``P01_day001`` agree) or, without a day key, the name itself; its Mars year; its Ls."""
    return (day_name(name) or name, int(mars_year), round(float(ls), 6))


class SeenMaps:
    """Masks counted so far, by :func:`map_key`: a second mask of the same map is refused with
    one line naming both files (``.nc`` beside ``.ncdf``, a copy in another folder, a cube of
    masks also given as files), so a map counts once however it is given."""

    def __init__(self) -> None:
        self._first: dict[MapKey, str] = {}

    def refuse(self, key: MapKey, where: str) -> str | None:
        """None (and ``where`` recorded) for a map not seen yet, else the line refusing ``where``."""
        first = self._first.get(key)
        if first is None:
            self._first[key] = where
            return None
        return f"{where}: the same map as {first} ({key[0]}, MY {key[1]}, Ls {key[2]:g}); left out, counted once"


def find_masks(*roots: str | Path) -> dict[str, Path]:
    """``{day name: mask file}`` of the NetCDF masks (``.ncdf``/``.nc``) under the roots."""
    return index_by_day(roots, MASK_SUFFIXES)


def find_map_files(*roots: str | Path) -> dict[str, Path]:
    """``{day name: JPEG}`` of the maps under the roots (an ``mdgm/`` tree or ``labels/P01/mdgms``)."""
    return index_by_day(roots, MAP_SUFFIXES)


def file_threshold(attrs: dict[str, Any], override: float | None = None) -> float:
    """The cloud threshold for a prediction file: ``override``, else its ``threshold``
    attribute, else :data:`DEFAULT_THRESHOLD`.  0/1 files pass through any threshold in (0, 1]."""
    if override is not None:
        return float(override)
    value = attrs.get("threshold")
    try:
        return float(value) if value is not None else DEFAULT_THRESHOLD
    except (TypeError, ValueError):
        return DEFAULT_THRESHOLD


class MaskShapeError(ValueError):
    """A mask file that is not 1801 x 3600; the message names the file and its shape."""


@dataclass(frozen=True)
class BinaryMask:
    """A mask as two boolean ``(1801, 3600)`` **north-up** arrays.

    ``valid``: the file holds a value (not -999); ``cloud``: valid and cloudy.
    """

    valid: np.ndarray
    cloud: np.ndarray


def binarise(values: np.ndarray, threshold: float | None) -> BinaryMask:
    """Split raw mask values into valid/cloud.

    ``threshold=None`` means a label file: cloud where ``value > 0`` (blue-channel numbers,
    or 0/1).  Otherwise cloud where ``value >= threshold``.
    """
    valid = values > INVALID + 0.5
    cloud = valid & ((values > 0) if threshold is None else (values >= threshold))
    return BinaryMask(valid, cloud)


def read_values(path: str | Path) -> np.ndarray:
    """The raw values of one mask file, float32 ``(1801, 3600)`` **north-up**, -999 invalid.

    Raises:
        MaskShapeError: the file's ``cloudmask`` is not 1801 x 3600 (the message names the file).
    """
    from ..netcdf import read_mask

    values = read_mask(path, north_up=True)
    if values.shape != (MAP_HEIGHT, MAP_WIDTH):
        raise MaskShapeError(f"{path}: mask shape {values.shape}, expected ({MAP_HEIGHT}, {MAP_WIDTH})")
    return values


def load_binary(path: str | Path, *, label: bool = False, threshold: float | None = None) -> BinaryMask:
    """Read one mask file north-up and binarise it.

    ``label=True``: a reference/label file, cloud where value > 0.  Otherwise a prediction:
    thresholded at :func:`file_threshold` (``threshold`` overrides the file's attribute).
    Raises :class:`MaskShapeError` when it is not 1801 x 3600 (:func:`read_values`).
    """
    from ..netcdf import read_attrs

    values = read_values(path)
    thr = None if label else file_threshold(read_attrs(path), threshold)
    return binarise(values, thr)


def select_days(spec: str | None, names: Iterable[str]) -> list[str]:
    """The day names that ``spec`` picks out of ``names``.

    ``spec`` is a comma-separated list of day names (``P01_day18``), day numbers (``18``) or
    inclusive ranges of day numbers (``16-20``), the numbers applying to every subphase;
    None or empty picks every name.

    Raises:
        ValueError: an item is neither a name, a number nor a range.
    """
    names = list(names)
    if not spec:
        return names
    numbers: set[int] = set()
    exact: set[str] = set()
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        if day_name(item) is not None:
            exact.add(day_name(item) or "")
        elif re.fullmatch(r"\d+", item):
            numbers.add(int(item))
        elif re.fullmatch(r"\d+-\d+", item):
            lo, hi = map(int, item.split("-"))
            numbers.update(range(lo, hi + 1))
        else:
            raise ValueError(f"--days: {item!r} is not a day name (P01_day18), number (18) or range (16-20)")
    return [n for n in names if n in exact or int(n.rsplit("day", 1)[1]) in numbers]
