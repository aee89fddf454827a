"""The pure core of ``cm-label``: edit arrays, labels, safe paths, and the label writer.

An **edit** is uint8 ``(1801, 3600)`` **north-up** (row 0 = latitude +90, the JPEG's rows):
:data:`CLEAR` 0, :data:`CLOUD` 1, :data:`NO_DATA` 2.  The page paints cloud and clear; pixels
that are invalid in the mask it started from stay invalid.

A **label** is what ``labels/P01`` holds (docs/spec.md §6, ``train_kit/data.py``): float32,
the map's blue data number where cloudy (at least 1, so a cloudy pixel is always > 0), 0 where
clear, -999 invalid; north-up in memory, **south-up on disk**.  A labelled folder is::

    list_ls.txt                        NAME MARS_YEAR LS, one row per day
    mdgms/NAME.jpeg                    the map the label was drawn on (north-up)
    cloudmask/cloudmask_NAME.ncdf      the label (rows south-up)
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..geometry import INVALID, MAP_HEIGHT, MAP_WIDTH

CLEAR = 0
CLOUD = 1
NO_DATA = 2
EDIT_SHAPE = (MAP_HEIGHT, MAP_WIDTH)
EDIT_BYTES = MAP_HEIGHT * MAP_WIDTH
"""Size in bytes of an edit as the page sends it (one byte a pixel, row-major, north-up)."""

LS_TABLE = "list_ls.txt"
MAPS_DIR = "mdgms"
LABELS_DIR = "cloudmask"

_DAY = re.compile(r"^([A-Za-z]+\d+)_day(\d+)")


class PathError(ValueError):
    """A path that would leave the folder it must stay in; the message names it."""


class EditError(ValueError):
    """An edit that is not ``EDIT_BYTES`` bytes of 0/1/2."""


# --------------------------------------------------------------------------- arrays
def edit_from_values(values: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Edit codes of a mask's values (float32 ``(1801, 3600)`` north-up, -999 invalid).

    ``threshold=None``: a label (cloud where > 0); else a prediction, cloud where ``>= threshold``.
    """
    values = np.asarray(values, dtype=np.float32)
    if values.shape != EDIT_SHAPE:
        raise EditError(f"mask shape {values.shape}, expected {EDIT_SHAPE}")
    valid = np.isfinite(values) & (values > INVALID + 0.5)
    cloud = valid & ((values > 0) if threshold is None else (values >= threshold))
    edit = np.full(EDIT_SHAPE, NO_DATA, dtype=np.uint8)
    edit[valid] = CLEAR
    edit[cloud] = CLOUD
    return edit


