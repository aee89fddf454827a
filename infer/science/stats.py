"""Cloud statistics over many masks (``cm-stats``): occurrence frequency and a Hovmöller table.

The masks are read one at a time into a :class:`CloudStats` accumulator (memory flat
however many there are):

* per pixel: the number of days it is valid, the number of days it is cloudy, and the cloud
  occurrence frequency ``cloudy / valid`` (NaN where never valid);
* per day: its Ls, Mars year, the cloud fraction of its valid pixels, and the zonal cloud
  fraction in every latitude band;
* per latitude band and Ls bin (a Hovmöller table): the zonal-mean cloud fraction,
  ``cloudy pixels / valid pixels`` summed over the days in the bin (years pooled).

Ls and Mars year come from the mask file's ``solar_longitude`` (or ``ls``) and ``mars_year``
attributes (written by ``cm-infer``); files without them (the original's masks, the labels) take them from
``_ls.txt`` tables: those given explicitly, else any ``*_ls.txt`` in the mask's folder or
its parent (``cm-infer`` copies the table into ``<out>/<phase>/<subphase>/``); see :mod:`.ls_lookup`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..geometry import MAP_HEIGHT, MAP_WIDTH, longitudes, row_to_lat
from .ls_lookup import day_ls, ls_tables
from .masks import BinaryMask, SeenMaps, day_name, file_threshold

DEFAULT_LAT_BIN = 5.0
"""Latitude band width of the Hovmöller table, degrees."""
DEFAULT_LS_BIN = 5.0
"""Ls bin width of the Hovmöller table, degrees."""
DEFAULT_MIN_VALID_DAYS = 3
"""Fewest valid days for a pixel's occurrence frequency in cm-stats' map (fewer: NaN)."""


def check_bins(lat_bin: float, ls_bin: float) -> None:
    """Raise ValueError unless ``0 < lat_bin <= 180`` and ``0 < ls_bin <= 360`` (degrees)."""
    for name, value, top in (("lat_bin", lat_bin, 180.0), ("ls_bin", ls_bin, 360.0)):
        if not (math.isfinite(value) and 0 < value <= top):
            raise ValueError(f"{name} {value:g}: must be a number of degrees in (0, {top:g}]")


def lat_band_of_rows(lat_bin: float) -> tuple[np.ndarray, np.ndarray]:
    """Band index of every north-up row and the band edges (deg, ascending from -90).

    Band ``k`` holds latitudes ``[-90 + k*lat_bin, -90 + (k+1)*lat_bin)``; latitude +90 falls
    in the last band.
    """
    n = int(np.ceil(180.0 / lat_bin))
    lat = row_to_lat(np.arange(MAP_HEIGHT))
    band = np.clip(np.floor((lat + 90.0) / lat_bin).astype(np.int64), 0, n - 1)
    edges = np.minimum(-90.0 + lat_bin * np.arange(n + 1), 90.0)
    return band, edges


def ls_bin_index(ls: float, ls_bin: float) -> int:
    """Index of the Ls bin ``[k*ls_bin, (k+1)*ls_bin)`` holding ``ls`` (deg, wrapped to 0..360)."""
    n = int(np.ceil(360.0 / ls_bin))
    return int(np.floor((ls % 360.0) / ls_bin)) % n


@dataclass
class DayRecord:
    """One day that went into the statistics."""

    name: str
    path: str
    ls: float
    mars_year: int
    cloud_fraction: float
    """Cloudy share of the day's valid pixels (NaN when none is valid)."""
    zonal: np.ndarray
    """Cloud fraction per latitude band (NaN where the band has no valid pixel)."""


