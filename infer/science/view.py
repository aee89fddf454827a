"""Annotated pictures of masks (matplotlib): ``cm-view``, the ``cm-eval --png`` and ``cm-stats --png`` figures.

matplotlib comes with the ``science`` extra; :func:`pyplot` raises :class:`MissingExtraError`
(one line naming the extra) when it is not installed.

All arrays are **north-up** (row 0 = latitude +90), column 0 = longitude -180.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..geometry import INVALID
from ..quicklook import CLOUD_TINT, DIM, composite

SCIENCE_EXTRA = "mars-cloudmask[science]"
"""The extra that brings matplotlib."""


class MissingExtraError(ImportError):
    """matplotlib is not installed; the one-line message names the ``science`` extra."""


def require_matplotlib(what: str = "this command") -> None:
    """Raise :class:`MissingExtraError` (one line naming the ``science`` extra) unless matplotlib imports."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingExtraError(f'{what} needs matplotlib: pip install "{SCIENCE_EXTRA}"') from None


def default_view_path(mask_path: str | Path) -> Path:
    """Where ``cm-view`` writes by default: ``<mask stem>_view.png`` beside the mask.

    Not ``<mask stem>.png``: that is ``cm-infer --quicklook``'s file, which a view must not replace.
    """
    mask_path = Path(mask_path)
    return mask_path.with_name(f"{mask_path.stem}_view.png")


