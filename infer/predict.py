"""Cloud probability of one map: tile plan, model, stitching (the core of the Python API).

Example::

    from mars_cloudmask.infer.maps import read_map
    from mars_cloudmask.infer.runtime import load_model
    from mars_cloudmask.infer.predict import predict

    model = load_model("cloudmask.onnx")
    prob = predict(model, read_map("P01_day01_zequat.jpg"), ls=132.5)
    # float32 (1801, 3600), north-up, -999 invalid, else the cloud probability

A model with extra input channels (``model.info.input_channels``, :mod:`.channels`) gets the per-map input of
:func:`.channels.model_input` (``background=``: the subphase's composite, :mod:`.background`,
for the ``bdiffQ`` / ``bratioQ`` channels); the tiles are then ``(H, W, 3 + k)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from .channels import model_input, parse_spec
from .geometry import (
    ALIGN,
    DEFAULT_POLAR_OFFSET,
    INVALID,
    MAP_HEIGHT,
    MAP_WIDTH,
    MARGIN,
    Bounds,
    TilePlan,
    bounds_from_ls,
    build_canvas,
    data_columns,
    plan_tiles,
    tile_input,
    valid_pixels,
)
from .runtime import CloudModel
from .stitch import Stitcher, plan_mode

if TYPE_CHECKING:  # pragma: no cover
    from .background import Background

SEAMLESS_TILE_RANGE = (228, 868)
"""Output tile sizes (px; those 4 mod the model's align) :func:`seamless_tile_out` chooses from.

Measured on this project's 2-core CPU with the real architecture (onnxruntime 1.32, batch 1):
the time of a tile is proportional to its *input* pixels (0.22-0.23 us per input px) for
inputs of 668 to 1052 px and rises beyond (0.25 us at 1148 px; a whole-map pass costs twice
per pixel, docs/spec.md §7), so the largest tile is 868 (input 1052).
"""


def as_bounds(bounds: Bounds | Sequence[int]) -> Bounds:
    """A :class:`Bounds` from a Bounds or an ``(xmin, xmax, ymin, ymax)`` sequence."""
    return bounds if isinstance(bounds, Bounds) else Bounds(*(int(v) for v in bounds))


def map_bounds(
    rgb: np.ndarray,
    ls: float | None = None,
    bounds: Bounds | Sequence[int] | None = None,
    polar_offset: float = DEFAULT_POLAR_OFFSET,
) -> Bounds | None:
    """The box to predict: ``bounds`` if given, else from Ls (docs/spec.md §2).

    Returns None for a map without any data pixel (nothing to predict).
    Raises ValueError when neither ``ls`` nor ``bounds`` is given.
    """
    if bounds is not None:
        return as_bounds(bounds)
    if ls is None:
        raise ValueError("give the map's solar longitude (ls=...) or a box (bounds=...)")
    if data_columns(rgb) is None:
        return None
    return bounds_from_ls(rgb, float(ls), polar_offset)


def check_map(rgb: np.ndarray) -> None:
    """Raise ValueError unless ``rgb`` is a uint8 (1801, 3600, 3) map."""
    if not isinstance(rgb, np.ndarray) or rgb.shape != (MAP_HEIGHT, MAP_WIDTH, 3) or rgb.dtype != np.uint8:
        got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"expected a uint8 ({MAP_HEIGHT}, {MAP_WIDTH}, 3) RGB map, got {got}")


def _batches(plan: TilePlan, batch_size: int) -> Iterator[np.ndarray]:
    origins = plan.origins()
    for k in range(0, len(origins), max(1, batch_size)):
        yield origins[k : k + max(1, batch_size)]


def predict_box(
    model: CloudModel, image: np.ndarray, plan: TilePlan, stitch: str = "seamless", batch_size: int = 1
) -> np.ndarray:
    """Run every tile of ``plan`` and stitch: float32 (box rows, box columns), north-up.

    ``image``: the model's input for the whole map, uint8 ``(1801, 3600, C)`` north-up with
    ``C = model.n_channels`` (the RGB map itself for an RGB model, else
    :func:`.channels.model_input` of it).
    """
    canvas = build_canvas(image, plan)
    stitcher = Stitcher.for_plan(stitch, plan)
    for batch in _batches(plan, batch_size):
        if len(batch) == 1:
            tiles = tile_input(canvas, plan, *batch[0])[None]
        else:
            tiles = np.stack([tile_input(canvas, plan, y, x) for y, x in batch])
        preds = model.run(tiles)
        for (y, x), pred in zip(batch, preds, strict=True):
            stitcher.add(y, x, pred)
    return stitcher.result()


def place_box(rgb: np.ndarray, box: np.ndarray, bounds: Bounds) -> np.ndarray:
    """The full (1801, 3600) float32 map: ``box`` inside ``bounds``, -999 outside and on invalid pixels."""
    out = np.full((MAP_HEIGHT, MAP_WIDTH), INVALID, np.float32)
    out[bounds.ymin : bounds.ymax, bounds.xmin : bounds.xmax] = box
    out[~valid_pixels(rgb, bounds)] = INVALID
    return out


def seamless_tile_out(
    bounds: Bounds, margin: int = MARGIN, sizes: tuple[int, int] = SEAMLESS_TILE_RANGE, align: int = ALIGN
) -> int:
    """Output tile size of a ``seamless`` plan that feeds the net the fewest input pixels.

    Minimises ``n_tiles * (tile_out + 2 * margin) ** 2`` over the sizes in ``sizes`` that are
    ``4 mod align`` (ties: the smaller tile).  Any choice gives the same values (the net is
    equivariant to ``align``-px shifts); only the time differs.  A typical Ls box
    (3600 x ~1090 px) gets 548 or 612 px tiles at depth 4: 7.5 M input px instead of 10.7 M
    with 484 px tiles.
    """

    def cost(t: int) -> tuple[int, int]:
        return plan_tiles(bounds, "seamless", t, margin, align).n_tiles * (t + 2 * margin) ** 2, t

    first = sizes[0] + (4 - sizes[0]) % align
    return min(range(first, max(sizes[1], first) + 1, align), key=cost)


def plan_for(model: CloudModel, bounds: Bounds, stitch: str, tile_out: int | None = None) -> TilePlan:
    """The tile plan of a stitch mode for this model's margin and alignment: the original plan
    with the model's tile (484) for ``center``/``blend``, an aligned plan with
    :func:`seamless_tile_out` for ``seamless``."""
    mode = plan_mode(stitch)
    info = model.info
    if tile_out is None:
        tile_out = seamless_tile_out(bounds, info.margin, align=info.align) if mode == "seamless" else info.tile_out
    return plan_tiles(bounds, mode, tile_out, info.margin, info.align)


def predict(
    model: CloudModel,
    rgb: np.ndarray,
    ls: float | None = None,
    bounds: Bounds | Sequence[int] | None = None,
    *,
    stitch: str = "seamless",
    polar_offset: float | None = None,
    batch_size: int = 1,
    tile_out: int | None = None,
    background: Background | None = None,
) -> np.ndarray:
    """Cloud probability of one map.

    Args:
        model: from :func:`runtime.load_model`.
        rgb: uint8 (1801, 3600, 3) map, north-up.
        ls: solar longitude (deg) giving the polar bounds, or
        bounds: ``Bounds`` / ``(xmin, xmax, ymin, ymax)`` box (exclusive max), overriding ``ls``.
        stitch: ``seamless`` (abutting 16-px aligned tiles), ``center`` (the original's hard
            selection over its ~50 % overlapping tiles) or ``blend`` (window-weighted average).
        polar_offset: ``c`` of the polar bounds (deg), used with ``ls``; None = the model's
            metadata (the offset it was validated with), else 3.
        batch_size: tiles per onnxruntime call.
        tile_out: output tile size (4 mod the model's align: 16 at depth 4); default: see :func:`plan_for`.
        background: the map's background composite (:mod:`.background`), for a model whose
            channels need one (``model.spec.needs_background``); ``ls`` also feeds ``sinls`` / ``cosls``.

    Returns:
        float32 (1801, 3600), north-up: -999 outside the box and on invalid pixels, else the
        cloud probability in [0, 1].

    Raises:
        ChannelError: the model's channels need a background (or Ls) that was not given.
    """
    check_map(rgb)
    offset = model.info.polar_offset if polar_offset is None else polar_offset
    box_bounds = map_bounds(rgb, ls, bounds, offset)
    image = model_input(rgb, parse_spec(model.info.input_channels), background, ls)
    if box_bounds is None:
        return np.full((MAP_HEIGHT, MAP_WIDTH), INVALID, np.float32)
    plan = plan_for(model, box_bounds, stitch, tile_out)
    return place_box(rgb, predict_box(model, image, plan, stitch, batch_size), box_bounds)


def predict_whole_pass(
    model: CloudModel,
    rgb: np.ndarray,
    bounds: Bounds | Sequence[int],
    background: Background | None = None,
    ls: float | None = None,
) -> np.ndarray:
    """The box predicted by ONE pass of the model over its whole padded canvas (no tiles).

    The reference ``seamless`` stitching must equal: float32 (box rows, box columns), north-up.
    Costs much more memory than tiles; meant for tests and measurements.  ``background`` and
    ``ls`` as in :func:`predict`, for models with extra channels.
    """
    box = as_bounds(bounds)
    plan = plan_tiles(box, "seamless", model.info.tile_out, model.info.margin, model.info.align)
    canvas = build_canvas(model_input(rgb, parse_spec(model.info.input_channels), background, ls), plan)
    whole = model.run(canvas[None])[0]
    return np.ascontiguousarray(whole[: box.height, : box.width])


def threshold_mask(prob: np.ndarray, threshold: float) -> np.ndarray:
    """0/1 float32 cloud mask from probabilities (``>= threshold`` is cloud); -999 stays -999."""
    out = (prob >= threshold).astype(np.float32)
    out[prob <= INVALID + 0.5] = INVALID
    return out