@dataclass
class CloudStats:
    """Accumulator: add masks one by one with :meth:`add`, read the figures at the end."""

    lat_bin: float = DEFAULT_LAT_BIN
    ls_bin: float = DEFAULT_LS_BIN
    valid_days: np.ndarray = field(default_factory=lambda: np.zeros((MAP_HEIGHT, MAP_WIDTH), np.int32))
    """Per north-up pixel: days on which it is valid."""
    cloudy_days: np.ndarray = field(default_factory=lambda: np.zeros((MAP_HEIGHT, MAP_WIDTH), np.int32))
    """Per north-up pixel: days on which it is cloudy."""
    days: list[DayRecord] = field(default_factory=list)
    min_valid_days: int = 1
    """Pixels valid on fewer days get no frequency (NaN): a speck seen once is not frequency 1."""
    thresholds: dict[str, int] = field(default_factory=dict)
    """How the days were thresholded: ``{"0.47": 20, "labels (value > 0)": 3}`` (days per rule)."""

    def __post_init__(self) -> None:
        check_bins(self.lat_bin, self.ls_bin)
        self._band, self.lat_edges = lat_band_of_rows(self.lat_bin)
        self.n_bands = len(self.lat_edges) - 1
        self.n_ls = int(np.ceil(360.0 / self.ls_bin))
        self.hov_cloud = np.zeros((self.n_bands, self.n_ls), np.int64)
        """Cloudy pixels per (latitude band, Ls bin)."""
        self.hov_valid = np.zeros((self.n_bands, self.n_ls), np.int64)
        """Valid pixels per (latitude band, Ls bin)."""

    def add(
        self, mask: BinaryMask, name: str, ls: float, mars_year: int, path: str = "", threshold: float | None = None
    ) -> DayRecord:
        """Count one day's mask (north-up booleans) taken at solar longitude ``ls`` (deg);
        ``threshold``: the one that made it binary (None: a label file, cloud where > 0)."""
        rule = "labels (value > 0)" if threshold is None else f"{threshold:g}"
        self.thresholds[rule] = self.thresholds.get(rule, 0) + 1
        self.valid_days += mask.valid
        self.cloudy_days += mask.cloud
        row_valid = np.count_nonzero(mask.valid, axis=1)
        row_cloud = np.count_nonzero(mask.cloud, axis=1)
        band_valid = np.bincount(self._band, weights=row_valid, minlength=self.n_bands).astype(np.int64)
        band_cloud = np.bincount(self._band, weights=row_cloud, minlength=self.n_bands).astype(np.int64)
        k = ls_bin_index(ls, self.ls_bin)
        self.hov_valid[:, k] += band_valid
        self.hov_cloud[:, k] += band_cloud
        with np.errstate(invalid="ignore", divide="ignore"):
            zonal = np.where(band_valid > 0, band_cloud / np.maximum(band_valid, 1), np.nan)
        total = int(band_valid.sum())
        record = DayRecord(
            name, path, float(ls), int(mars_year), float(band_cloud.sum() / total) if total else float("nan"), zonal
        )
        self.days.append(record)
        return record

    @property
    def frequency(self) -> np.ndarray:
        """float32 north-up cloud occurrence frequency, NaN where a pixel is valid on fewer than
        :attr:`min_valid_days` days (at least 1)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            f = self.cloudy_days / self.valid_days.astype(np.float32)
        return np.where(self.valid_days >= max(1, self.min_valid_days), f, np.nan).astype(np.float32)

    @property
    def mars_years(self) -> list[int]:
        """The Mars years of the days counted, ascending (several are pooled in every figure)."""
        return sorted({d.mars_year for d in self.days})

    def threshold_text(self) -> str:
        """The thresholds used, for attributes and titles: ``"0.47"``, or ``"0.47 (20 days), 0.5 (3 days)"``."""
        if len(self.thresholds) == 1:
            return next(iter(self.thresholds))
        return ", ".join(f"{k} ({n} days)" for k, n in sorted(self.thresholds.items()))

    @property
    def hovmoller(self) -> np.ndarray:
        """float64 ``(lat band, Ls bin)`` zonal-mean cloud fraction, NaN where no valid pixel."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.hov_valid > 0, self.hov_cloud / np.maximum(self.hov_valid, 1), np.nan)

    @property
    def lat_centres(self) -> np.ndarray:
        return (self.lat_edges[:-1] + self.lat_edges[1:]) / 2

    @property
    def ls_edges(self) -> np.ndarray:
        return np.minimum(self.ls_bin * np.arange(self.n_ls + 1), 360.0)