def label_from_edit(edit: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """The label (float32 north-up) of an edit over its map (uint8 ``(1801, 3600, 3)`` north-up):
    ``max(blue, 1)`` where cloud, 0 where clear, -999 where no data."""
    check_edit(edit)
    if rgb.shape[:2] != EDIT_SHAPE:
        raise EditError(f"map shape {rgb.shape[:2]}, expected {EDIT_SHAPE}")
    label = np.full(EDIT_SHAPE, np.float32(INVALID), dtype=np.float32)
    label[edit == CLEAR] = 0.0
    cloud = edit == CLOUD
    label[cloud] = np.maximum(rgb[..., 2][cloud], 1).astype(np.float32)
    return label


def check_edit(edit: np.ndarray) -> None:
    """Raise EditError unless ``edit`` is uint8 ``(1801, 3600)`` of 0/1/2."""
    if edit.shape != EDIT_SHAPE or edit.dtype != np.uint8:
        raise EditError(f"edit is {edit.dtype} {edit.shape}, expected uint8 {EDIT_SHAPE}")
    if int(edit.max(initial=0)) > NO_DATA:
        raise EditError(f"edit holds values other than {CLEAR}, {CLOUD}, {NO_DATA}")


def edit_from_bytes(body: bytes, base: np.ndarray) -> np.ndarray:
    """The edit the page sent (``EDIT_BYTES`` bytes, row-major north-up), with every pixel that
    is no-data in ``base`` kept no-data: the page cannot label where the mask had no data."""
    if len(body) != EDIT_BYTES:
        raise EditError(f"edit is {len(body)} bytes, expected {EDIT_BYTES} ({MAP_WIDTH} x {MAP_HEIGHT})")
    edit = np.frombuffer(body, dtype=np.uint8).reshape(EDIT_SHAPE).copy()
    check_edit(edit)
    edit[base == NO_DATA] = NO_DATA
    return edit


# --------------------------------------------------------------------------- names and paths
def label_name(map_name: str) -> str:
    """The day name in ``labels/P01`` style: ``P01_day01`` -> ``P01day01``; others unchanged."""
    return _DAY.sub(lambda m: f"{m.group(1)}day{m.group(2)}", map_name, count=1)


def safe_path(root: str | Path, relative: str | Path) -> Path:
    """``root / relative``, refused (PathError) unless it stays inside ``root``.

    Refused: an empty or absolute ``relative``, any ``..`` part, NUL bytes, and anything that
    resolves outside ``root`` through a symlink (the file itself or a folder on the way).
    """
    text = os.fspath(relative)
    if not text or "\x00" in text:
        raise PathError(f"{text!r}: empty or not a path")
    rel = Path(text)
    if rel.is_absolute() or text.startswith(("/", "\\")):
        raise PathError(f"{text}: absolute path refused (must be inside {root})")
    if any(part == ".." for part in re.split(r"[/\\]", text)):
        raise PathError(f"{text}: '..' refused (must stay inside {root})")
    base = Path(root).resolve()
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise PathError(f"{text}: leads outside {root} (a symlink?)")
    return base / rel


def ls_row(name: str, mars_year: int, ls: float) -> str:
    """One ``list_ls.txt`` row as ``labels/P01`` writes it: ``P01day01      28      132.500``."""
    return f"{name}      {int(mars_year)}      {float(ls):.3f}"


def update_ls_table(text: str, name: str, mars_year: int, ls: float) -> str:
    """``list_ls.txt`` text with the row of ``name`` replaced (or appended); other rows kept as they are."""
    lines = text.splitlines()
    row = ls_row(name, mars_year, ls)
    out, replaced = [], False
    for line in lines:
        parts = line.split()
        if parts and parts[0] == name:
            if not replaced:
                out.append(row)
                replaced = True
            continue
        out.append(line)
    if not replaced:
        while out and not out[-1].strip():
            out.pop()
        out.append(row)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- writing
@dataclass(frozen=True)
class LabelPaths:
    """Where one day's label goes in a labelled folder (all checked by :func:`safe_path`)."""

    root: Path
    name: str
    map: Path
    mask: Path
    table: Path


def label_paths(root: str | Path, name: str) -> LabelPaths:
    """The paths of day ``name`` in labelled folder ``root``; PathError for a name that leaves it."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise PathError(f"{name!r}: not a day name")
    return LabelPaths(
        Path(root),
        name,
        safe_path(root, f"{MAPS_DIR}/{name}.jpeg"),
        safe_path(root, f"{LABELS_DIR}/cloudmask_{name}.ncdf"),
        safe_path(root, LS_TABLE),
    )


def label_bytes(label: np.ndarray, attrs: dict[str, str] | None = None) -> bytes:
    """A label file's bytes: NetCDF4-classic, ``longitude(x)``, ``latitude(y)``, float32
    ``cloudmask(y, x)`` with rows **south-up** (``label`` is north-up), -999 invalid."""
    import netCDF4

    from ..netcdf import NETCDF_LOCK, add_lon_lat

    if label.shape != EDIT_SHAPE:
        raise EditError(f"label shape {label.shape}, expected {EDIT_SHAPE}")
    data = np.ascontiguousarray(np.asarray(label, dtype=np.float32)[::-1])
    with NETCDF_LOCK:
        ds = netCDF4.Dataset(f"label.{uuid.uuid4().hex}", "w", format="NETCDF4_CLASSIC", memory=1 << 20)
        try:
            ds.createDimension("x", MAP_WIDTH)
            ds.createDimension("y", MAP_HEIGHT)
            add_lon_lat(ds, "x", "y")
            var = ds.createVariable(
                "cloudmask", "f4", ("y", "x"), zlib=True, complevel=1, shuffle=True, fill_value=np.float32(INVALID)
            )
            var.setncatts(
                {
                    "long_name": "water-ice cloud label (blue data number where cloudy, 0 clear)",
                    "missing_value": np.float32(INVALID),
                    "comment": "rows are south-up (row 0 = latitude -90); -999 = no data or excluded",
                }
            )
            var.set_auto_maskandscale(False)
            var[:, :] = data
            for key, value in (attrs or {}).items():
                ds.setncattr(key, value)
        except BaseException:
            ds.close()
            raise
        return bytes(ds.close())


def _write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (a temporary of :func:`~..atomic.atomic_path`)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()


def save_label(
    root: str | Path,
    name: str,
    edit: np.ndarray,
    rgb: np.ndarray,
    map_path: str | Path,
    mars_year: int,
    ls: float,
) -> LabelPaths:
    """Write day ``name`` into labelled folder ``root`` (docs above): the map's bytes as
    ``mdgms/NAME.jpeg``, the label of ``edit`` over ``rgb`` as ``cloudmask/cloudmask_NAME.ncdf``,
    and its row in ``list_ls.txt`` (replaced or appended).

    All three are written to temporaries first and renamed only once every one is complete
    (the table first, then the label, then the map), so a failed write changes nothing.
    Raises PathError, EditError, OSError.
    """
    paths = label_paths(root, name)
    label = label_from_edit(edit, rgb)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    source_name = Path(map_path).name
    image = label_bytes(label, {"source_map": source_name, "history": f"{now} cm-label: {source_name} -> {name}"})
    source = Path(map_path).read_bytes()
    old = paths.table.read_text() if paths.table.is_file() else ""
    table = update_ls_table(old, name, mars_year, ls).encode()
    # exits run innermost first: the table is renamed first, the map last
    with atomic_path(paths.map) as tmp_map, atomic_path(paths.mask) as tmp_mask, atomic_path(paths.table) as tmp_table:
        _write_bytes(tmp_map, source)
        _write_bytes(tmp_mask, image)
        _write_bytes(tmp_table, table)
    return paths
