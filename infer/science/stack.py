"""A season cube: one chunked NetCDF-4 file ``(time, latitude, longitude)`` from a run's masks.

Layout of the cube (``cm-stack OUT --out cube.nc``):

* ``cloudmask(time, latitude, longitude)`` signed byte (CF 1.8 has no unsigned types), zlib:
  the cloud probability ``k / 250`` stored as ``k - 125`` (``scale_factor`` 0.004,
  ``add_offset`` 0.5, so xarray and netCDF4 unpack it to floats), -128 = ``_FillValue`` =
  invalid.  ``k`` is the largest step with ``float32(k / 250) <= p``, so thresholding the
  values :func:`iter_cube_masks` gives at any multiple of 0.004 (the default 0.912 = 228/250,
  and 0.5) gives exactly the pixels the float mask gives; 0/1 masks are stored exactly.
  (xarray's own unpacking computes ``s * 0.004 + 0.5`` in float32, within 1e-7 of ``k / 250``.)
* ``cloud(time, latitude, longitude)`` signed byte, zlib: the mask at the step's own threshold
  (1 cloud, 0 clear, -128 invalid), computed from the float values, so ``cm-stats CUBE`` gives
  the folder's numbers at thresholds that are not multiples of 0.004 (the shipped model's 0.47:
  the packed probability alone put 12,280 pixels of 115 masks on the wrong side).  Written only
  for such steps: where the threshold is on the grid (0.912, 0/1 masks) it is all -128 and
  its chunks are never written, so it costs no bytes;
* rows are **south-up** like the mask files (``latitude`` ascending from -90);
* chunks ``(time_chunk, 120, 240)`` (16 days x 12 x 24 degrees): a time series at a point
  reads one chunk per 16 days, a single day reads 120 chunks;
* coordinates ``time`` (``360 * mars_year + ls``, degree, as in each mask), ``ls``,
  ``mars_year``, ``map_name``; per step ``source`` (the mask file, relative to the run folder)
  and ``threshold`` (the mask's cloud threshold, NaN for 0/1 masks without one);
* steps sorted by ``time`` then name.

The IOOS compliance-checker's only high-priority CF 1.8 complaint is section 5.1: ``time`` has
no CF time units, because Mars has no CF calendar (see ``infer/netcdf.py``).

The build streams: ``time_chunk`` masks at most are held (about 6.5 MB each as uint8) whatever
the number of masks.  :func:`iter_cube_masks` reads a cube back as the masks it was built from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np

from ..geometry import INVALID, MAP_HEIGHT, MAP_WIDTH
from ..netcdf import add_lon_lat

PACK_STEPS = 250
"""Probability steps of the packed uint8 (value ``k`` means ``k / 250``)."""
PACK_FILL = np.uint8(255)
"""Packed value of an invalid pixel in :func:`pack`'s uint8 (stored as -128)."""
STORE_OFFSET = 125
"""Stored int8 = packed - 125 (so 0..250 fits a signed byte; 255 -> -128 = ``_FillValue``)."""
STORE_FILL = np.int8(-128)
SPACE_CHUNK = (120, 240)
"""Chunk rows x columns (12 x 24 degrees)."""
DEFAULT_TIME_CHUNK = 16
"""Steps per chunk along time, and masks held in memory while building."""
CUBE_SUFFIXES = (".nc",)

_UNPACK = np.append(
    (np.arange(PACK_STEPS + 1, dtype=np.float64) / PACK_STEPS).astype(np.float32),
    np.full(256 - PACK_STEPS - 1, INVALID, dtype=np.float32),
)
"""uint8 -> float32 mask value (-999 for 251..255)."""


def pack(mask: np.ndarray) -> np.ndarray:
    """uint8 of a float mask: largest ``k`` with ``float32(k/250) <= p`` for valid ``p`` (clipped
    to [0, 1]), :data:`PACK_FILL` where -999 or NaN.  Same orientation as ``mask``."""
    mask = np.asarray(mask, dtype=np.float32)
    valid = np.isfinite(mask) & (mask > INVALID + 0.5)
    p = np.clip(np.where(valid, mask, 0.0), 0.0, 1.0).astype(np.float32)
    k = np.floor(p.astype(np.float64) * PACK_STEPS).astype(np.int16)
    k = np.clip(k, 0, PACK_STEPS)
    k += (_UNPACK[np.minimum(k + 1, PACK_STEPS)] <= p) & (k < PACK_STEPS)
    k -= _UNPACK[k] > p
    return np.where(valid, k, PACK_FILL).astype(np.uint8)


