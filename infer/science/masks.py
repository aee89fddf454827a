"""Mask files as science inputs: finding them, naming their day, and binarising them.

Used by ``cm-eval``, ``cm-stats`` and ``cm-view``.  Three kinds of file share one layout
(docs/science.md): this package's output (probabilities or 0/1, with a ``threshold``
attribute), the original's ``reference/`` masks (0/1) and the human ``labels/`` (blue-channel
numbers, > 0 = cloud).  A day is named ``P01_day01`` whatever the file calls it
(``cloudmask_P01_day01.ncdf``, ``cloudmask_P01day01.ncdf``, ``P01day01.jpeg``,
``P01_day01_zequat.jpg``).
"""

from __future__ import annotations

import math
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

_DAY = re.compile(r"([^\W\d_]+\d+)_?day(\d+)", re.IGNORECASE)
"""A subphase (letters, any script, then digits), ``day`` or ``_day``, the day number."""


def day_name(path: str | Path) -> str | None:
    """Canonical day name (``P01_day01``) found in a file name, or None if it holds none.
    ASCII letters of the subphase are upper-cased; other letters are kept (``Pé01_day01``)."""
    m = _DAY.search(Path(path).name)
    if m is None:
        return None
    subphase = "".join(c.upper() if c.isascii() else c for c in m.group(1))
    return f"{subphase}_day{int(m.group(2)):02d}"


