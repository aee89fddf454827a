"""The model's input channels beyond RGB: the one definition used by training and inference.

A channel spec is a comma-separated list of names, ``rgb`` first (the map's three channels
as they are), e.g. ``"rgb"`` (version 1 and 2 models) or ``"rgb,bdiff10,bdiff50"``.  Every
extra channel is uint8, north-up, the map's shape, so the model takes one uint8
``(H, W, 3 + k)`` array and scales it by 1/255 like the RGB:

- ``bdiffQ``: the pixel's blue minus the ``Q``-th percentile of its subphase's background blue
  (:mod:`.background`), stored as ``128 + difference`` clipped to 0..255.  128 (no contrast)
  where the pixel or the background has no data.  Contrast against the usual ground, not place.
- ``bratioQ``: blue over the ``Q``-th background percentile, stored as ``64 x ratio`` rounded
  and clipped to 0..255 (1.0 -> 64); 64 where either side has no data.
- ``lat``: latitude of the row, ``(lat + 90) / 180 x 255`` rounded (position: it lets the net
  learn where clouds usually are, which does not transfer across seasons; for comparison arms).
- ``sinls`` / ``cosls``: the map's season, ``128 + 127 x sin(Ls)`` (``cos``) rounded, constant
  over the map (with ``lat`` and weak targets of every season: geography learnt per season).
- ``blocal``: the pixel's blue minus the local median of the same map's blue, stored as
  ``128 + difference`` like ``bdiffQ``: the median over the valid pixels of each 1-degree
  cell (10 x 10 px), then over the 31 cells of its row of cells (+-15 degrees of longitude,
  wrapping at 180 E), interpolated bilinearly back to pixels (:func:`local_median_blue`).
  Contrast against the same day's ground around it, beyond the net's 92 px of context; needs
  no composite and no position.  128 where the pixel has no data or no cell near it has.
- ``cosi``: cosine of the solar incidence angle of each row at MARCI's local time (about
  15:00) for the map's Ls, ``128 + 127 x cos i`` rounded (negative: the sun is down).
  Illumination is physics, but within one season it is a function of latitude: it transfers
  only if training sees several seasons (weak targets).

Pure NumPy; no TensorFlow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .background import Background
from .geometry import row_to_lat, valid_pixels

RGB = "rgb"
DEFAULT_SPEC = RGB
_EXTRA = re.compile(
    r"^(?P<kind>bdiff|bratio)(?P<q>\d{1,2})$|^(?P<lat>lat)$|^(?P<season>sinls|cosls)$|^(?P<cosi>cosi)$"
    r"|^(?P<local>blocal)$"
)
DIFF_ZERO = 128
RATIO_ONE = 64
OBLIQUITY_DEG = 25.19  # Mars' axial tilt: solar declination = asin(sin(25.19 deg) sin(Ls))
LOCAL_TIME_H = 15.0  # MARCI's afternoon orbit: the MDGM's local solar time (hours), about 15:00
LOCAL_CELL = 10  # px: blocal's cells, 1 degree on a side
LOCAL_HALF_CELLS = 15  # blocal's window: this many cells either side along the row (+-15 degrees)


class ChannelError(ValueError):
    """A channel spec that cannot be used, or a missing input it needs (message says which)."""


@dataclass(frozen=True)
class ChannelSpec:
    """The parsed spec: ``extras`` names in order (``rgb`` is always channels 0-2)."""

    extras: tuple[str, ...] = ()

    @property
    def n_channels(self) -> int:
        return 3 + len(self.extras)

    @property
    def text(self) -> str:
        return ",".join((RGB, *self.extras))

    def percentiles(self) -> list[int]:
        """Background percentiles the extras need (empty: no background needed)."""
        qs = []
        for name in self.extras:
            m = _EXTRA.match(name)
            if m and m["q"] is not None and int(m["q"]) not in qs:
                qs.append(int(m["q"]))
        return qs

    @property
    def needs_background(self) -> bool:
        return bool(self.percentiles())


def parse_spec(text: str) -> ChannelSpec:
    """``"rgb,bdiff10"`` -> ChannelSpec(("bdiff10",)); ChannelError for an unknown name or no leading rgb."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names or names[0] != RGB:
        raise ChannelError(f"channel spec {text!r}: must start with 'rgb'")
    extras = tuple(names[1:])
    for name in extras:
        if not _EXTRA.match(name):
            raise ChannelError(
                f"channel spec {text!r}: unknown channel {name!r} "
                "(known: bdiffQ, bratioQ with Q a percentile 0-99, blocal, lat, sinls, cosls, cosi)"
            )
    if len(set(extras)) != len(extras):
        raise ChannelError(f"channel spec {text!r}: a channel is listed twice")
    return ChannelSpec(extras)


