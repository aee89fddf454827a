"""Cloud-mask NetCDF files: writing (atomically) and reading.

The layout is the original's, which users' scripts already read (docs/spec.md §5):
NetCDF4-classic, dimensions ``y`` = 1801 and ``x`` = 3600, ``longitude(x)`` and
``latitude(y)`` float32, ``cloudmask(y, x)`` float32 with zlib; rows are **south-up**
(row 0 = latitude -90, flipped relative to the JPEG); -999 = invalid, otherwise the cloud
probability, or 0/1 once thresholded.  On top of that, CF-1.8 attributes.

In memory this package always works north-up; the flip happens here and only here.

**Time.** Every mask written carries four *scalar* coordinate variables (CF 1.8 section 5.7),
listed in the ``coordinates`` attribute of ``cloudmask``: ``ls`` (solar longitude, degree),
``mars_year``, ``map_name`` (char) and ``time`` = ``360 * mars_year + ls`` (degree).  Mars has no
CF calendar, so ``time`` is not a date but a monotonic Ls-based value; it carries no
``standard_name``/``axis``, which would claim CF time units.  Scalar coordinates keep the
original's 2-D ``cloudmask(y, x)`` that existing scripts read, and let xarray stack a run::

    xr.open_mfdataset("OUT/*/*/cloudmasks/cloudmask_*.ncdf", combine="nested",
                      concat_dim="time", coords=["ls", "mars_year", "map_name"], compat="override")

(``time`` becomes the index; naming the ``coords`` keeps this working under xarray's new
combine defaults).  Older files and the labels have no such variables: :func:`read_time_coords`
falls back to the global attributes.

**Names.** ``.ncdf`` stays the default; ``.nc`` (CF 2.1) passes the IOOS compliance-checker's
CF 1.8 suite with no high-priority failure.  Every reader takes both (:data:`MASK_SUFFIXES`).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

from .geometry import INVALID, MAP_HEIGHT, MAP_WIDTH, latitudes_south_up, longitudes

CONVENTIONS = "CF-1.8"

NETCDF_LOCK = threading.RLock()
"""Held around every netCDF4 call of this module: netCDF-C and HDF5 are not thread-safe and
netCDF4-python releases the GIL, so two threads writing masks at once crashed the process
(segmentation fault).  Other modules that open NetCDF files in threads should hold it too."""

TITLE = "Water-ice cloud mask of a Mars Daily Global Map (MRO MARCI)"
REFERENCES = (
    "Mengwall & Guzewich 2022, Icarus 115252, doi:10.1016/j.icarus.2022.115252 (the original model); "
    "MDGMs: doi:10.7910/DVN/U3766S"
)
INSTITUTION = "maps: MRO MARCI (Malin Space Science Systems); mask: mars-cloudmask"


def default_global_attrs() -> dict[str, str]:
    """CF global attributes every written mask carries unless the caller gives its own."""
    from datetime import datetime, timezone

    from . import __version__

    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "title": TITLE,
        "institution": INSTITUTION,
        "source": f"mars-cloudmask {__version__}",
        "history": f"{now} written by mars-cloudmask {__version__}",
        "references": REFERENCES,
    }


def _clean_attr(value: Any) -> Any:
    """NetCDF attribute values: str, numbers, or 1-D numeric arrays; None is dropped."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return np.asarray(value)
    return str(value)


# --------------------------------------------------------------------------- file names
DEFAULT_SUFFIX = ".ncdf"
"""The original's mask suffix, kept as the default so existing readers keep working."""
MASK_SUFFIXES = (".ncdf", ".nc")
"""Suffixes every reader accepts (``.nc`` is CF 2.1's recommendation; ``cm-infer --suffix .nc``)."""
MASK_PREFIX = "cloudmask_"
COMPOSITE_PREFIX = "background_"
"""File names of the background composites ``cm-infer`` writes start with this (mask finders skip them)."""
COMPOSITE_SUFFIX = ".nc"


def composite_file_name(subphase: str) -> str:
    """``background_<subphase>.nc``: the composite of a subphase (:mod:`.background`), beside
    its ``cloudmasks/`` folder."""
    return f"{COMPOSITE_PREFIX}{subphase}{COMPOSITE_SUFFIX}"