# --------------------------------------------------------------------------- driver
@dataclass
class StatsRun:
    """The accumulated statistics and one line per file that failed."""

    stats: CloudStats
    errors: list[str]
    warnings: list[str] = field(default_factory=list)
    """Lines on figures that may differ from the masks' (a cube thresholded off its 0.004 steps)."""


def collect(
    mask_paths: Sequence[str | Path],
    *,
    ls_table: Iterable[str | Path] = (),
    threshold: float | None = None,
    label: bool = False,
    lat_bin: float = DEFAULT_LAT_BIN,
    ls_bin: float = DEFAULT_LS_BIN,
    progress: Callable[[str], None] | None = None,
    min_valid_days: int = DEFAULT_MIN_VALID_DAYS,
) -> StatsRun:
    """Stream the masks (files, folders searched for ``.ncdf``/``.nc``, or cubes made by
    ``cm-stack``) into a :class:`CloudStats`; a cube gives the same numbers as its masks.

    Predictions are thresholded at their ``threshold`` attribute (``threshold`` overrides;
    default 0.912); ``label=True`` reads label files (cloud where value > 0).  A file that
    cannot be read, is not 1801 x 3600, or has no finite Ls adds a line naming it to
    ``errors`` and is left out; the others are still counted.  Raises ValueError for bin
    widths outside (0, 180] / (0, 360] degrees (:func:`check_bins`) before reading anything.
    """
    from ..netcdf import find_mask_files, read_attrs, read_time_coords
    from .masks import SeenMaps, binarise, map_key, read_values

    check_bins(lat_bin, ls_bin)
    table = ls_tables(ls_table)
    from .stack import is_cube

    files: list[Path] = []
    cubes: list[Path] = []
    for p in mask_paths:
        p = Path(p)
        if p.is_dir():
            files.extend(find_mask_files(p))  # every mask: its identity is its path, not its day name
        elif is_cube(p):
            cubes.append(p)
        else:
            files.append(p)
    stats = CloudStats(lat_bin=lat_bin, ls_bin=ls_bin, min_valid_days=min_valid_days)
    errors: list[str] = []
    warnings: list[str] = []
    seen = SeenMaps()
    for cube in cubes:
        errors.extend(_collect_cube(stats, cube, threshold, label, progress, warnings, seen))
    for path in files:
        name = day_name(path) or path.stem
        try:
            attrs = read_attrs(path)
            year, ls = day_ls(path, attrs, table)
            when = read_time_coords(path)
            name = day_name(path) or when.map_name  # as a cube names the step (its map_name)
            key = map_key(when.map_name, year, ls)
            values = read_values(path, label=label)
            refused = seen.refuse(key, str(path))  # after the read: a bad first copy refuses no good one
            if refused is not None:
                raise ValueError(refused)
        except ValueError as exc:  # no Ls, NaN Ls, wrong shape: the message names the file
            errors.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            errors.append(f"{path}: cannot read mask ({exc})")
        else:
            thr = None if label else file_threshold(attrs, threshold)
            stats.add(binarise(values, thr), name, ls, year, str(path), threshold=thr)
        if progress is not None:
            progress(name)
    return StatsRun(stats, errors, warnings)