def unpack(packed: np.ndarray) -> np.ndarray:
    """float32 mask of packed uint8 values, -999 where invalid (inverse of :func:`pack` up to 0.004)."""
    return _UNPACK[packed]


def to_stored(packed: np.ndarray) -> np.ndarray:
    """int8 as stored in the cube: ``packed - 125``, 255 -> -128."""
    out = (packed.astype(np.int16) - STORE_OFFSET).astype(np.int8)
    out[packed > PACK_STEPS] = STORE_FILL
    return out


def from_stored(stored: np.ndarray) -> np.ndarray:
    """uint8 :func:`pack` values of stored int8 (inverse of :func:`to_stored`)."""
    out = (stored.astype(np.int16) + STORE_OFFSET).astype(np.uint8)
    out[stored == STORE_FILL] = PACK_FILL
    return out


class CubeMask(NamedTuple):
    """One step of a cube as ``cm-stats`` consumes it."""

    name: str
    ls: float
    mars_year: int
    mask: np.ndarray
    """float32 ``(1801, 3600)`` **north-up**, -999 invalid."""


@dataclass(frozen=True)
class CubeStep:
    """One step of a cube with its provenance."""

    name: str
    ls: float
    mars_year: int
    time: float
    source: str
    threshold: float
    """The source mask's cloud threshold; NaN when it had none (0/1 masks)."""
    mask: np.ndarray
    """float32 ``(1801, 3600)`` **north-up**, -999 invalid."""
    cloud: np.ndarray | None = None
    """bool ``(1801, 3600)`` **north-up**: cloud at the step's :func:`step_threshold`, exact;
    None where the packed values are exact at it already (a multiple of 0.004, the 0/1 masks)
    and for cubes made before it was stored."""


def step_threshold(threshold: float) -> float:
    """The threshold a step's ``cloud`` is computed at, as ``cm-stats`` reads the source mask:
    its ``threshold`` attribute, else (NaN) the default 0.912 (0/1 masks read the same at any)."""
    from .masks import file_threshold

    return file_threshold({} if np.isnan(threshold) else {"threshold": threshold})


def on_pack_grid(threshold: float) -> bool:
    """True when thresholding the packed values at ``threshold`` gives exactly the float mask's
    pixels: ``float32(threshold)`` is one of the steps ``k / 250`` (0.912, 0.5; not 0.47)."""
    return bool(np.any(_UNPACK[: PACK_STEPS + 1] == np.float32(threshold)))


def cloud_stored(mask: np.ndarray, threshold: float) -> np.ndarray:
    """int8 ``cloud`` of a float mask (any orientation): 1 where valid and ``value >= threshold``,
    0 where valid and below, :data:`STORE_FILL` where -999 or NaN."""
    mask = np.asarray(mask, dtype=np.float32)
    valid = np.isfinite(mask) & (mask > INVALID + 0.5)
    return np.where(valid, (mask >= threshold).astype(np.int8), STORE_FILL).astype(np.int8)


@dataclass
class StackResult:
    """What :func:`build_cube` wrote, and one line per mask it left out."""

    path: Path | None
    steps: int
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    size_bytes: int = 0


@dataclass(frozen=True)
class _Planned:
    path: Path
    name: str
    ls: float
    mars_year: int
    threshold: float


def _ls_lookup(ls_table: Iterable[str | Path]) -> Callable[[Path, dict], tuple[int, float]]:
    """``(path, attrs) -> (Mars year, Ls)`` through cm-stats' lookup (attributes, tables, a
    ``*_ls.txt`` beside the mask); raises ValueError naming the file."""
    from .ls_lookup import day_ls, ls_tables

    table = ls_tables(ls_table)
    return lambda path, attrs: day_ls(path, attrs, table)