def index_by_day(
    roots: Iterable[str | Path], suffixes: tuple[str, ...], duplicates: list[str] | None = None
) -> dict[str, Path]:
    """``{day name: path}`` of the files with one of ``suffixes`` under the roots (files or folders).

    Searched recursively; hidden files and files without a day name are skipped.  When two
    files name the same day, the first in sorted order wins; with ``duplicates``, one line
    per file left out, naming both, is appended to it.
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
                first = found.setdefault(name, p)
                if first != p and duplicates is not None:
                    duplicates.append(f"{p}: the same day {name} as {first}; left out, scored once")
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


def find_masks(*roots: str | Path, duplicates: list[str] | None = None) -> dict[str, Path]:
    """``{day name: mask file}`` of the NetCDF masks (``.ncdf``/``.nc``) under the roots;
    ``duplicates`` collects one line per second mask of a day (:func:`index_by_day`)."""
    return index_by_day(roots, MASK_SUFFIXES, duplicates)


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


class MaskValueError(ValueError):
    """A mask file whose values no writer of masks makes (NaN, 5.0, -5); the message names it."""


VALUE_TOLERANCE = 1e-6
"""Rounding allowed outside [0, 1] (a float32 sigmoid gives 1.0000001)."""


def value_problem(values: np.ndarray, *, label: bool = False) -> str | None:
    """Why raw mask values cannot be a mask, or None.  Allowed: the invalid fill -999 (within
    0.5) and [0, 1] within :data:`VALUE_TOLERANCE`, or for ``label=True`` any number >= 0 (the
    labels' blue-channel numbers).  NaN, infinities and anything else are refused."""
    fill = np.abs(values - INVALID) <= 0.5
    top = np.inf if label else 1.0 + VALUE_TOLERANCE
    bad = ~(fill | ((values >= -VALUE_TOLERANCE) & (values <= top)))
    n_bad = int(np.count_nonzero(bad))
    if n_bad == 0:
        return None
    n_nan = int(np.count_nonzero(np.isnan(values)))
    odd = values[bad & ~np.isnan(values)]
    parts = [f"{n_nan} NaN"] if n_nan else []
    if odd.size:
        kind = "below 0" if label else "outside [0, 1]"
        parts.append(f"{odd.size} {kind} ({float(odd.min()):g} to {float(odd.max()):g})")
    return f"{' and '.join(parts)} of {values.size} values, not the invalid fill -999: not a cloud mask, left out"


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


def read_values(path: str | Path, *, label: bool = False) -> np.ndarray:
    """The values of one mask file, float32 ``(1801, 3600)`` **north-up**, -999 invalid,
    checked (:func:`value_problem`: a prediction in [0, 1], a label >= 0).

    Raises:
        MaskShapeError: the file's ``cloudmask`` is not 1801 x 3600 (the message names the file).
        MaskValueError: NaN or values out of range (the message names the file).
    """
    from ..netcdf import read_mask

    values = read_mask(path, north_up=True, raw=True)
    if values.shape != (MAP_HEIGHT, MAP_WIDTH):
        raise MaskShapeError(f"{path}: mask shape {values.shape}, expected ({MAP_HEIGHT}, {MAP_WIDTH})")
    problem = value_problem(values, label=label)
    if problem is not None:
        raise MaskValueError(f"{path}: {problem}")
    values[values <= INVALID + 0.5] = INVALID
    return values


def load_binary(path: str | Path, *, label: bool = False, threshold: float | None = None) -> BinaryMask:
    """Read one mask file north-up and binarise it.

    ``label=True``: a reference/label file, cloud where value > 0.  Otherwise a prediction:
    thresholded at :func:`file_threshold` (``threshold`` overrides the file's attribute).
    Raises :class:`MaskShapeError` when it is not 1801 x 3600 (:func:`read_values`).
    """
    from ..netcdf import read_attrs

    values = read_values(path, label=label)
    thr = None if label else file_threshold(read_attrs(path), threshold)
    return binarise(values, thr)


REFERENCE_KINDS = ("labels", "binary", "probability")


def reference_kind(values: np.ndarray, attrs: dict[str, Any]) -> tuple[str, float | None]:
    """What a reference file holds, from its attributes and values (checked, -999 invalid):

    * ``("binary", None)``: every valid value is 0 or 1 (the original's masks, ``--binary``);
    * ``("probability", t)``: ``output_type`` "probability" or a ``threshold`` attribute ``t``
      in [0, 1], values in [0, 1] (``cm-infer``'s output): cloud where ``value >= t``;
    * ``("labels", None)``: whole numbers >= 0, some above 1, no ``threshold`` (the
      blue-channel numbers of ``labels/``): cloud where ``value > 0``.

    Raises ValueError (without the file name) when it cannot tell: values in (0, 1) without a
    usable ``threshold``, fractions above 1, a probability above 1.
    """
    valid = values[values > INVALID + 0.5]
    if bool(np.all((valid == 0.0) | (valid == 1.0))):
        return "binary", None
    raw_thr = attrs.get("threshold")
    try:
        thr = float(raw_thr) if raw_thr is not None else None
    except (TypeError, ValueError):
        thr = None
    if thr is not None and not (math.isfinite(thr) and 0.0 <= thr <= 1.0):
        thr = None
    above_one = bool(np.any(valid > 1.0 + VALUE_TOLERANCE))
    if str(attrs.get("output_type", "")) == "probability" or raw_thr is not None:
        if thr is None:
            raise ValueError(f"a probability reference without a usable 'threshold' attribute ({raw_thr!r})")
        if above_one:
            raise ValueError("a probability reference (it has a 'threshold') with values above 1")
        return "probability", thr
    if above_one and bool(np.all(valid == np.round(valid))):
        return "labels", None
    raise ValueError(
        "cannot tell labels (whole numbers > 0 = cloud), 0/1 masks and probabilities apart: "
        "values that are neither 0/1 nor whole numbers, and no 'threshold' attribute"
    )


def load_reference(path: str | Path) -> tuple[BinaryMask, str]:
    """Read a reference file north-up and binarise it by its kind (:func:`reference_kind`):
    labels at ``> 0``, 0/1 masks as they are, probabilities at their own ``threshold``.

    Returns the mask and a short description of the kind (``"probability >= 0.47"``).
    Raises :class:`MaskShapeError` or :class:`MaskValueError` naming the file.
    """
    from ..netcdf import read_attrs

    values = read_values(path, label=True)
    try:
        kind, thr = reference_kind(values, read_attrs(path))
    except ValueError as exc:
        raise MaskValueError(f"{path}: {exc}; not used as a reference") from None
    if kind == "probability":
        return binarise(values, thr), f"probability >= {thr:g}"
    return binarise(values, None), kind


MAX_DAY_NUMBER = 9999
"""Largest day number ``--days`` takes (a subphase has a few dozen days)."""


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
    ranges: list[tuple[int, int]] = []
    exact: set[str] = set()
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        if day_name(item) is not None:
            exact.add(day_name(item) or "")
        elif re.fullmatch(r"\d+(-\d+)?", item):
            lo, _, hi = item.partition("-")
            first, last = int(lo), int(hi or lo)
            if last > MAX_DAY_NUMBER or first > last:
                raise ValueError(
                    f"--days: {item!r}: day numbers go from 1 to {MAX_DAY_NUMBER}, a range from low to high (16-20)"
                )
            ranges.append((first, last))  # kept as bounds: a range is never listed out
        else:
            raise ValueError(f"--days: {item!r} is not a day name (P01_day18), number (18) or range (16-20)")

    def picked(name: str) -> bool:
        number = int(name.rsplit("day", 1)[1])
        return name in exact or any(lo <= number <= hi for lo, hi in ranges)

    return [n for n in names if picked(n)]