def _collect_cube(
    stats: CloudStats,
    cube: Path,
    threshold: float | None,
    label: bool,
    progress: Callable[[str], None] | None,
    warnings: list[str],
    seen: SeenMaps | None = None,
) -> list[str]:
    """Add every step of a cube to ``stats`` as :func:`collect` adds a mask file (the same
    threshold rule: the override, else the step's source threshold, else the default).

    At the step's own threshold the stored ``cloud`` is used (exact).  Thresholding the packed
    probability (an override, or an older cube) is exact only at multiples of 0.004; any other
    threshold adds one line to ``warnings`` per cube."""
    from ..geometry import INVALID
    from .masks import SeenMaps, binarise, file_threshold, map_key
    from .stack import iter_cube_steps, on_pack_grid

    off_grid: set[float] = set()
    seen = SeenMaps() if seen is None else seen
    refused: list[str] = []
    try:
        for step in iter_cube_steps(cube):
            line = seen.refuse(map_key(step.name, step.mars_year, step.ls), f"{cube} step {step.source}")
            if line is not None:
                refused.append(line)
                if progress is not None:
                    progress(step.name)
                continue
            attrs = {} if math.isnan(step.threshold) else {"threshold": step.threshold}
            thr = None if label else file_threshold(attrs, threshold)
            if thr is not None and step.cloud is not None and thr == file_threshold(attrs):
                valid = step.mask > INVALID + 0.5
                mask = BinaryMask(valid, step.cloud & valid)
            else:
                mask = binarise(step.mask, thr)
                if thr is not None and not on_pack_grid(thr):
                    off_grid.add(thr)
            stats.add(mask, step.name, step.ls, step.mars_year, step.source, threshold=thr)
            if progress is not None:
                progress(step.name)
    except Exception as exc:  # noqa: BLE001 - a broken cube is one line, like a broken file
        return [*refused, f"{cube}: cannot read cube ({' '.join(str(exc).split())})"]
    if off_grid:
        warnings.append(
            f"{cube}: threshold {', '.join(f'{t:g}' for t in sorted(off_grid))} is not a multiple of the cube's "
            "steps of 0.004: pixels within 0.004 of it may differ from the masks' (read the masks for exact figures)"
        )
    return refused


@contextmanager
def _in_memory_dataset(path: Path) -> Iterator[Any]:
    """A NetCDF-4 dataset built in memory, written to ``path`` atomically when the block ends.

    Built in memory so that netCDF never holds the disk: a full disk is then one ``OSError``
    from Python's write (naming ``path``, with the cause's ``errno``), not an HDF error from
    the dataset's close chained onto the first one.  On any error nothing is left at ``path``."""
    from ..netcdf import dataset_in_memory

    try:
        with dataset_in_memory(path) as ds:
            yield ds
    except (OSError, RuntimeError) as exc:
        reason = getattr(exc, "strerror", None) or " ".join(str(exc).split()) or type(exc).__name__
        raise OSError(getattr(exc, "errno", None), f"{path}: cannot write the statistics ({reason})") from None