def blue_difference(rgb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """uint8 ``128 + (B - background)`` clipped to 0..255; 128 where the map pixel is invalid
    or the background is NaN.  ``background``: float32 (H, W), data numbers."""
    valid = valid_pixels(rgb) & np.isfinite(background)
    diff = rgb[..., 2].astype(np.float32) - np.nan_to_num(background)
    out = np.clip(np.rint(diff) + DIFF_ZERO, 0, 255).astype(np.uint8)
    out[~valid] = DIFF_ZERO
    return out


def blue_ratio(rgb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """uint8 ``64 x B / background`` clipped to 0..255; 64 where the map pixel is invalid or the
    background is NaN or below 1."""
    bg = np.nan_to_num(background, nan=0.0)
    valid = valid_pixels(rgb) & (bg >= 1.0)
    ratio = rgb[..., 2].astype(np.float32) / np.maximum(bg, 1.0)
    out = np.clip(np.rint(ratio * RATIO_ONE), 0, 255).astype(np.uint8)
    out[~valid] = RATIO_ONE
    return out


def _nan_median_last(a: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN (NaN where all are): a sort, NaN last, instead of
    ``np.nanmedian`` (several times slower on many short rows)."""
    s = np.sort(a, axis=-1)
    n = np.isfinite(s).sum(axis=-1)
    lo = np.take_along_axis(s, np.maximum((n - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(s, np.minimum(n // 2, s.shape[-1] - 1)[..., None], axis=-1)[..., 0]
    return np.where(n > 0, (lo + hi) / 2, np.nan)


def _bilinear_wrap(cells: np.ndarray, shape: tuple[int, int], cell: int) -> np.ndarray:
    """float32 ``shape``: ``cells`` (one value per ``cell`` x ``cell`` block, NaN no data) interpolated
    bilinearly at pixel centres, wrapping in longitude; NaN corners are left out of the weights."""
    h, w = shape
    ny, nx = cells.shape
    py = np.clip((np.arange(h) + 0.5) / cell - 0.5, 0, ny - 1)
    px = (np.arange(w) + 0.5) / cell - 0.5
    y0 = np.minimum(np.floor(py).astype(np.int64), ny - 1)
    y1 = np.minimum(y0 + 1, ny - 1)
    fy = (py - y0).astype(np.float32)[:, None]
    x0f = np.floor(px).astype(np.int64)
    fx = (px - x0f).astype(np.float32)[None, :]
    x0, x1 = x0f % nx, (x0f + 1) % nx
    num = np.zeros(shape, np.float32)
    den = np.zeros(shape, np.float32)
    for rows, wy in ((y0, 1 - fy), (y1, fy)):
        for cols, wx in ((x0, 1 - fx), (x1, fx)):
            v = cells[rows][:, cols]
            wgt = wy * wx * np.isfinite(v)
            num += wgt * np.nan_to_num(v)
            den += wgt
    return np.where(den > 0, num / np.maximum(den, 1e-12), np.nan).astype(np.float32)


def local_median_blue(rgb: np.ndarray, cell: int = LOCAL_CELL, half_cells: int = LOCAL_HALF_CELLS) -> np.ndarray:
    """float32 (H, W) north-up: the local median of the map's valid blue (data numbers), NaN where
    no cell near the pixel has data.  Per ``cell`` x ``cell`` block the median of its valid pixels;
    then per block the median of the ``2 half_cells + 1`` blocks of its row of blocks centred on
    it (wrapping in longitude; blocks without data left out); then bilinear back to pixels."""
    h, w = rgb.shape[:2]
    ny, nx = -(-h // cell), -(-w // cell)
    b = np.full((ny * cell, nx * cell), np.nan, np.float32)
    b[:h, :w] = np.where(valid_pixels(rgb), rgb[..., 2].astype(np.float32), np.nan)
    cells = _nan_median_last(b.reshape(ny, cell, nx, cell).transpose(0, 2, 1, 3).reshape(ny, nx, cell * cell))
    k = min(half_cells, (nx - 1) // 2)
    padded = np.concatenate([cells[:, nx - k :], cells, cells[:, :k]], axis=1) if k else cells
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1, axis=1)  # (ny, nx, 2k+1)
    return _bilinear_wrap(_nan_median_last(windows), (h, w), cell)


def latitude_channel(shape: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W): ``(lat + 90) / 180 x 255`` of each north-up row (row 0 ~ 255, 90 N)."""
    lat = row_to_lat(np.arange(shape[0], dtype=np.float64))
    col = np.clip(np.rint((lat + 90.0) / 180.0 * 255.0), 0, 255).astype(np.uint8)
    return np.broadcast_to(col[:, None], shape).copy()


def season_channel(shape: tuple[int, int], ls: float, kind: str) -> np.ndarray:
    """uint8 (H, W) constant ``128 + 127 x sin(Ls)`` (``kind`` ``sinls``) or ``cos(Ls)`` (``cosls``); Ls in degrees."""
    f = np.sin if kind == "sinls" else np.cos
    return np.full(shape, int(np.rint(128 + 127 * f(np.radians(ls)))), dtype=np.uint8)


def cos_incidence(lat_deg: np.ndarray, ls: float, local_time_h: float = LOCAL_TIME_H) -> np.ndarray:
    """cos of the solar incidence angle at latitudes ``lat_deg`` (deg) for Ls ``ls`` (deg) and local
    solar time ``local_time_h`` (hours): ``sin(lat) sin(dec) + cos(lat) cos(dec) cos(hour angle)``."""
    dec = np.arcsin(np.sin(np.radians(OBLIQUITY_DEG)) * np.sin(np.radians(ls)))
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    hour = np.radians((local_time_h - 12.0) * 15.0)
    return np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(hour)


def incidence_channel(shape: tuple[int, int], ls: float) -> np.ndarray:
    """uint8 (H, W): ``128 + 127 x cos i`` of each north-up row at :data:`LOCAL_TIME_H` for ``ls`` (deg)."""
    mu = cos_incidence(row_to_lat(np.arange(shape[0], dtype=np.float64)), ls)
    col = np.clip(np.rint(128 + 127 * mu), 0, 255).astype(np.uint8)
    return np.broadcast_to(col[:, None], shape).copy()


def extra_channels(
    rgb: np.ndarray, spec: ChannelSpec, background: Background | None = None, ls: float | None = None
) -> np.ndarray:
    """uint8 ``(H, W, k)`` of the spec's extras for one north-up RGB map (``k`` may be 0).

    ``ls``: the map's solar longitude (deg), for ``sinls`` / ``cosls``.  Raises ChannelError
    when a channel needs a background (or Ls) and none (or one without its percentile) is given.
    """
    h, w = rgb.shape[:2]
    planes = []
    for name in spec.extras:
        m = _EXTRA.match(name)
        if m is None:  # the spec was parsed: only known names reach here
            raise ChannelError(f"unknown channel {name!r}")
        if m["lat"]:
            planes.append(latitude_channel((h, w)))
            continue
        if m["local"]:
            planes.append(blue_difference(rgb, local_median_blue(rgb)))
            continue
        if m["season"] or m["cosi"]:
            if ls is None:
                raise ChannelError(f"channel {name} needs the map's Ls, none given")
            planes.append(incidence_channel((h, w), ls) if m["cosi"] else season_channel((h, w), ls, m["season"]))
            continue
        q = int(m["q"])
        if background is None:
            raise ChannelError(f"channel {name} needs a background composite, none given")
        try:
            plane = background.plane(q)
        except KeyError as exc:
            raise ChannelError(f"channel {name}: {exc.args[0]}") from None
        if plane.shape != (h, w):
            raise ChannelError(f"channel {name}: background is {plane.shape}, map {(h, w)}")
        planes.append(blue_difference(rgb, plane) if m["kind"] == "bdiff" else blue_ratio(rgb, plane))
    if not planes:
        return np.zeros((h, w, 0), dtype=np.uint8)
    return np.stack(planes, axis=-1)


def model_input(
    rgb: np.ndarray, spec: ChannelSpec, background: Background | None = None, ls: float | None = None
) -> np.ndarray:
    """uint8 ``(H, W, 3 + k)``: the map's RGB followed by the spec's extras (``rgb`` itself for the rgb spec)."""
    if not spec.extras:
        return rgb
    return np.concatenate([rgb, extra_channels(rgb, spec, background, ls)], axis=-1)
