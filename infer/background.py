"""Per-subphase background composite: percentiles of a map channel over a set of maps.

The background of a pixel is how bright the ground there usually is within one subphase: the
``q``-th percentile of the blue channel over every map of the set in which that pixel holds
data (:func:`mars_cloudmask.infer.geometry.valid_pixels`).  Clouds are bright and move, so a
low percentile over 25 or more maps is close to the cloud-free ground.

A composite is written and read as CF NetCDF (:func:`write_netcdf`, rows south-up on disk
like the masks) with the count of days per pixel.  ``cm-infer`` writes one per subphase as
``OUT/<phase>/<subphase>/background_<subphase>.nc`` (:func:`composite_file_name`), with the
fingerprint of its source files (:func:`sources_fingerprint`) so that a rerun can reuse it.

Memory: the maps are read one at a time and only their blue channel is kept, as one uint8
plane per map (6.5 MB each at 3600 x 1801); percentiles are then taken per block of rows.
Peak memory for ``n`` maps is about ``n x 6.5 MB`` (the list of planes, then their stack:
twice that for a moment) + 19.5 MB (one decoded map) + 26 MB per percentile returned + the
sort workspace of one 64-row block.  Measured: 0.57 GB peak resident for 35 maps and three
percentiles (``/usr/bin/time -v``, the Python process included), 12 s on the shared 2 cores.
All arrays are north-up (JPEG row order).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence, cast

import numpy as np

from .geometry import valid_pixels

# The composites' file names are netcdf's (the lower module, which skips them when finding masks).
from .netcdf import COMPOSITE_PREFIX as COMPOSITE_PREFIX
from .netcdf import COMPOSITE_SUFFIX as COMPOSITE_SUFFIX
from .netcdf import NETCDF_LOCK
from .netcdf import composite_file_name as composite_file_name
from .netcdf import is_composite_file as is_composite_file

BLUE = 2
_NO_DATA = np.uint8(255)


@dataclass(frozen=True)
class Background:
    """Percentile planes of one channel over a set of maps, north-up.

    ``percentiles``: ``{q: float32 (H, W)}`` in data numbers (0-255), NaN where no map holds
    data; ``count``: uint16 ``(H, W)``, the number of maps holding data at each pixel;
    ``n_maps``: how many maps went in.
    """

    percentiles: dict[int, np.ndarray]
    count: np.ndarray
    n_maps: int

    def plane(self, q: int) -> np.ndarray:
        """The ``q``-th percentile plane; KeyError naming the available ones if absent."""
        if q not in self.percentiles:
            raise KeyError(f"background has percentiles {sorted(self.percentiles)}, not {q}")
        return self.percentiles[q]


def percentiles_of_stack(
    stack: np.ndarray, count: np.ndarray, qs: Sequence[int], block_rows: int = 64
) -> dict[int, np.ndarray]:
    """Linear-interpolated percentiles over axis 0 of a uint8 ``(n, H, W)`` stack.

    Pixels without data must hold 255 in ``stack`` (they sort last, so the first ``count``
    sorted values are exactly the valid ones) and ``count`` says how many are valid.  Same
    interpolation as ``np.percentile(..., method="linear")`` over the valid values; NaN where
    ``count`` is 0.  The stack is sorted in place, block by block.
    """
    n, h, w = stack.shape
    out = {q: np.full((h, w), np.nan, dtype=np.float32) for q in qs}
    for r0 in range(0, h, block_rows):
        block = stack[:, r0 : r0 + block_rows]
        block.sort(axis=0)
        c = count[r0 : r0 + block_rows].astype(np.int64)
        has = c > 0
        for q in qs:
            pos = q / 100.0 * np.maximum(c - 1, 0)
            lo = np.floor(pos).astype(np.int64)
            hi = np.minimum(lo + 1, np.maximum(c - 1, 0))
            frac = (pos - lo).astype(np.float32)
            vlo = np.take_along_axis(block, lo[None], axis=0)[0].astype(np.float32)
            vhi = np.take_along_axis(block, hi[None], axis=0)[0].astype(np.float32)
            val = vlo + (vhi - vlo) * frac
            out[q][r0 : r0 + block_rows] = np.where(has, val, np.nan)
    return out


def composite(maps: Iterable[np.ndarray], qs: Sequence[int] = (10, 30, 50), channel: int = BLUE) -> Background:
    """The background of ``maps`` (uint8 ``(H, W, 3)`` RGB, north-up, consumed one at a time):
    the ``qs`` percentiles of ``channel`` (blue by default) over the maps holding data at each
    pixel.  Raises ValueError when there is no map or the shapes differ."""
    planes: list[np.ndarray] = []
    count = None
    for rgb in maps:
        if planes and rgb.shape[:2] != planes[0].shape:
            raise ValueError(f"map of shape {rgb.shape[:2]} among maps of shape {planes[0].shape}")
        valid = valid_pixels(rgb)
        plane = np.where(valid, rgb[..., channel], _NO_DATA).astype(np.uint8)
        planes.append(plane)
        count = valid.astype(np.uint16) if count is None else count + valid
    if not planes:
        raise ValueError("no map to build a background from")
    stack = np.stack(planes)
    del planes
    assert count is not None  # set with the first plane
    return Background(percentiles_of_stack(stack, count, qs), count, int(stack.shape[0]))


def map_files(folder: str | Path) -> list[Path]:
    """The MDGM JPEGs directly in ``folder`` (``*.jpg`` / ``*.jpeg``), sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))