def write_stats(stats: CloudStats, path: str | Path) -> Path:
    """Write the statistics as one NetCDF-4 file (CF-1.8 attributes), atomically.

    Grids are south-up like the masks (``latitude`` ascending from -90); variables
    ``valid_days``, ``cloudy_days``, ``cloud_frequency`` (latitude, longitude);
    ``day_name``, ``ls``, ``mars_year``, ``day_cloud_fraction`` (day);
    ``zonal_cloud_fraction`` (day, lat_band); ``hovmoller_cloud_fraction``,
    ``hovmoller_valid_pixels`` (lat_band, ls_bin) with band and bin bounds.

    Raises:
        OSError: the file cannot be written (disk full...): one error, its ``errno`` the
            cause's, its ``strerror`` one line naming ``path`` and the cause; no partial file is left.
    """
    from ..geometry import latitudes_south_up
    from ..netcdf import default_global_attrs

    fill = np.float32(-999.0)
    n_days = len(stats.days)
    with _in_memory_dataset(Path(path)) as ds:
        ds.createDimension("latitude", MAP_HEIGHT)
        ds.createDimension("longitude", MAP_WIDTH)
        ds.createDimension("day", n_days)
        ds.createDimension("lat_band", stats.n_bands)
        ds.createDimension("ls_bin", stats.n_ls)
        ds.createDimension("nv", 2)

        def var(name, dtype, dims, data, fill_value=None, **attrs):
            v = ds.createVariable(name, dtype, dims, zlib=len(dims) > 1, fill_value=fill_value)
            v.setncatts(attrs)
            v[:] = data
            return v

        var(
            "latitude",
            "f4",
            ("latitude",),
            latitudes_south_up(),
            units="degrees_north",
            standard_name="latitude",
            axis="Y",
        )
        var("longitude", "f4", ("longitude",), longitudes(), units="degrees_east", standard_name="longitude", axis="X")
        var(
            "valid_days",
            "i4",
            ("latitude", "longitude"),
            stats.valid_days[::-1],
            long_name="number of days on which the pixel is valid",
            units="1",
        )
        var(
            "cloudy_days",
            "i4",
            ("latitude", "longitude"),
            stats.cloudy_days[::-1],
            long_name="number of days on which the pixel is cloudy",
            units="1",
        )
        var(
            "cloud_frequency",
            "f4",
            ("latitude", "longitude"),
            np.nan_to_num(stats.frequency[::-1], nan=float(fill)),
            fill_value=fill,
            long_name="water-ice cloud occurrence frequency (cloudy days / valid days)",
            units="1",
            valid_range=np.array([0, 1], np.float32),
        )
        names = ds.createVariable("day_name", str, ("day",))
        names.long_name = "map name"
        for i, d in enumerate(stats.days):
            names[i] = d.name
        var(
            "ls",
            "f4",
            ("day",),
            np.array([d.ls for d in stats.days], np.float32),
            long_name="solar longitude Ls of the map",
            units="degree",
        )
        var(
            "mars_year",
            "i4",
            ("day",),
            np.array([d.mars_year for d in stats.days], np.int32),
            long_name="Mars year (Clancy et al. numbering)",
            units="1",
        )
        var(
            "day_cloud_fraction",
            "f4",
            ("day",),
            np.nan_to_num(np.array([d.cloud_fraction for d in stats.days], np.float32), nan=float(fill)),
            fill_value=fill,
            long_name="cloudy share of the day's valid pixels",
            units="1",
        )
        zonal = np.array([d.zonal for d in stats.days], np.float32).reshape(n_days, stats.n_bands)
        var(
            "lat_band",
            "f4",
            ("lat_band",),
            stats.lat_centres,
            units="degrees_north",
            long_name="latitude band centre",
            bounds="lat_band_bounds",
        )
        var(
            "lat_band_bounds",
            "f4",
            ("lat_band", "nv"),
            np.stack([stats.lat_edges[:-1], stats.lat_edges[1:]], 1),
            units="degrees_north",
        )
        ls_edges = stats.ls_edges
        var(
            "ls_bin",
            "f4",
            ("ls_bin",),
            (ls_edges[:-1] + ls_edges[1:]) / 2,
            units="degree",
            long_name="solar longitude Ls bin centre",
            bounds="ls_bin_bounds",
        )
        var("ls_bin_bounds", "f4", ("ls_bin", "nv"), np.stack([ls_edges[:-1], ls_edges[1:]], 1), units="degree")
        var(
            "zonal_cloud_fraction",
            "f4",
            ("day", "lat_band"),
            np.nan_to_num(zonal, nan=float(fill)),
            fill_value=fill,
            long_name="cloudy share of the valid pixels in the latitude band, per day",
            units="1",
        )
        var(
            "hovmoller_cloud_fraction",
            "f4",
            ("lat_band", "ls_bin"),
            np.nan_to_num(stats.hovmoller, nan=float(fill)),
            fill_value=fill,
            units="1",
            long_name="zonal-mean cloud fraction per latitude band and Ls bin (cloudy / valid pixels), "
            f"Mars years {', '.join(map(str, stats.mars_years))} pooled",
        )
        var(
            "hovmoller_valid_pixels",
            "i8",
            ("lat_band", "ls_bin"),
            stats.hov_valid,
            long_name="valid pixels counted per latitude band and Ls bin",
            units="1",
        )
        ds.setncatts(
            {
                **default_global_attrs(),
                "title": "Water-ice cloud statistics over Mars Daily Global Map cloud masks",
                "Conventions": "CF-1.8",
                "n_days": n_days,
                "lat_bin_deg": stats.lat_bin,
                "ls_bin_deg": stats.ls_bin,
                "threshold": stats.threshold_text(),
                "min_valid_days": np.int32(max(1, stats.min_valid_days)),
                "mars_years": ", ".join(map(str, stats.mars_years)),
                "comment": "grids are south-up (row 0 = latitude -90), like the mask files; "
                "-999 = undefined (no valid pixel)",
            }
        )
    return Path(path)


