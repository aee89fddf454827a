"""Map geometry of a Mars Daily Global Map: the single source of truth.

Everything that says where a pixel is, which pixels are valid, how a map is padded and how
it is cut into network tiles lives here, as pure functions over NumPy arrays (docs/spec.md
§2 and §4.1-4.2).  ``train_kit`` imports these functions; nothing else recomputes them.

Conventions used throughout the package:

* A map is ``uint8 (1801, 3600, 3)`` RGB, **north-up** (row 0 = latitude +90),
  column 0 = longitude -180, 0.1 deg per pixel.
* Rows and columns are 0-based pixel indices of that north-up map.
* A :class:`Bounds` box is ``[ymin, ymax) x [xmin, xmax)`` (exclusive max).
* The network is a valid-padded U-Net: an input of ``n`` px gives ``n - 2 * margin`` px of
  output.  The shipped depth 4 loses 92 px on each side (:data:`MARGIN`), accepts ``n`` with
  ``n % 16 == 12`` and is equivariant to 16-px shifts (:data:`ALIGN`); a model of another depth
  says its ``margin`` and ``align`` in its metadata, and a :class:`TilePlan` carries them.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

import numpy as np

MAP_HEIGHT = 1801
"""Rows of an MDGM (latitude +90 at row 0, -90 at row 1800)."""
MAP_WIDTH = 3600
"""Columns of an MDGM (longitude -180 at column 0, 179.9 at column 3599)."""
DEG_PER_ROW = 180.0 / MAP_HEIGHT
DEG_PER_COL = 360.0 / MAP_WIDTH

TILE_IN = 668
"""Input tile size of the original plan, px."""
MARGIN = 92
"""Context lost on each side by the valid convolutions, px."""
TILE_OUT = TILE_IN - 2 * MARGIN  # 484
"""Output tile size of the original plan, px."""
ALIGN = 16
"""The net is translation-equivariant for shifts that are multiples of this, px."""
DEFAULT_POLAR_OFFSET = 3.0
"""Offset ``c`` (deg) moving both polar bounds towards the equator."""

INVALID = -999.0
"""Value of invalid pixels in every mask this package writes or reads."""


# --------------------------------------------------------------------------- coordinates
def lat_to_row(lat: float) -> int:
    """Row of the north-up map for a latitude in degrees (Python's round: half to even)."""
    return int(round(900 - lat / DEG_PER_ROW))


def row_to_lat(row):
    """Latitude in degrees of a north-up row or array of rows (inverse of :func:`lat_to_row`)."""
    return (900 - row) * DEG_PER_ROW


def lon_to_col(lon: float) -> int:
    """Column for a longitude in degrees east, -180..179.9 (Python's round)."""
    return int(round(1800 + lon / DEG_PER_COL))


def col_to_lon(col):
    """Longitude in degrees east of a column or array of columns (inverse of :func:`lon_to_col`)."""
    return (col - 1800) * DEG_PER_COL


def latitudes_south_up() -> np.ndarray:
    """float32 latitudes of the NetCDF ``y`` axis: ``linspace(-90, 90, 1801)`` (row 0 = -90)."""
    return np.linspace(-90, 90, MAP_HEIGHT, dtype=np.float32)


def longitudes() -> np.ndarray:
    """float32 longitudes of the ``x`` axis: ``linspace(-180, 179.9, 3600)``."""
    return np.linspace(-180, 179.9, MAP_WIDTH, dtype=np.float32)


# --------------------------------------------------------------------------- bounds
@dataclass(frozen=True)
class Bounds:
    """A box of the north-up map, exclusive max: rows ``ymin..ymax-1``, columns ``xmin..xmax-1``."""

    xmin: int
    xmax: int
    ymin: int
    ymax: int

    def __post_init__(self) -> None:
        if not (0 <= self.xmin < self.xmax <= MAP_WIDTH and 0 <= self.ymin < self.ymax <= MAP_HEIGHT):
            raise ValueError(
                f"bounds out of range: x {self.xmin}..{self.xmax}, y {self.ymin}..{self.ymax} "
                f"(need 0 <= xmin < xmax <= {MAP_WIDTH} and 0 <= ymin < ymax <= {MAP_HEIGHT})"
            )

    @property
    def width(self) -> int:
        return self.xmax - self.xmin

    @property
    def height(self) -> int:
        return self.ymax - self.ymin

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(xmin, xmax, ymin, ymax)``, the order of the ``--bounds`` option."""
        return (self.xmin, self.xmax, self.ymin, self.ymax)


def polar_latitudes(ls: float, offset: float = DEFAULT_POLAR_OFFSET) -> tuple[float, float]:
    """Northern and southern latitude limits (deg) of the usable band for a solar longitude.

    A fit to the MARCI polar-cap edges (Wolff et al. 2019); ``offset`` moves both limits
    towards the equator.  Returns ``(lat_n, lat_s)``.
    """
    if ls <= 180:
        s = 90 - abs(90 - ls)
        return 59 + 0.214 * s - offset, -57 + 0.247 * s + offset
    s = 90 - abs(270 - ls)
    return 59 - 0.214 * s - offset, -57 - 0.247 * s + offset


def polar_rows(ls: float, offset: float = DEFAULT_POLAR_OFFSET) -> tuple[int, int]:
    """``(ylow, yhigh)``: first and last (inclusive) north-up rows of the usable band."""
    lat_n, lat_s = polar_latitudes(ls, offset)
    return lat_to_row(lat_n), lat_to_row(lat_s)


def data_columns(rgb: np.ndarray, threshold: int = 30) -> tuple[int, int] | None:
    """First and last (inclusive) columns holding a pixel whose three channels are all >= 30.

    Returns None for a map with no such pixel (an all-black map).
    """
    # min over the channels, pairwise: ~20x faster than np.all(rgb >= t, axis=2) on a full map
    darkest = np.minimum(np.minimum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])
    bright = (darkest >= threshold).any(axis=0)
    cols = np.flatnonzero(bright)
    if cols.size == 0:
        return None
    return int(cols[0]), int(cols[-1])


def bounds_from_ls(rgb: np.ndarray, ls: float, offset: float = DEFAULT_POLAR_OFFSET) -> Bounds:
    """The original's box for a map: polar rows from Ls, columns from the data (docs/spec.md §2).

    Raises ValueError when the map holds no data pixel at all.
    """
    cols = data_columns(rgb)
    if cols is None:
        raise ValueError("map holds no pixel with all channels >= 30 (no data)")
    ylow, yhigh = polar_rows(ls, offset)
    ylow, yhigh = max(ylow, 0), min(yhigh, MAP_HEIGHT - 1)
    return Bounds(cols[0], cols[1] + 1, ylow, yhigh + 1)


def valid_pixels(rgb: np.ndarray, bounds: Bounds | None = None) -> np.ndarray:
    """Boolean (1801, 3600) north-up: True where the cloud probability is meaningful.

    Invalid: ``(G < 20 and B < 20) or B < 30 or R == 0 or G == 0 or B == 0``, and
    everything outside ``bounds`` when given.
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    bad = ((g < 20) & (b < 20)) | (b < 30) | (r == 0) | (g == 0)
    valid = ~bad
    if bounds is not None:
        inside = np.zeros(valid.shape, dtype=bool)
        inside[bounds.ymin : bounds.ymax, bounds.xmin : bounds.xmax] = True
        valid &= inside
    return valid


# --------------------------------------------------------------------------- tile plans
def aligned_extent(extent: int, tile_out: int = TILE_OUT, align: int = ALIGN) -> int:
    """Smallest output extent >= ``extent`` (and >= ``tile_out``) that a net pass can produce.

    Output sizes of the net are ``4 mod align`` (``4 mod 16`` at depth 4); a whole-map pass over
    a canvas of this extent (+ 2 * margin) gives the same values as :func:`seamless_origins` tiles.
    """
    e = max(extent, tile_out)
    return e + (4 - e) % align


def check_tile_out(tile_out: int, align: int = ALIGN) -> None:
    """Raise ValueError unless the net can produce outputs of ``tile_out`` px (``4 mod align``)."""
    if tile_out < 4 or tile_out % align != 4 % align:
        examples = ", ".join(str(4 + align * k) for k in (484 // align, 676 // align, 964 // align))
        raise ValueError(f"output tile size {tile_out} px is not 4 mod {align} (e.g. {examples})")


def original_origins(extent: int, tile_out: int = TILE_OUT) -> np.ndarray:
    """Tile output origins along one axis, as the original placed them (docs/spec.md §4.2).

    ``splits = ceil(2 * extent / tile_out - 1)`` tiles at ``round(i * extent / (splits + 1))``,
    the last one flush with the far end: about 50 % overlap.  Extents narrower than a tile
    (where the original yields no tile) get one tile at 0, whose output runs past the extent.
    Origins are in output px relative to the first output row/column of the box.
    """
    if extent <= tile_out:
        return np.zeros(1, dtype=np.int64)
    splits = ceil(2 * extent / tile_out - 1)
    origins = np.array([round(i * extent / (splits + 1)) for i in range(splits)], dtype=np.int64)
    origins[-1] = extent - tile_out
    return origins


def seamless_origins(extent: int, tile_out: int = TILE_OUT, align: int = ALIGN) -> np.ndarray:
    """Tile output origins on the ``align``-px grid with abutting outputs (each pixel computed once).

    Step ``tile_out - 4`` (a multiple of ``align``); the last tile ends at :func:`aligned_extent`,
    so every origin is a multiple of ``align`` and all tiles together equal one whole-map pass.
    """
    check_tile_out(tile_out, align)
    full = aligned_extent(extent, tile_out, align)
    step = tile_out - 4
    origins = list(range(0, full - tile_out, step))
    origins.append(full - tile_out)
    return np.array(sorted(set(origins)), dtype=np.int64)


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one map go: windows as data.

    ``ys`` / ``xs`` are output origins (px, relative to ``bounds.ymin`` / ``bounds.xmin``);
    the tiles are every ``(y, x)`` pair, numbered column by column (x outer, y inner), the
    original's order.  Tile ``(y, x)`` reads canvas rows ``y .. y + tile_out + 2*margin`` and
    writes output rows ``y .. y + tile_out`` (same for columns).  ``canvas_h`` / ``canvas_w``
    are the output extents the canvas must cover (>= the box).  ``margin`` and ``align`` are
    the net's (92 and 16 at depth 4).
    """

    bounds: Bounds
    ys: np.ndarray
    xs: np.ndarray
    tile_out: int
    canvas_h: int
    canvas_w: int
    margin: int = MARGIN
    align: int = ALIGN

    @property
    def tile_in(self) -> int:
        return self.tile_out + 2 * self.margin

    @property
    def n_tiles(self) -> int:
        return len(self.ys) * len(self.xs)

    def origins(self) -> np.ndarray:
        """``(n_tiles, 2)`` int64 array of ``(y, x)`` output origins, in tile order."""
        yy, xx = np.meshgrid(self.ys, self.xs, indexing="xy")
        return np.stack([yy.ravel(), xx.ravel()], axis=1)


def plan_tiles(
    bounds: Bounds, mode: str = "seamless", tile_out: int = TILE_OUT, margin: int = MARGIN, align: int = ALIGN
) -> TilePlan:
    """Tile plan for a box: ``"original"`` (the original's ~50 % overlap, for ``center`` and
    ``blend`` stitching) or ``"seamless"`` (``align``-px aligned, abutting), for a net that
    loses ``margin`` px per side and is equivariant to ``align``-px shifts."""
    check_tile_out(tile_out, align)
    if mode == "original":
        ys, xs = original_origins(bounds.height, tile_out), original_origins(bounds.width, tile_out)
        canvas_h = max(bounds.height, tile_out)
        canvas_w = max(bounds.width, tile_out)
    elif mode == "seamless":
        ys, xs = seamless_origins(bounds.height, tile_out, align), seamless_origins(bounds.width, tile_out, align)
        canvas_h = aligned_extent(bounds.height, tile_out, align)
        canvas_w = aligned_extent(bounds.width, tile_out, align)
    else:
        raise ValueError(f"unknown tile plan {mode!r}: use 'original' or 'seamless'")
    return TilePlan(bounds, ys, xs, tile_out, canvas_h, canvas_w, margin, align)


# --------------------------------------------------------------------------- padding
def canvas_rows(bounds: Bounds, out_h: int, margin: int = MARGIN) -> np.ndarray:
    """North-up map rows feeding canvas rows ``0 .. out_h + 2*margin`` (int64 index array).

    Canvas row ``k`` is map row ``ymin - margin + k``.  Rows past the top of the map are
    overwritten with the rows starting at ``ymin``, mirrored; rows past the bottom with the
    rows ending at ``ymax - 1``, mirrored (docs/spec.md §4.1).  With Ls-derived bounds and the
    original plan this never happens.
    """
    rows = np.arange(bounds.ymin - margin, bounds.ymin + out_h + margin, dtype=np.int64)
    top = rows < 0
    m = int(top.sum())
    if m:
        # the block ymin .. ymin+m-1, mirrored: the canvas row next to map row 0 gets ymin
        rows[:m] = bounds.ymin + np.arange(m - 1, -1, -1)
    bottom = rows >= MAP_HEIGHT
    m = int(bottom.sum())
    if m:
        last = bounds.ymax - 1
        # the block ending at ymax-1, mirrored: the canvas row next to the last map row gets ymax-1
        rows[-m:] = last - np.arange(m)
    return np.clip(rows, 0, MAP_HEIGHT - 1)


def canvas_cols(bounds: Bounds, out_w: int, margin: int = MARGIN) -> np.ndarray:
    """Map columns feeding canvas columns ``0 .. out_w + 2*margin``: longitude wraps around."""
    return np.arange(bounds.xmin - margin, bounds.xmin + out_w + margin, dtype=np.int64) % MAP_WIDTH


def build_canvas(rgb: np.ndarray, plan: TilePlan) -> np.ndarray:
    """The padded uint8 canvas that every tile of ``plan`` is cut from, north-up.

    Shape ``(plan.canvas_h + 2*margin, plan.canvas_w + 2*margin, C)`` with the plan's margin,
    ``C`` the channels of ``rgb`` (3, or 3 + k for a model input of :mod:`.channels`);
    canvas pixel ``(margin, margin)`` is map pixel ``(ymin, xmin)``.
    """
    rows = canvas_rows(plan.bounds, plan.canvas_h, plan.margin)
    cols = canvas_cols(plan.bounds, plan.canvas_w, plan.margin)
    return np.ascontiguousarray(rgb[rows[:, None], cols[None, :]])


def tile_input(canvas: np.ndarray, plan: TilePlan, y: int, x: int) -> np.ndarray:
    """View of the input window of the tile with output origin ``(y, x)``: (tile_in, tile_in, C)."""
    n = plan.tile_in
    return canvas[y : y + n, x : x + n]
