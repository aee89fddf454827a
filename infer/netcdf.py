"""Cloud-mask NetCDF files: writing (atomically) and reading.

The layout is the original's, which users' scripts already read (domain.md 5):
NetCDF4-classic, dimensions ``y`` = 1801 and ``x`` = 3600, ``longitude(x)`` and
``latitude(y)`` float32, ``cloudmask(y, x)`` float32 with zlib; rows are **south-up**
(row 0 = latitude -90, flipped relative to the JPEG); -999 = invalid, otherwise the cloud
probability, or 0/1 once thresholded.  On top of that, CF-1.8 attributes.

In memory this package always works north-up; the flip happens here and only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .geometry import INVALID, MAP_HEIGHT, MAP_WIDTH, latitudes_south_up, longitudes

CONVENTIONS = "CF-1.8"

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


def write_mask(
    path: str | Path,
    mask: np.ndarray,
    attrs: Mapping[str, Any] | None = None,
    *,
    binary: bool = False,
    complevel: int = 4,
) -> Path:
    """Write one cloud mask, atomically: a temporary file in the same folder, then a rename.

    Args:
        path: the ``.ncdf`` file to create (its folder is created if missing).
        mask: float32 ``(1801, 3600)`` **north-up**; -999 invalid, else probability or 0/1.
        attrs: global attributes (Ls, Mars year, source map, model, threshold...); ``None``
            values are left out.
        binary: the values are thresholded 0/1 (changes ``long_name`` and ``valid_range``).
        complevel: zlib level; 4 is about as small as 9 at a third of the time.

    Returns:
        The final path.  No partial file is ever left at ``path`` or beside it.
    """
    import netCDF4

    from .atomic import atomic_path

    path = Path(path)
    if mask.shape != (MAP_HEIGHT, MAP_WIDTH):
        raise ValueError(f"mask shape {mask.shape}, expected ({MAP_HEIGHT}, {MAP_WIDTH})")
    with atomic_path(path) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4_CLASSIC") as ds:
            ds.createDimension("x", MAP_WIDTH)
            ds.createDimension("y", MAP_HEIGHT)
            lon = ds.createVariable("longitude", "f4", ("x",))
            lon.setncatts(
                {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude", "axis": "X"}
            )
            lon[:] = longitudes()
            lat = ds.createVariable("latitude", "f4", ("y",))
            lat.setncatts(
                {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude", "axis": "Y"}
            )
            lat[:] = latitudes_south_up()
            var = ds.createVariable(
                "cloudmask", "f4", ("y", "x"), zlib=True, complevel=complevel, fill_value=np.float32(INVALID)
            )
            var_attrs: dict[str, Any] = (
                {"standard_name": "cloud_binary_mask", "flag_values": np.array([0.0, 1.0], dtype=np.float32),
                 "flag_meanings": "clear cloud"}
                if binary
                else {}
            )
            var.setncatts(
                {
                    **var_attrs,
                    "long_name": "water-ice cloud mask (1 = cloud, 0 = clear)"
                    if binary
                    else "water-ice cloud probability",
                    "units": "1",
                    "missing_value": np.float32(INVALID),
                    "valid_range": np.array([0.0, 1.0], dtype=np.float32),
                    "coordinates": "latitude longitude",
                    "comment": "rows are south-up (row 0 = latitude -90); -999 = no data, "
                    "outside the polar bounds, or invalid pixel",
                }
            )
            var.set_auto_maskandscale(False)
            var[:, :] = np.ascontiguousarray(mask[::-1], dtype=np.float32)
            ds.setncattr("Conventions", CONVENTIONS)
            for key, value in {**default_global_attrs(), **(attrs or {})}.items():
                if value is not None:
                    ds.setncattr(key, _clean_attr(value))
    return path


def read_mask(path: str | Path, *, north_up: bool = True, threshold: float | None = None) -> np.ndarray:
    """Read the ``cloudmask`` of a NetCDF file (this package's, the original's or a label).

    Args:
        path: the ``.ncdf`` file.
        north_up: flip the rows back to the JPEG's orientation (row 0 = latitude +90).
        threshold: if given, valid values become 1.0 where ``value >= threshold`` else 0.0
            (labels hold blue-channel numbers > 0 for cloud: use a tiny threshold for them).

    Returns:
        float32 ``(1801, 3600)``, -999 where invalid.
    """
    import netCDF4

    with netCDF4.Dataset(path) as ds:
        var = ds.variables["cloudmask"]
        var.set_auto_maskandscale(False)
        data = np.asarray(var[:, :], dtype=np.float32)
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
    """
    import xarray as xr

    from .geometry import latitudes_south_up

    data = read_mask(path, north_up=True, threshold=threshold)
    data[data == INVALID] = np.nan
    attrs = read_attrs(path)
    if threshold is not None:
        attrs["threshold_applied"] = float(threshold)
    return xr.DataArray(
        data,
        dims=("latitude", "longitude"),
        coords={
            "latitude": ("latitude", latitudes_south_up()[::-1].copy(),
                         {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
            "longitude": ("longitude", longitudes(), {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}),
        },
        name="cloudmask",
        attrs=attrs,
    )


def read_attrs(path: str | Path) -> dict[str, Any]:
    """The global attributes of a mask file."""
    import netCDF4

    with netCDF4.Dataset(path) as ds:
        return {k: ds.getncattr(k) for k in ds.ncattrs()}
