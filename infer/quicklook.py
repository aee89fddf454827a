"""Pictures of masks: fast quicklook PNGs (Pillow + NumPy) and annotated views (matplotlib).

* :func:`save_quicklook` is called by ``cm-infer --quicklook`` once per map: the map shrunk
  4x (900 x 451 px), clouds tinted, invalid pixels dimmed.  It must cost a small fraction of
  a map's inference, so it never touches matplotlib: Pillow's box reduction does the
  shrinking and NumPy blends on the small image only.
* :func:`render_view` draws one mask (and the map under it) with latitude/longitude ticks,
  for ``cm-view`` and the ``cm-eval --png`` pictures.

All arrays are **north-up** (row 0 = latitude +90), column 0 = longitude -180.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .geometry import INVALID

QUICKLOOK_FACTOR = 4
"""Quicklook shrink factor: 3600 x 1801 -> 900 x 451 px."""
CLOUD_TINT = (255, 40, 200)
"""RGB of the cloud tint (magenta: clouds are white-blue on the maps, magenta stands out)."""
TINT_ALPHA = 0.6
"""Weight of the tint on a fully cloudy pixel."""
DIM = 0.3
"""Brightness kept by an invalid pixel."""
NO_MAP_GREY = 110
"""Background grey used when no map is given."""


def reduce_fraction(flags: np.ndarray, factor: int) -> np.ndarray:
    """Share of True pixels in each ``factor x factor`` block of a boolean image, float32 in [0, 1].

    Edge blocks that the image does not fill are averaged over the pixels present (Pillow's
    ``reduce``), so the result has ``ceil(h / factor) x ceil(w / factor)`` pixels.
    """
    from PIL import Image

    if factor == 1:
        return flags.astype(np.float32)
    im = Image.fromarray(flags.astype(np.uint8) * np.uint8(255), mode="L").reduce(factor)
    return np.asarray(im, dtype=np.float32) * np.float32(1 / 255)


def reduce_rgb(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Box-mean shrink of a uint8 RGB image by ``factor`` (Pillow), as float32."""
    from PIL import Image

    if factor == 1:
        return rgb.astype(np.float32)
    return np.asarray(Image.fromarray(rgb, mode="RGB").reduce(factor), dtype=np.float32)


def composite(
    rgb: np.ndarray | None,
    valid: np.ndarray,
    layers: Sequence[tuple[np.ndarray, tuple[int, int, int]]],
    factor: int = 1,
    alpha: float = TINT_ALPHA,
) -> np.ndarray:
    """The map shrunk by ``factor``, each layer tinted in its colour, invalid pixels dimmed.

    Args:
        rgb: uint8 ``(H, W, 3)`` map, or None for a uniform grey background.
        valid: boolean ``(H, W)``, False where the mask is invalid (dimmed to :data:`DIM`).
        layers: ``(boolean (H, W), (r, g, b))`` pairs; a block partly covered by a layer is
            tinted in proportion.  Layers should not overlap.
        factor: shrink factor (box mean).
        alpha: tint weight on a fully covered pixel.

    Returns:
        uint8 ``(ceil(H / factor), ceil(W / factor), 3)``.
    """
    if rgb is None:
        h, w = -(-valid.shape[0] // factor), -(-valid.shape[1] // factor)
        out = np.full((h, w, 3), NO_MAP_GREY, dtype=np.float32)
    else:
        out = reduce_rgb(rgb, factor)
    for flags, colour in layers:
        frac = reduce_fraction(flags, factor)[..., None] * np.float32(alpha)
        out = out * (1 - frac) + np.asarray(colour, dtype=np.float32) * frac
    keep = DIM + (1 - DIM) * reduce_fraction(valid, factor)
    out *= keep[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def save_quicklook(png_path: Path, rgb: np.ndarray, mask: np.ndarray, threshold: float) -> Path:
    """Write the quicklook PNG of one map and its mask, atomically.

    Args:
        png_path: the PNG to write (folder created if missing).
        rgb: uint8 ``(1801, 3600, 3)`` map, north-up.
        mask: float32 ``(1801, 3600)`` north-up; -999 invalid, else probability or 0/1.
        threshold: cloud where ``mask >= threshold``.

    Returns:
        ``png_path``: 900 x 451 px, clouds tinted :data:`CLOUD_TINT`, invalid pixels dimmed.
        About 30 ms on this project's CPU (see ``tests/test_quicklook.py``).
    """
    from PIL import Image

    if rgb.shape[:2] != mask.shape:
        raise ValueError(f"{png_path}: map shape {rgb.shape[:2]} and mask shape {mask.shape} differ")
    valid = mask > INVALID + 0.5
    cloud = valid & (mask >= threshold)
    small = composite(rgb, valid, [(cloud, CLOUD_TINT)], QUICKLOOK_FACTOR)
    png_path = Path(png_path)
    with atomic_path(png_path) as tmp:
        Image.fromarray(small, mode="RGB").save(tmp, format="PNG", compress_level=1)
    return png_path


# --------------------------------------------------------------------------- matplotlib views
def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use."""
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
    handles = [Patch(color=np.asarray(c) / 255, label=label) for _, c, label in layers]
    handles.append(Patch(color=(DIM * 0.5,) * 3, label="invalid (dimmed)"))
    ax.legend(handles=handles, loc="lower left", fontsize=8, framealpha=0.8)
    fig.tight_layout()
    return save_figure(fig, out_png)


def view_mask(out_png: str | Path, mask_path: str | Path, map_path: str | Path | None = None,
              threshold: float | None = None) -> Path:
    """``cm-view``: render one mask file (cloud tint over its map if given) with lat/lon ticks.

    The threshold is ``threshold``, else the file's ``threshold`` attribute, else 0.912;
    label files (blue-channel numbers) therefore show every labelled pixel as cloud.
    """
    from .maps import read_map
    from .masks import file_threshold
    from .netcdf import read_attrs, read_mask

    values = read_mask(mask_path)
    thr = file_threshold(read_attrs(mask_path), threshold)
    valid = values > INVALID + 0.5
    cloud = valid & (values >= thr)
    rgb = read_map(map_path) if map_path is not None else None
    share = cloud.sum() / max(int(valid.sum()), 1)
    title = f"{Path(mask_path).name}: cloud {share:.1%} of valid pixels (threshold {thr:g})"
    return render_view(out_png, rgb, valid, [(cloud, CLOUD_TINT, "cloud")], title)