def composite_of_files(paths: Sequence[str | Path], qs: Sequence[int] = (10, 30, 50)) -> Background:
    """:func:`composite` of map files read one at a time (MapError names a bad file)."""
    from .maps import read_map

    return composite((read_map(p) for p in paths), qs)


@dataclass
class ReadableComposite:
    """What :func:`composite_of_readable` made: the composite, the maps that went in, and one
    line per map left out (unreadable)."""

    background: Background
    used: list[Path]
    skipped: list[str]


def composite_of_readable(paths: Sequence[str | Path], qs: Sequence[int] = (10, 30, 50)) -> ReadableComposite:
    """:func:`composite` of the map files that can be read (one at a time, as
    :func:`composite_of_files`); an unreadable one is left out, its reason kept.

    Raises:
        ValueError: no map given, or none readable (the message gives the first reason).
    """
    from .maps import MapError, read_map

    used: list[Path] = []
    skipped: list[str] = []

    def readable() -> Iterator[np.ndarray]:
        for p in paths:
            try:
                rgb = read_map(p)
            except MapError as exc:
                skipped.append(" ".join(str(exc).split()))
                continue
            used.append(Path(p))
            yield rgb

    try:
        bg = composite(readable(), qs)
    except ValueError:
        if not paths:
            raise ValueError("no map to build a background from") from None
        if not used:
            raise ValueError(f"none of its {len(paths)} maps is readable (first: {skipped[0]})") from None
        raise
    return ReadableComposite(bg, used, skipped)


