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
_EXTRA = re.compile(r"^(?P<kind>bdiff|bratio)(?P<q>\d{1,2})$|^(?P<lat>lat)$|^(?P<season>sinls|cosls)$|^(?P<cosi>cosi)$")
DIFF_ZERO = 128
RATIO_ONE = 64
OBLIQUITY_DEG = 25.19  # Mars' axial tilt: solar declination = asin(sin(25.19 deg) sin(Ls))
LOCAL_TIME_H = 15.0  # MARCI's afternoon orbit: the MDGM's local solar time (hours), about 15:00


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
                "(known: bdiffQ, bratioQ with Q a percentile 0-99, lat, sinls, cosls, cosi)"
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