# --------------------------------------------------------------------------- pictures
def plot_frequency(stats: CloudStats, out_png: str | Path) -> Path:
    """PNG of the cloud occurrence frequency map (grey where never valid), lat/lon ticks."""
    from .view import MAP_EXTENT, geo_axes, pyplot, save_figure

    plt = pyplot()
    freq = stats.frequency
    step = 2  # 1800 x 900 px is plenty for a figure
    fig, ax = plt.subplots(figsize=(12, 6.4))
    cmap = plt.get_cmap("viridis").with_extremes(bad=(0.6, 0.6, 0.6))
    im = ax.imshow(
        np.ma.masked_invalid(freq[::step, ::step]),
        extent=MAP_EXTENT,
        cmap=cmap,
        vmin=0,
        vmax=max(0.05, float(np.nanpercentile(freq, 99.5)) if np.isfinite(freq).any() else 1.0),
        interpolation="nearest",
    )
    fig.colorbar(im, ax=ax, shrink=0.8, label="cloud occurrence frequency (cloudy / valid days)")
    years = stats.mars_years
    ls = [d.ls for d in stats.days]
    geo_axes(
        ax,
        f"Water-ice cloud occurrence: {len(stats.days)} days, Ls {min(ls, default=0):.0f}-"
        f"{max(ls, default=0):.0f}, MY {', '.join(map(str, years))}{' pooled' if len(years) > 1 else ''}, "
        f"threshold {stats.threshold_text()} (grey: valid on fewer than {max(1, stats.min_valid_days)} days)",
    )
    fig.tight_layout()
    return save_figure(fig, out_png)


def plot_hovmoller(stats: CloudStats, out_png: str | Path) -> Path:
    """PNG of the zonal-mean cloud fraction against Ls (x) and latitude (y); blank = no data."""
    from .view import pyplot, save_figure

    plt = pyplot()
    hov = stats.hovmoller
    used = np.flatnonzero(stats.hov_valid.sum(axis=0) > 0)
    fig, ax = plt.subplots(figsize=(10, 5))
    if used.size:
        lo, hi = used[0], used[-1] + 1
        cmap = plt.get_cmap("Blues").with_extremes(bad=(0.75, 0.75, 0.75))
        ax.set_facecolor((0.75, 0.75, 0.75))
        im = ax.pcolormesh(
            stats.ls_edges[lo : hi + 1],
            stats.lat_edges,
            np.ma.masked_invalid(hov[:, lo:hi]),
            cmap=cmap,
            vmin=0,
            shading="flat",
        )
        fig.colorbar(im, ax=ax, label="zonal-mean cloud fraction")
        ax.plot([d.ls for d in stats.days], np.full(len(stats.days), -88.0), "k|", ms=8, label="days")
    ax.set_xlabel("solar longitude Ls (deg)")
    ax.set_ylabel("latitude (deg N)")
    ax.set_ylim(-90, 90)
    ax.set_yticks(np.arange(-90, 91, 30))
    ax.set_title(
        f"Zonal-mean water-ice cloud fraction ({stats.lat_bin:g} deg x Ls {stats.ls_bin:g} deg bins, "
        f"{len(stats.days)} days, MY {', '.join(map(str, stats.mars_years))}"
        f"{' pooled' if len(stats.mars_years) > 1 else ''}; grey: no data)",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, out_png)