def plan_steps(masks: Sequence[Path], ls_table: Iterable[str | Path] = ()) -> tuple[list[_Planned], list[str]]:
    """Check every mask (:func:`check_mask_file`) and find its Ls; sorted by time then name.

    Returns the steps and one line per mask left out (unreadable, wrong shape, NaN or values
    outside [0, 1], no Ls, a second mask of the same map).
    """
    from ..netcdf import check_mask_file, read_attrs, read_time_coords
    from .masks import SeenMaps, map_key, read_values

    lookup = _ls_lookup(ls_table)
    steps: list[_Planned] = []
    errors: list[str] = []
    seen = SeenMaps()
    for path in masks:
        reason = check_mask_file(path)
        if reason is not None:
            errors.append(reason)
            continue
        try:
            read_values(path)  # NaN or values outside [0, 1]: refused, not packed as 0 or 1
            when = read_time_coords(path)
            attrs = read_attrs(path)
            if when.ls is not None and when.mars_year is not None:
                year, ls = when.mars_year, when.ls
            else:
                year, ls = lookup(path, attrs)
            if not np.isfinite(ls):
                raise ValueError(f"{path}: Ls is not a number ({ls})")
            refused = seen.refuse(map_key(when.map_name, int(year), float(ls)), str(path))
            if refused is not None:
                raise ValueError(refused)
        except ValueError as exc:
            errors.append(" ".join(str(exc).split()))
            continue
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            errors.append(f"{path}: cannot read ({' '.join(str(exc).split())})")
            continue
        thr = attrs.get("threshold")
        try:
            thr = float(thr) if thr is not None else float("nan")
        except (TypeError, ValueError):
            thr = float("nan")
        steps.append(_Planned(Path(path), when.map_name, float(ls), int(year), thr))
    steps.sort(key=lambda s: (360.0 * s.mars_year + s.ls, s.name))
    return steps, errors