def sources_fingerprint(paths: Iterable[str | Path]) -> str:
    """SHA-256 (hex) of the source files' names, sizes and modification times (ns), in order:
    the same files, unchanged, give the same fingerprint.  A missing file counts as size -1."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        try:
            st = p.stat()
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, 0
        h.update(json.dumps([p.name, size, mtime]).encode() + b"\n")
    return h.hexdigest()


def write_netcdf(
    bg: Background,
    path: str | Path,
    sources: Sequence[str] = (),
    complevel: int = 4,
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``bg`` as a CF-1.8 NetCDF4-classic file, atomically: ``blue_pQ`` (float32, data
    numbers, NaN no data) per percentile and ``count`` (int16, maps with data per pixel), rows
    **south-up on disk** like the masks (row 0 = latitude -90), ``longitude`` / ``latitude``
    coordinates; global ``n_maps`` and ``source_maps`` (the map names, comma-separated), plus
    ``attrs`` (strings or numbers; ``cm-infer`` adds ``source_folder`` and ``sources_fingerprint``)."""
    import netCDF4

    from .atomic import atomic_path
    from .geometry import latitudes_south_up, longitudes

    path = Path(path)
    h, w = bg.count.shape
    with atomic_path(path) as tmp:
        # netCDF-C / HDF5 are not thread-safe: the lock keeps a mask writer thread out meanwhile
        with NETCDF_LOCK, cast(Any, netCDF4.Dataset(tmp, "w", format="NETCDF4_CLASSIC")) as ds:
            ds.createDimension("x", w)
            ds.createDimension("y", h)
            lon = ds.createVariable("longitude", "f4", ("x",))
            lon.setncatts({"units": "degrees_east", "standard_name": "longitude", "axis": "X"})
            lon[:] = longitudes()[:w]
            lat = ds.createVariable("latitude", "f4", ("y",))
            lat.setncatts({"units": "degrees_north", "standard_name": "latitude", "axis": "Y"})
            lat[:] = latitudes_south_up()[:h]
            for q, plane in sorted(bg.percentiles.items()):
                var = ds.createVariable(f"blue_p{q}", "f4", ("y", "x"), zlib=True, complevel=complevel)
                var.setncatts(
                    {
                        "long_name": f"{q}th percentile of the blue channel over the maps with data",
                        "units": "1",
                        "coordinates": "latitude longitude",
                        "comment": "MDGM data numbers 0-255; NaN where no map has data; rows south-up",
                    }
                )
                var[:, :] = np.ascontiguousarray(plane[::-1], dtype=np.float32)
            cnt = ds.createVariable("count", "i2", ("y", "x"), zlib=True, complevel=complevel)
            cnt.setncatts(
                {
                    "long_name": "number of maps with data at the pixel (count of days)",
                    "units": "1",
                    "coordinates": "latitude longitude",
                }
            )
            cnt[:, :] = np.ascontiguousarray(bg.count[::-1], dtype=np.int16)
            ds.setncatts(
                {
                    "Conventions": "CF-1.8",
                    "title": "Background composite of a MARCI subphase",
                    "n_maps": np.int32(bg.n_maps),
                    "source_maps": ",".join(sources),
                    **{k: v for k, v in (attrs or {}).items() if v is not None},
                }
            )
    return path


def read_netcdf(path: str | Path, qs: Sequence[int] | None = None) -> Background:
    """Read a composite written by :func:`write_netcdf` (planes back north-up).

    ``qs``: the percentiles to read (None: all in the file); KeyError naming the ones the file
    has when one is missing.
    """
    import netCDF4

    with NETCDF_LOCK, netCDF4.Dataset(Path(path)) as ds:
        ds.set_auto_mask(False)
        have = sorted(int(name[len("blue_p") :]) for name in ds.variables if name.startswith("blue_p"))
        wanted = have if qs is None else list(qs)
        missing = [q for q in wanted if q not in have]
        if missing:
            raise KeyError(f"background has percentiles {have}, not {missing}")
        planes = {q: np.ascontiguousarray(ds[f"blue_p{q}"][:][::-1], dtype=np.float32) for q in wanted}
        count = np.ascontiguousarray(ds["count"][:][::-1]).astype(np.uint16)
        return Background(planes, count, int(ds.getncattr("n_maps")))


def read_attrs(path: str | Path) -> dict[str, Any]:
    """The global attributes of a composite file and its percentiles (``"percentiles"``: sorted ints)."""
    import netCDF4

    with NETCDF_LOCK, netCDF4.Dataset(Path(path)) as ds:
        attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
        attrs["percentiles"] = sorted(int(n[len("blue_p") :]) for n in ds.variables if n.startswith("blue_p"))
        return attrs