# --------------------------------------------------------------------------- matplotlib views
def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use.

    Raises :class:`MissingExtraError` when matplotlib is not installed.
    """
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """Save a matplotlib figure as PNG atomically, then close it."""
    plt = pyplot()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return path


MAP_EXTENT = (-180.0, 180.0, -90.0, 90.0)
"""imshow extent of a north-up map: longitude -180..180 east, latitude -90..90."""


def geo_axes(ax: Any, title: str = "") -> None:
    """Latitude/longitude ticks every 30 degrees on an axis showing a whole map."""
    ax.set_xticks(np.arange(-180, 181, 60))
    ax.set_yticks(np.arange(-90, 91, 30))
    ax.set_xlabel("longitude (deg E)")
    ax.set_ylabel("latitude (deg N)")
    if title:
        ax.set_title(title, fontsize=10)


def render_view(
    out_png: str | Path,
    rgb: np.ndarray | None,
    valid: np.ndarray,
    layers: Sequence[tuple[np.ndarray, tuple[int, int, int], str]],
    title: str = "",
    factor: int = 2,
) -> Path:
    """Draw a map with coloured layers and a legend, latitude/longitude ticks, as a PNG.

    Args:
        out_png: the PNG to write.
        rgb: uint8 north-up map or None (grey background).
        valid: boolean north-up; invalid pixels are dimmed.
        layers: ``(boolean north-up, (r, g, b), legend label)`` triples.
        title: figure title.
        factor: shrink factor before drawing (2 keeps the figure readable and small).
    """
    from matplotlib.patches import Patch

    plt = pyplot()
    image = composite(rgb, valid, [(flags, colour) for flags, colour, _ in layers], factor)
    fig, ax = plt.subplots(figsize=(12, 6.4))
    ax.imshow(image, extent=MAP_EXTENT, interpolation="nearest", aspect="equal")
    geo_axes(ax, title)
    handles = [Patch(color=(c[0] / 255, c[1] / 255, c[2] / 255), label=label) for _, c, label in layers]
    handles.append(Patch(color=(DIM * 0.5,) * 3, label="invalid (dimmed)"))
    ax.legend(handles=handles, loc="lower left", fontsize=8, framealpha=0.8)
    fig.tight_layout()
    return save_figure(fig, out_png)


@dataclass(frozen=True)
class MaskView:
    """What ``cm-view`` draws: the map (or None), north-up validity, cloud and values, and a title.

    ``probability``: the mask's values where valid (NaN elsewhere) when they are probabilities,
    None for 0/1 masks and label files (nothing between clear and cloud to show)."""

    rgb: np.ndarray | None
    valid: np.ndarray
    cloud: np.ndarray
    title: str
    probability: np.ndarray | None = None


def view_title(name: str, mars_year: int | None, ls: float | None, share: float, threshold: float) -> str:
    """``"P01_day16  MY 28  Ls 133.4: cloud 19.7 % of valid pixels (threshold 0.47)"``; an unknown
    Mars year or Ls is left out."""
    when = "".join([f"  MY {mars_year}" if mars_year is not None else "", f"  Ls {ls:.1f}" if ls is not None else ""])
    return f"{name}{when}: cloud {100 * share:.1f} % of valid pixels (threshold {threshold:g})"


def read_view(mask_path: str | Path, map_path: str | Path | None = None, threshold: float | None = None) -> MaskView:
    """Read one mask file (and its map if given) for :func:`view_mask`, north-up.

    The threshold is ``threshold``, else the file's ``threshold`` attribute, else 0.912;
    label files (blue-channel numbers) therefore show every labelled pixel as cloud.  The
    title names the map, its Mars year and Ls (from the file's time coordinates, when it has them).
    Raises :class:`~.masks.MaskShapeError` for a mask that is not 1801 x 3600,
    :class:`~.masks.MaskValueError` for NaN or values outside [0, 1] in a file that is not a
    label file (:func:`~.masks.reference_kind`), ``MapError`` for a bad map, OSError for an
    unreadable file.
    """
    from ..maps import read_map
    from ..netcdf import read_attrs, read_time_coords
    from .masks import MaskValueError, file_threshold, read_values, reference_kind, value_problem

    values = read_values(mask_path, label=True)
    attrs = read_attrs(mask_path)
    problem = value_problem(values, label=False)
    labels = False
    if problem is not None:
        try:
            labels = reference_kind(values, attrs)[0] == "labels"
        except ValueError:
            labels = False
        if not labels:
            raise MaskValueError(f"{mask_path}: {problem}")
    thr = file_threshold(attrs, threshold)
    valid = values > INVALID + 0.5
    cloud = valid & (values >= thr)
    rgb = read_map(map_path) if map_path is not None else None
    share = cloud.sum() / max(int(valid.sum()), 1)
    coords = read_time_coords(mask_path)
    probability = None
    inside = values[valid]
    if not labels and inside.size and not np.isin(inside, (0.0, 1.0)).all():
        probability = np.where(valid, values, np.float32(np.nan)).astype(np.float32)
    title = view_title(Path(mask_path).name, coords.mars_year, coords.ls, float(share), thr)
    return MaskView(rgb, valid, cloud, title, probability)


def draw_view(out_png: str | Path, view: MaskView, probability: bool = False) -> Path:
    """Write the PNG of a :class:`MaskView`: clouds tinted :data:`CLOUD_TINT`, lat/lon ticks; with
    ``probability``, the cloud probability in colour over the map, with a colour bar.

    Raises ValueError (one line) when ``probability`` is asked of a 0/1 mask or a label file."""
    if not probability:
        return render_view(out_png, view.rgb, view.valid, [(view.cloud, CLOUD_TINT, "cloud")], view.title)
    if view.probability is None:
        raise ValueError("holds 0/1 values or labels, no probability to show (drop --probability)")
    return render_probability(out_png, view.rgb, view.valid, view.probability, view.title)


def render_probability(
    out_png: str | Path, rgb: np.ndarray | None, valid: np.ndarray, prob: np.ndarray, title: str, factor: int = 2
) -> Path:
    """Draw the cloud probability (0-1, colour map ``viridis``) over the map, transparent below
    0.05 so the ground shows, invalid pixels dimmed, with a colour bar; north-up arrays."""
    plt = pyplot()
    image = composite(rgb, valid, [], factor)
    small = prob[::factor, ::factor]
    shown = np.ma.masked_where(~np.isfinite(small) | (small < 0.05), small)
    fig, ax = plt.subplots(figsize=(12.8, 6.4))
    ax.imshow(image, extent=MAP_EXTENT, interpolation="nearest", aspect="equal")
    art = ax.imshow(shown, extent=MAP_EXTENT, interpolation="nearest", aspect="equal", cmap="viridis",
                    vmin=0.0, vmax=1.0, alpha=0.85)
    geo_axes(ax, title)
    bar = fig.colorbar(art, ax=ax, fraction=0.025, pad=0.02)
    bar.set_label("cloud probability (below 0.05 not drawn)")
    fig.tight_layout()
    return save_figure(fig, out_png)


def view_mask(
    out_png: str | Path, mask_path: str | Path, map_path: str | Path | None = None, threshold: float | None = None
) -> Path:
    """``cm-view``: render one mask file (cloud tint over its map if given) with lat/lon ticks
    (:func:`read_view`, then :func:`draw_view`)."""
    return draw_view(out_png, read_view(mask_path, map_path, threshold))