def build_cube(
    masks: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    ls_table: Iterable[str | Path] = (),
    time_chunk: int = DEFAULT_TIME_CHUNK,
    complevel: int = 4,
    progress: Callable[[str], None] | None = None,
) -> StackResult:
    """Stack masks into one cube file ``out`` (``.nc``), atomically, streaming.

    Args:
        masks: a run folder (searched recursively for ``.ncdf``/``.nc``) or mask files.
        out: the cube to write; must end in ``.nc`` and lie outside the searched folder's masks.
        ls_table: ``_ls.txt`` files or folders for masks without Ls attributes (the original's).
        time_chunk: steps per chunk along time (and masks held in memory at once).
        complevel: zlib level.
        progress: called with each map name once its step is packed.

    Returns:
        The result; ``path`` None (and nothing written) when no mask could be used.

    Raises:
        ValueError: ``out`` does not end in ``.nc`` or ``time_chunk`` < 1.
        OSError: the cube cannot be written (names ``out``; no partial file is left).
    """
    import time

    import netCDF4

    from ..atomic import atomic_path
    from ..netcdf import default_global_attrs, find_mask_files, read_mask

    started = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() not in CUBE_SUFFIXES:
        raise ValueError(f"{out}: the cube must be a NetCDF file ending in .nc")
    if time_chunk < 1:
        raise ValueError(f"time chunk {time_chunk}: must be at least 1")
    if isinstance(masks, (str, Path)):
        root = Path(masks)
        files = find_mask_files(root)
    else:
        files = [Path(m) for m in masks]
        root = Path(files[0]).parent if files else Path(".")
    files = [f for f in files if f.resolve() != out.resolve()]
    steps, errors = plan_steps(files, ls_table)
    if not steps:
        return StackResult(None, 0, errors or [f"{root}: no mask files"], time.perf_counter() - started)
    n = len(steps)
    tchunk = min(time_chunk, n)

    def rel(p: Path) -> str:
        try:
            return str(p.resolve().relative_to(root.resolve()))
        except ValueError:
            return str(p)

    written = 0
    try:
        with atomic_path(out) as tmp, cast(Any, netCDF4.Dataset(tmp, "w", format="NETCDF4")) as ds:
            ds.createDimension("time", n)
            ds.createDimension("latitude", MAP_HEIGHT)
            ds.createDimension("longitude", MAP_WIDTH)
            add_lon_lat(ds, "longitude", "latitude")
            t = ds.createVariable("time", "f8", ("time",))
            t.setncatts(
                {
                    "long_name": "Mars time as cumulative solar longitude (360 x Mars year + Ls)",
                    "units": "degree",
                    "comment": "Mars has no CF calendar: an Ls-based value, monotonic across Mars years",
                }
            )
            t[:] = [360.0 * s.mars_year + s.ls for s in steps]
            v = ds.createVariable("ls", "f8", ("time",))
            v.setncatts({"long_name": "solar longitude Ls of the map", "units": "degree"})
            v[:] = [s.ls for s in steps]
            v = ds.createVariable("mars_year", "i4", ("time",))
            v.setncatts({"long_name": "Mars year (Clancy et al. numbering)", "units": "1"})
            v[:] = [s.mars_year for s in steps]
            v = ds.createVariable("threshold", "f4", ("time",), fill_value=np.float32(np.nan))
            v.setncatts({"long_name": "cloud threshold of the source mask (NaN: a 0/1 mask without one)", "units": "1"})
            v[:] = [s.threshold for s in steps]
            names = ds.createVariable("map_name", str, ("time",))
            names.long_name = "name of the map (subphase and day)"
            sources = ds.createVariable("source", str, ("time",))
            sources.long_name = "mask file of the step, relative to the run folder"
            for i, s in enumerate(steps):
                names[i] = s.name
                sources[i] = rel(s.path)
            cube = ds.createVariable(
                "cloudmask",
                "i1",
                ("time", "latitude", "longitude"),
                zlib=True,
                complevel=complevel,
                chunksizes=(tchunk, *SPACE_CHUNK),
                fill_value=STORE_FILL,
            )
            cube.setncatts(
                {
                    "long_name": "water-ice cloud probability (0/1 for thresholded masks)",
                    "units": "1",
                    "scale_factor": np.float32(1.0 / PACK_STEPS),
                    "add_offset": np.float32(STORE_OFFSET / PACK_STEPS),
                    "valid_range": np.array([-STORE_OFFSET, PACK_STEPS - STORE_OFFSET], dtype=np.int8),
                    "coordinates": "time ls mars_year map_name",
                    "comment": f"packed: stored s means (s + {STORE_OFFSET})/{PACK_STEPS}, the largest such step not "
                    "above the mask's value; -128 = invalid; rows are south-up (latitude ascending from -90)",
                }
            )
            cube.set_auto_maskandscale(False)
            cloud = ds.createVariable(
                "cloud",
                "i1",
                ("time", "latitude", "longitude"),
                zlib=True,
                complevel=complevel,
                chunksizes=(tchunk, *SPACE_CHUNK),
                fill_value=STORE_FILL,
            )
            cloud.setncatts(
                {
                    "long_name": "water-ice cloud mask at the step's threshold (1 = cloud, 0 = clear)",
                    "units": "1",
                    "flag_values": np.array([0, 1], dtype=np.int8),
                    "flag_meanings": "clear cloud",
                    "coordinates": "time ls mars_year map_name",
                    "comment": "value >= threshold(time) of the float mask (0.912 where threshold is NaN), exact "
                    "where cloudmask's steps of 0.004 are not; -128 = invalid, and everywhere on steps whose "
                    "threshold is a multiple of 0.004 (threshold cloudmask there); rows are south-up",
                }
            )
            cloud.set_auto_maskandscale(False)
            block = np.empty((tchunk, MAP_HEIGHT, MAP_WIDTH), dtype=np.int8)
            side = np.empty((tchunk, MAP_HEIGHT, MAP_WIDTH), dtype=np.int8)
            for start in range(0, n, tchunk):
                part = steps[start : start + tchunk]
                needed = False
                for j, s in enumerate(part):
                    values = read_mask(s.path, north_up=False)
                    block[j] = to_stored(pack(values))
                    thr = step_threshold(s.threshold)
                    if on_pack_grid(thr):  # the packed values are exact there: left unwritten (no bytes)
                        side[j] = STORE_FILL
                    else:
                        side[j] = cloud_stored(values, thr)
                        needed = True
                    if progress is not None:
                        progress(s.name)
                cube[start : start + len(part)] = block[: len(part)]
                if needed:
                    cloud[start : start + len(part)] = side[: len(part)]
                written += len(part)
            ds.setncatts(
                {
                    **default_global_attrs(),
                    "title": "Water-ice cloud masks of Mars Daily Global Maps, stacked in time",
                    "Conventions": "CF-1.8",
                    "n_steps": n,
                    "run_folder": str(root),
                }
            )
    except (OSError, RuntimeError) as exc:
        raise OSError(f"{out}: cannot write the cube ({' '.join(str(exc).split())})") from exc
    return StackResult(out, written, errors, time.perf_counter() - started, out.stat().st_size)