def is_composite_file(path: str | Path) -> bool:
    """True for a file named like a composite of :func:`composite_file_name`."""
    name = Path(path).name
    return name.startswith(COMPOSITE_PREFIX) and name.lower().endswith(COMPOSITE_SUFFIX)


def mask_file_name(map_name: str, suffix: str = DEFAULT_SUFFIX) -> str:
    """``cloudmask_<map name><suffix>``; ``suffix`` must be one of :data:`MASK_SUFFIXES`."""
    if suffix not in MASK_SUFFIXES:
        raise ValueError(f"mask suffix {suffix!r}: expected one of {', '.join(MASK_SUFFIXES)}")
    return f"{MASK_PREFIX}{map_name}{suffix}"


def is_mask_file(path: str | Path) -> bool:
    """True for a visible file name ending in ``.ncdf`` or ``.nc`` (any case); temporaries are
    hidden.  Background composites ``cm-infer`` writes beside the masks
    (``background_<subphase>.nc``, :func:`is_composite_file`) are not masks."""
    path = Path(path)
    return not path.name.startswith(".") and path.suffix.lower() in MASK_SUFFIXES and not is_composite_file(path)


def find_mask_files(folder: str | Path) -> list[Path]:
    """The mask files (:func:`is_mask_file`) under ``folder``, searched recursively, sorted;
    a file given as ``folder`` is returned alone.  Raises FileNotFoundError when it is neither."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such file or folder")
    return sorted(p for p in folder.rglob("*") if is_mask_file(p) and p.is_file())


def map_name_of(path: str | Path) -> str:
    """The map name in a mask file name: ``cloudmask_P01_day01.nc`` -> ``P01_day01``."""
    stem = Path(path).name
    for suffix in MASK_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return stem[len(MASK_PREFIX) :] if stem.startswith(MASK_PREFIX) else stem


# --------------------------------------------------------------------------- time coordinates
TIME_COORDS = ("time", "ls", "mars_year", "map_name")
"""Scalar coordinate variables of every mask this package writes (see :func:`time_values`)."""
MARS_YEAR_FILL = np.int32(-2147483647)
"""``mars_year`` of a mask whose year is unknown (netCDF's default int fill).  Files written
before used -1, which made a negative Mars year (before MY 1, 1955) read back as unknown; the
reader takes the fill value each file declares."""
NAME_LENGTH = 64
"""Characters kept of a map name (``map_name`` is a char array in the classic model)."""


def time_values(ls: float | None, mars_year: int | None) -> float:
    """Mars time of a map as cumulative solar longitude, degrees: ``360 * mars_year + ls``.

    Mars has no CF calendar, so ``time`` is not a CF date: it is an Ls-based number that grows
    monotonically across Mars years (MY 28, Ls 132.5 -> 10212.5), which sorts and stacks a run in
    time.  NaN when Ls or the Mars year is unknown.
    """
    if ls is None or mars_year is None:
        return float("nan")
    ls, year = float(ls), float(mars_year)
    if not (np.isfinite(ls) and np.isfinite(year)):
        return float("nan")
    return 360.0 * year + ls


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _write_time_coords(ds: Any, ls: float | None, mars_year: int | None, name: str) -> None:
    """Scalar coordinates ``time``, ``ls``, ``mars_year``, ``map_name`` (CF 5.7 scalar coordinates)."""
    t = ds.createVariable("time", "f8", (), fill_value=np.float64(np.nan))
    t.setncatts(
        {
            "long_name": "Mars time as cumulative solar longitude (360 x Mars year + Ls)",
            "units": "degree",
            "comment": "Mars has no CF calendar: this is not a date but an Ls-based value that grows "
            "monotonically across Mars years; NaN when Ls or the Mars year is unknown",
        }
    )
    t.assignValue(time_values(ls, mars_year))
    v = ds.createVariable("ls", "f8", (), fill_value=np.float64(np.nan))  # f8: Ls as the table gives it
    v.setncatts(
        {
            "long_name": "solar longitude Ls of the map",
            "units": "degree",
            "valid_range": np.array([0.0, 360.0], dtype=np.float64),
        }
    )
    v.assignValue(np.float64(ls) if ls is not None else np.float64(np.nan))
    y = ds.createVariable("mars_year", "i4", (), fill_value=MARS_YEAR_FILL)
    y.setncatts({"long_name": "Mars year (Clancy et al. numbering)", "units": "1"})
    y.assignValue(np.int32(mars_year) if mars_year is not None else MARS_YEAR_FILL)
    ds.createDimension("name_strlen", NAME_LENGTH)
    n = ds.createVariable("map_name", "S1", ("name_strlen",))
    n.setncatts({"long_name": "name of the map (subphase and day)", "_Encoding": "utf-8"})
    n.set_auto_chartostring(False)
    n[:] = name_chars(name)


def name_chars(name: str) -> np.ndarray:
    """``map_name``'s char array: the name as UTF-8, cut to :data:`NAME_LENGTH` bytes at a
    character boundary (a non-ASCII name stays whole or loses whole characters), NUL-padded."""
    data = name.encode("utf-8", "surrogateescape")[:NAME_LENGTH].decode("utf-8", "ignore").encode("utf-8")
    return np.frombuffer(data.ljust(NAME_LENGTH, b"\0"), dtype="S1").copy()


def clipped_south_up(mask: np.ndarray) -> np.ndarray:
    """File values of a **north-up** mask: rows flipped to south-up, valid values clipped to
    [0, 1] (a float32 sigmoid can return 1.0000001, outside ``valid_range``), NaN and values
    <= -999 set to -999.  Labels (blue-channel numbers) are not written through here."""
    mask = np.asarray(mask, dtype=np.float32)
    valid = np.isfinite(mask) & (mask > INVALID + 0.5)
    out = np.where(valid, np.clip(mask, 0.0, 1.0), np.float32(INVALID)).astype(np.float32)
    return np.ascontiguousarray(out[::-1])


def unopenable_name(path: str | Path) -> str | None:
    """Why netCDF could not open a file at ``path`` once written, or None.  HDF5 (under
    netCDF4) fails to open a file whose path holds a backslash ("HDF error"), so such a mask
    would be written, said done, unreadable, and redone on every rerun."""
    if "\\" in str(path):
        return (
            f"{path}: a backslash in the path (a map or folder name): netCDF cannot open such a file; "
            "rename the map or folder"
        )
    return None


def _only_zero_one(mask: np.ndarray) -> bool:
    """True when every valid value (finite, not -999) of ``mask`` is 0 or 1 (after clipping)."""
    valid = np.isfinite(mask) & (mask > INVALID + 0.5)
    v = np.clip(mask[valid], 0.0, 1.0)
    return bool(np.all((v == 0.0) | (v == 1.0)))


def mask_threshold(path: Path, mask: np.ndarray, in_attrs: Any, given: float | None, *, binary: bool) -> float | None:
    """The threshold :func:`write_mask` records: ``given``, else ``in_attrs`` (the
    ``threshold`` attribute passed); None only for a 0/1 mask.  Raises ValueError naming
    ``path`` for a value outside [0, 1], two different values, or a probability mask without one."""
    values = [v for v in (given, in_attrs) if v is not None]
    for v in values:
        x = _number(v)
        if x is None or not 0.0 <= x <= 1.0:
            raise ValueError(f"{path}: threshold {v!r} is not a number in [0, 1]")
    if len(values) == 2 and float(values[0]) != float(values[1]):
        raise ValueError(f"{path}: threshold={given!r} but attrs['threshold']={in_attrs!r}; give one")
    if values:
        return float(values[0])
    if binary or _only_zero_one(np.asarray(mask, dtype=np.float32)):
        return None
    raise ValueError(
        f"{path}: a probability mask needs its cloud threshold (write_mask(..., threshold=model.info.threshold)); "
        "without one readers would guess 0.912"
    )


@contextlib.contextmanager
def dataset_in_memory(path: Path, format: Literal["NETCDF4", "NETCDF4_CLASSIC"] = "NETCDF4") -> Iterator[Any]:
    """A netCDF4 Dataset built in memory, written to ``path`` atomically when the block ends.

    In memory, the HDF library never holds a descriptor to the disk, so a failure (a full
    disk) is one OSError from Python's write and leaves no open, deleted temporary behind; on
    any error nothing is left at ``path``.  Errors pass through unchanged (OSError,
    RuntimeError from netCDF4): each writer words them for its file."""
    import netCDF4

    with NETCDF_LOCK:
        # a unique name: HDF5 tells in-memory files apart by name
        ds = netCDF4.Dataset(f"{path.name}.{uuid.uuid4().hex}", "w", format=format, memory=1 << 20)
        try:
            yield ds
        except BaseException:
            try:
                ds.close()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise
        image = bytes(ds.close())
    from .atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(image)
        f.flush()


def write_mask(
    path: str | Path,
    mask: np.ndarray,
    attrs: Mapping[str, Any] | None = None,
    *,
    binary: bool = False,
    complevel: int = 1,
    threshold: float | None = None,
) -> Path:
    """Write one cloud mask, atomically: built in memory, written to a temporary file in the
    same folder, fsynced, then renamed.

    Args:
        path: the ``.ncdf`` (default layout) or ``.nc`` file to create (its folder is created
            if missing).
        mask: float32 ``(1801, 3600)`` **north-up**; -999 invalid, else probability or 0/1
            (clipped to [0, 1]; NaN becomes -999).
        attrs: global attributes (Ls, Mars year, source map, model, threshold...); ``None``
            values are left out.  ``solar_longitude`` (or ``ls``), ``mars_year`` and
            ``map_name`` (else the name in ``path``) also become the scalar coordinates
            ``ls``, ``mars_year``, ``map_name`` and ``time`` (:func:`time_values`).
        binary: the values are thresholded 0/1 (changes ``long_name`` and ``valid_range``).
        threshold: the model's cloud threshold in [0, 1] (``value >= threshold`` is cloud),
            recorded as the ``threshold`` attribute (``attrs["threshold"]`` does the same).
            Required for a probability mask: without it every reader would guess 0.912
            (docs/spec.md §3) and its figures would differ from ``cm-infer``'s.  A mask whose
            valid values are all 0 or 1 reads the same at any threshold and needs none.
        complevel: zlib level, with the shuffle filter.  Measured on a real probability mask
            (``python -m mars_cloudmask.benchmarks.netcdf_settings``): level 1 writes in 0.47 s and
            9.8 MB, level 4 in 0.58 s and 9.6 MB, level 9 in 5.5 s and 9.4 MB; without shuffle every
            level is 12.1-12.4 MB.  Level 1 is the default: 2 % larger for a fifth less time.

    Returns:
        The final path.  No partial file is ever left at ``path`` or beside it, and no file
        stays open after a failure.

    Raises:
        ValueError: the file name holds a backslash (:func:`unopenable_name`), the mask has
            the wrong shape, the threshold is not a number in [0, 1] (or
            differs from ``attrs["threshold"]``), or a probability mask has no threshold.
        OSError: the file cannot be written (disk full...); the message names ``path``.
    """


    path = Path(path)
    problem = unopenable_name(path)
    if problem is not None:
        raise ValueError(problem)
    if mask.shape != (MAP_HEIGHT, MAP_WIDTH):
        raise ValueError(f"mask shape {mask.shape}, expected ({MAP_HEIGHT}, {MAP_WIDTH})")
    attrs = dict(attrs or {})
    thr = mask_threshold(path, mask, attrs.get("threshold"), threshold, binary=binary)
    if thr is not None:
        attrs["threshold"] = thr
    ls = _number(attrs.get("solar_longitude", attrs.get("ls")))
    year = _number(attrs.get("mars_year"))
    name = str(attrs.get("map_name") or map_name_of(path))
    data = clipped_south_up(mask)
    try:
        with dataset_in_memory(path, "NETCDF4_CLASSIC") as ds:
            _fill_dataset(
                ds,
                data,
                attrs,
                binary=binary,
                complevel=complevel,
                ls=ls,
                mars_year=None if year is None else int(year),
                name=name,
            )
    except (OSError, RuntimeError) as exc:
        err = OSError(f"{path}: cannot write the mask ({' '.join(str(exc).split()) or type(exc).__name__})")
        err.errno = getattr(exc, "errno", None)  # callers tell a full disk from other faults
        raise err from exc
    return path


def add_lon_lat(ds: Any, lon_dim: str, lat_dim: str) -> None:
    """The ``longitude(lon_dim)`` and ``latitude(lat_dim)`` coordinates of every file this package
    writes (float32, CF attributes; latitude ascending from -90: rows south-up)."""
    lon = ds.createVariable("longitude", "f4", (lon_dim,))
    lon.setncatts({"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude", "axis": "X"})
    lon[:] = longitudes()
    lat = ds.createVariable("latitude", "f4", (lat_dim,))
    lat.setncatts({"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude", "axis": "Y"})
    lat[:] = latitudes_south_up()


def _fill_dataset(
    ds: Any,
    data: np.ndarray,
    attrs: Mapping[str, Any],
    *,
    binary: bool,
    complevel: int,
    ls: float | None,
    mars_year: int | None,
    name: str,
) -> None:
    """Dimensions, coordinates, the ``cloudmask`` variable (``data`` already south-up) and attributes."""
    ds.createDimension("x", MAP_WIDTH)
    ds.createDimension("y", MAP_HEIGHT)
    add_lon_lat(ds, "x", "y")
    _write_time_coords(ds, ls, mars_year, name)
    var = ds.createVariable(
        "cloudmask", "f4", ("y", "x"), zlib=True, complevel=complevel, shuffle=True, fill_value=np.float32(INVALID)
    )
    var_attrs: dict[str, Any] = (
        {
            "standard_name": "cloud_binary_mask",
            "flag_values": np.array([0.0, 1.0], dtype=np.float32),
            "flag_meanings": "clear cloud",
        }
        if binary
        else {}
    )
    var.setncatts(
        {
            **var_attrs,
            "long_name": "water-ice cloud mask (1 = cloud, 0 = clear)" if binary else "water-ice cloud probability",
            "units": "1",
            "missing_value": np.float32(INVALID),
            "valid_range": np.array([0.0, 1.0], dtype=np.float32),
            "coordinates": "latitude longitude " + " ".join(TIME_COORDS),
            "comment": "rows are south-up (row 0 = latitude -90); -999 = no data, "
            "outside the polar bounds, or invalid pixel",
        }
    )
    var.set_auto_maskandscale(False)
    var[:, :] = data
    ds.setncattr("Conventions", CONVENTIONS)
    for key, value in {**default_global_attrs(), **attrs}.items():
        if value is not None:
            ds.setncattr(key, _clean_attr(value))


def check_mask_file(path: str | Path) -> str | None:
    """None when ``path`` is a complete, readable mask of shape ``(1801, 3600)``, else one line
    naming the file and what is wrong (missing, 0 bytes, not NetCDF or truncated, no
    ``cloudmask`` variable, wrong shape, unreadable data).  Reads the whole variable, so a file
    cut short inside its compressed chunks is caught too (about 0.1 s a mask)."""
    import netCDF4

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"{path}: missing ({exc.strerror or exc})"
    if not path.is_file():
        return f"{path}: not a file"
    if size == 0:
        return f"{path}: 0 bytes (an interrupted write?)"
    try:
        with NETCDF_LOCK, netCDF4.Dataset(path) as ds:
            var = ds.variables.get("cloudmask")
            if var is None:
                return f"{path}: no 'cloudmask' variable"
            if var.shape != (MAP_HEIGHT, MAP_WIDTH):
                return f"{path}: cloudmask shape {tuple(var.shape)}, expected ({MAP_HEIGHT}, {MAP_WIDTH})"
            var.set_auto_maskandscale(False)
            var[:, :]
    except Exception as exc:  # noqa: BLE001 - any failure to read makes the file bad
        msg = " ".join(str(exc).split()) or type(exc).__name__
        return f"{path}: not a readable NetCDF mask, truncated or corrupt ({msg})"
    return None


def read_mask(
    path: str | Path, *, north_up: bool = True, threshold: float | None = None, raw: bool = False
) -> np.ndarray:
    """Read the ``cloudmask`` of a NetCDF file (this package's, the original's or a label).

    Args:
        path: the ``.ncdf`` file.
        north_up: flip the rows back to the JPEG's orientation (row 0 = latitude +90).
        threshold: if given, valid values become 1.0 where ``value >= threshold`` else 0.0
            (labels hold blue-channel numbers > 0 for cloud: use a tiny threshold for them).
        raw: the values as stored (NaN, 5.0 or -1e30 kept), only flipped; ``threshold`` is
            then ignored.  For readers that check the values (``mars_cloudmask.infer.science.masks``).

    Returns:
        float32 ``(1801, 3600)``, -999 where invalid.
    """
    import netCDF4

    with NETCDF_LOCK, netCDF4.Dataset(path) as ds:
        var = ds.variables["cloudmask"]
        var.set_auto_maskandscale(False)
        data = np.asarray(var[:, :], dtype=np.float32)
    if raw:
        return np.ascontiguousarray(data[::-1]) if north_up else data
    invalid = ~(data > INVALID + 0.5) | ~np.isfinite(data)
    if threshold is not None:
        data = (data >= threshold).astype(np.float32)
    data[invalid] = INVALID
    return np.ascontiguousarray(data[::-1]) if north_up else data


def read_mask_xarray(path: str | Path, threshold: float | None = None):
    """Read a mask as an ``xarray.DataArray`` named ``cloudmask``, **north-up**, NaN where invalid.

    Dimensions ``(latitude, longitude)`` with float32 coordinates in degrees (latitude
    decreasing from +90, the JPEG's orientation); the file's global attributes become
    ``attrs``.  With ``threshold``, valid values become 1.0 where ``value >= threshold`` else 0.0.
    Works on this package's files, the original's and the labels (which carry no CF attributes).
    Scalar coordinates ``time``, ``ls``, ``mars_year``, ``map_name`` as :func:`read_time_coords`
    gives them (NaN / -1 when the file does not say).
    """
    import xarray as xr

    from .geometry import latitudes_south_up

    data = read_mask(path, north_up=True, threshold=threshold)
    data[data == INVALID] = np.nan
    attrs = read_attrs(path)
    if threshold is not None:
        attrs["threshold_applied"] = float(threshold)
    when = read_time_coords(path)
    scalar = {
        "time": (
            (),
            when.time,
            {"long_name": "Mars time as cumulative solar longitude (360 x Mars year + Ls)", "units": "degree"},
        ),
        "ls": (
            (),
            np.float64(np.nan if when.ls is None else when.ls),
            {"long_name": "solar longitude Ls", "units": "degree"},
        ),
        "mars_year": (
            (),
            np.int32(-1 if when.mars_year is None else when.mars_year),
            {"long_name": "Mars year", "units": "1"},
        ),
        "map_name": ((), when.map_name, {"long_name": "name of the map"}),
    }
    return xr.DataArray(
        data,
        dims=("latitude", "longitude"),
        coords={
            **scalar,
            "latitude": (
                "latitude",
                latitudes_south_up()[::-1].copy(),
                {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"},
            ),
            "longitude": (
                "longitude",
                longitudes(),
                {"units": "degrees_east", "standard_name": "longitude", "axis": "X"},
            ),
        },
        name="cloudmask",
        attrs=attrs,
    )


def read_attrs(path: str | Path) -> dict[str, Any]:
    """The global attributes of a mask file."""
    import netCDF4

    with NETCDF_LOCK, netCDF4.Dataset(path) as ds:
        return {k: ds.getncattr(k) for k in ds.ncattrs()}


@dataclass(frozen=True)
class TimeCoords:
    """When a mask was taken: Ls (deg), Mars year, the map name and :func:`time_values`."""

    ls: float | None
    mars_year: int | None
    map_name: str
    time: float


def read_time_coords(path: str | Path) -> TimeCoords:
    """Ls, Mars year and map name of a mask file: its scalar coordinates when present, else its
    ``solar_longitude`` / ``ls`` and ``mars_year`` global attributes (older files), else None;
    the name from ``map_name``, else the file name.  The original's masks and the labels carry
    none of these (their Ls is in ``_ls.txt`` tables)."""
    import netCDF4

    with NETCDF_LOCK, netCDF4.Dataset(path) as ds:
        attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
        variables = ds.variables

        def scalar(name: str) -> float | None:
            """The variable's value; None when absent, not a number, or its declared _FillValue."""
            if name in variables and variables[name].ndim == 0:
                var = variables[name]
                var.set_auto_maskandscale(False)
                value = _number(var.getValue())
                fill = _number(getattr(var, "_FillValue", None))
                return None if value is None or (fill is not None and value == fill) else value
            return None

        ls = scalar("ls")
        year = scalar("mars_year")
        name = None
        if "map_name" in variables:
            var = variables["map_name"]
            var.set_auto_chartostring(False)
            name = bytes(np.asarray(var[:]).tobytes()).rstrip(b"\0 ").decode("utf-8", "replace") or None
    if ls is None:
        ls = _number(attrs.get("solar_longitude", attrs.get("ls")))
    if year is None:
        year = _number(attrs.get("mars_year"))
    year_int = None if year is None else int(year)
    name = name or str(attrs.get("map_name") or map_name_of(path))
    return TimeCoords(ls, year_int, name, time_values(ls, year_int))
