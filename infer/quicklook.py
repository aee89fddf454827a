"""Fast quicklook PNGs of masks (Pillow + NumPy), for ``cm-infer --quicklook``.

:func:`save_quicklook` is called once per map: the map shrunk 4x (900 x 451 px), clouds
tinted, invalid pixels dimmed.  It must cost a small fraction of a map's inference, so it
never touches matplotlib: Pillow's box reduction does the shrinking and NumPy blends on the
small image only (``benchmarks/science.py`` measures it).  The annotated matplotlib views
(``cm-view``, ``cm-eval --png``) live in :mod:`mars_cloudmask.infer.science.view` and reuse
:func:`composite`.

All arrays are **north-up** (row 0 = latitude +90), column 0 = longitude -180.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
LEGEND_HEIGHT = 40
"""Height in px of the legend strip under the quicklook (two lines of text)."""
LEGEND_BACKGROUND = (24, 24, 24)
LEGEND_TEXT = (235, 235, 235)


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


def legend_lines(caption: str, threshold: float, cloud_fraction: float, invalid_fraction: float) -> tuple[str, str]:
    """The two text lines of a quicklook's legend: what the picture is, then what its colours mean.

    ``cloud_fraction``: cloudy share of the valid pixels; ``invalid_fraction``: invalid share of
    the whole map (both in [0, 1]; NaN when undefined, shown as 'n/a')."""

    def pct(v: float) -> str:
        return "n/a" if not np.isfinite(v) else f"{100 * v:.1f} %"

    head = f"{caption}  |  threshold {threshold:g}" if caption else f"threshold {threshold:g}"
    key = f"cloud: {pct(cloud_fraction)} of valid pixels        invalid (dimmed): {pct(invalid_fraction)} of the map"
    return head, key


def add_legend(small: np.ndarray, lines: tuple[str, str]) -> np.ndarray:
    """``small`` (uint8 RGB) with a :data:`LEGEND_HEIGHT` px strip below it: a cloud-tint and a
    dimmed swatch in front of the second line, the text in Pillow's built-in font."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = small.shape[:2]
    im = Image.new("RGB", (w, h + LEGEND_HEIGHT), LEGEND_BACKGROUND)
    im.paste(Image.fromarray(small, mode="RGB"), (0, 0))
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=13)
    draw.text((6, h + 3), lines[0], fill=LEGEND_TEXT, font=font)
    y = h + 22
    draw.rectangle((6, y + 2, 16, y + 12), fill=CLOUD_TINT)
    draw.text((22, y), lines[1], fill=LEGEND_TEXT, font=font)
    # the dimmed swatch sits just before the word 'invalid'
    x = 22 + draw.textlength(lines[1].split("invalid")[0], font=font) - 14
    dimmed = tuple(int(c * DIM) for c in (200, 200, 200))
    draw.rectangle((x, y + 2, x + 10, y + 12), fill=dimmed, outline=(90, 90, 90))
    return np.asarray(im)


def save_quicklook(
    png_path: Path, rgb: np.ndarray, mask: np.ndarray, threshold: float, caption: str | None = None
) -> Path:
    """Write the quicklook PNG of one map and its mask, atomically.

    Args:
        png_path: the PNG to write (folder created if missing).
        rgb: uint8 ``(1801, 3600, 3)`` map, north-up.
        mask: float32 ``(1801, 3600)`` north-up; -999 invalid, else probability or 0/1.
        threshold: cloud where ``mask >= threshold``.
        caption: first legend line, e.g. ``"P01_day16  |  MY 28  |  Ls 133.4"``; default: the
            PNG's name without ``cloudmask_`` and suffix.

    Returns:
        ``png_path``: 900 x 491 px, the map (900 x 451) with clouds tinted :data:`CLOUD_TINT`
        and invalid pixels dimmed, over a legend strip (caption, threshold, cloud and invalid
        fractions).  About 30 ms on this project's CPU (``python -m mars_cloudmask.benchmarks.science``).
    """
    from PIL import Image

    if rgb.shape[:2] != mask.shape:
        raise ValueError(f"{png_path}: map shape {rgb.shape[:2]} and mask shape {mask.shape} differ")
    valid = mask > INVALID + 0.5
    cloud = valid & (mask >= threshold)
    small = composite(rgb, valid, [(cloud, CLOUD_TINT)], QUICKLOOK_FACTOR)
    png_path = Path(png_path)
    n_valid = int(valid.sum())
    if caption is None:
        caption = png_path.stem.removeprefix("cloudmask_")
    lines = legend_lines(
        caption,
        threshold,
        int(cloud.sum()) / n_valid if n_valid else float("nan"),
        1 - n_valid / valid.size,
    )
    with atomic_path(png_path) as tmp:
        Image.fromarray(add_legend(small, lines), mode="RGB").save(tmp, format="PNG", compress_level=1)
    return png_path