def iter_cube_steps(cube_path: str | Path) -> Iterator[CubeStep]:
    """The steps of a cube in time order, reading one time chunk at a time (memory flat)."""
    import netCDF4

    with netCDF4.Dataset(cube_path) as ds:
        var = ds["cloudmask"]
        var.set_auto_maskandscale(False)
        n = var.shape[0]
        tchunk = (var.chunking() or [n])[0] if var.chunking() != "contiguous" else 1
        ls = np.asarray(ds["ls"][:], dtype=np.float64)
        years = np.asarray(ds["mars_year"][:], dtype=np.int64)
        times = np.asarray(ds["time"][:], dtype=np.float64)
        names = [str(x) for x in ds["map_name"][:]]
        sources = [str(x) for x in ds["source"][:]]
        thr_var = ds["threshold"]
        thr_var.set_auto_maskandscale(False)
        thresholds = np.asarray(thr_var[:], dtype=np.float64)
        side_var = ds.variables.get("cloud")
        if side_var is not None:
            side_var.set_auto_maskandscale(False)
        for start in range(0, n, tchunk):
            block = from_stored(np.asarray(var[start : start + tchunk]))
            sides = None if side_var is None else np.asarray(side_var[start : start + tchunk])
            for j in range(block.shape[0]):
                i = start + j
                exact_cloud = sides is not None and not on_pack_grid(step_threshold(float(thresholds[i])))
                yield CubeStep(
                    names[i],
                    float(ls[i]),
                    int(years[i]),
                    float(times[i]),
                    sources[i],
                    float(thresholds[i]),
                    np.ascontiguousarray(unpack(block[j])[::-1]),
                    np.ascontiguousarray(sides[j][::-1] == 1) if sides is not None and exact_cloud else None,
                )


def is_cube(path: str | Path) -> bool:
    """True for a NetCDF file holding a cube (``cloudmask(time, latitude, longitude)``), as
    :func:`build_cube` writes; False for a single mask or anything unreadable."""
    import netCDF4

    try:
        with netCDF4.Dataset(path) as ds:
            var = ds.variables.get("cloudmask")
            return var is not None and len(var.dimensions) == 3 and var.dimensions[0] == "time"
    except OSError:
        return False


def cube_steps(path: str | Path) -> int:
    """Number of time steps of a cube (0 when ``path`` is not one)."""
    import netCDF4

    if not is_cube(path):
        return 0
    with netCDF4.Dataset(path) as ds:
        return len(ds.dimensions["time"])


def iter_cube_masks(cube_path: str | Path) -> Iterator[CubeMask]:
    """``(name, ls, mars_year, mask)`` per step, ``mask`` float32 north-up with -999 invalid:
    what ``cm-stats`` reads from a folder of masks, read from a cube instead."""
    for step in iter_cube_steps(cube_path):
        yield CubeMask(step.name, step.ls, step.mars_year, step.mask)


def open_cube(cube_path: str | Path, chunks: dict | None = None):
    """The cube as a lazy ``xarray.Dataset`` backed by Dask, one Dask chunk per file chunk
    (``cloudmask`` unpacked to float32 probabilities, NaN where invalid)."""
    import xarray as xr

    return xr.open_dataset(cube_path, chunks={} if chunks is None else chunks)
