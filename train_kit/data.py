"""Training data: labelled days (and optional reference seasons) cut into (image, mask) tiles.

Labelled layout (``labels/P01``)::

    list_ls.txt                       name (P01dayNN), Mars year, Ls
    mdgms/P01dayNN.jpeg               the map, north-up
    cloudmask/cloudmask_P01dayNN.ncdf the label: -999 missing, 0 clear, > 0 cloudy, south-up on disk

Each map is padded and tiled with the same geometry as inference
(:mod:`mars_cloudmask.infer.geometry`: :func:`plan_tiles`, :func:`build_canvas`,
:func:`tile_input`); the vertical (and horizontal) extent comes from the label: the first and
last rows/columns holding a value >= 0 (docs/spec.md §6).  Targets are float32 1 / 0 / -999
(ignored), output-sized: a tile with output origin ``(y, x)`` reads canvas input
``[y, y + tile_in)`` and is scored on output pixels ``[y, y + tile_out)`` of the box.

Splits are by whole subphase and by day, never by tile.  A label archive is a root of
subphase folders (``P01/``, ``P02/``, ..., ``B01/``), each in the layout above; the subphase
of a day is its folder's name.  All arrays are north-up.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mars_cloudmask.infer.geometry import (
    ALIGN,
    INVALID,
    MARGIN,
    TILE_OUT,
    Bounds,
    bounds_from_ls,
    build_canvas,
    plan_tiles,
    tile_input,
)
from mars_cloudmask.infer.maps import MapError, read_ls_table, read_map

LABEL_NAME = re.compile(r"^cloudmask_(?P<name>.+)\.ncdf$")
_MASK_INVALID = np.int8(-1)


class DataError(ValueError):
    """Training data that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class Sample:
    """One map with its target: where they are, the day's name, Ls, and its role."""

    name: str
    image: Path
    mask: Path
    ls: float
    source: str  # "label" or "reference"
    subphase: str = ""  # the labelled folder's name (P01); a reference map's subphase folder


@dataclass
class TiledMap:
    """A map's padded canvas and target canvas, ready to cut tiles from.

    ``image``: uint8 ``(canvas_h + 2*margin, canvas_w + 2*margin, 3)``; ``target``: int8
    ``(canvas_h, canvas_w)`` output-aligned, 1 cloud / 0 clear / -1 ignored (outside the box
    or invalid).  ``origins``: the seamless tile plan's ``(y, x)`` output origins.
    ``margin``: the net's context per side (92 at depth 4).
    """

    sample: Sample
    image: np.ndarray
    target: np.ndarray
    origins: np.ndarray
    tile_out: int
    margin: int = MARGIN

    @property
    def tile_in(self) -> int:
        return self.tile_out + 2 * self.margin

    def tile(self, y: int, x: int) -> tuple[np.ndarray, np.ndarray]:
        """``(image uint8 (tile_in, tile_in, 3), target float32 (tile_out, tile_out))`` at output origin (y, x)."""
        img = self.image[y : y + self.tile_in, x : x + self.tile_in]
        t = self.target[y : y + self.tile_out, x : x + self.tile_out].astype(np.float32)
        t[t < 0] = INVALID
        return img, t

    def valid_fraction(self) -> float:
        return float((self.target >= 0).mean())


# --------------------------------------------------------------------------- discovery
def scan_labelled(folder: str | Path) -> list[Sample]:
    """The days of a labelled folder, checked: every map has a label and an Ls row, and back.

    Raises:
        DataError: empty or missing folder, missing ``list_ls.txt``, a map without a label,
            a label without a map, or a day missing from ``list_ls.txt`` (names the file).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such data folder")
    maps_dir, masks_dir, ls_path = folder / "mdgms", folder / "cloudmask", folder / "list_ls.txt"
    maps = {p.stem: p for p in sorted(maps_dir.glob("*.jp*g"))} if maps_dir.is_dir() else {}
    masks = {}
    if masks_dir.is_dir():
        for p in sorted(masks_dir.glob("*.ncdf")):
            m = LABEL_NAME.match(p.name)
            if m is None:
                raise DataError(f"{p}: label file name is not cloudmask_<DAY>.ncdf")
            masks[m["name"]] = p
    if not maps and not masks:
        raise DataError(f"{folder}: empty data folder (expected mdgms/*.jpeg and cloudmask/*.ncdf)")
    if not ls_path.is_file():
        raise DataError(f"{ls_path}: missing (the days' Ls table)")
    try:
        table = read_ls_table(ls_path)
    except MapError as exc:
        raise DataError(str(exc)) from None
    for name, path in maps.items():
        if name not in masks:
            raise DataError(f"{path}: map without a label (expected {masks_dir / f'cloudmask_{name}.ncdf'})")
    for name, path in masks.items():
        if name not in maps:
            raise DataError(f"{path}: label without a map (expected {maps_dir / f'{name}.jpeg'})")
    samples = []
    for name in sorted(maps):
        if name not in table:
            raise DataError(f"{maps[name]}: day {name} missing from {ls_path}")
        samples.append(Sample(name, maps[name], masks[name], table[name].ls, "label", subphase_name(folder)))
    return samples


SUBPHASE_PARTS = ("list_ls.txt", "mdgms", "cloudmask")
"""What makes a folder a labelled subphase folder (any one of them; scanning checks the rest)."""


def subphase_name(folder: str | Path) -> str:
    """The subphase of a labelled folder: its name, symlinks not followed (``labels/P01/`` -> ``P01``)."""
    return Path(os.path.abspath(folder)).name


def is_subphase_folder(folder: Path) -> bool:
    """True when ``folder`` holds ``list_ls.txt``, ``mdgms/`` or ``cloudmask/``."""
    return any((folder / part).exists() for part in SUBPHASE_PARTS)


def subphase_folders(root: str | Path) -> list[Path]:
    """``[root]`` when ``root`` is a labelled subphase folder, else its subphase folders by name.

    Raises:
        DataError: ``root`` is missing, or neither a subphase folder nor a root holding one.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")
    if is_subphase_folder(root):
        return [root]
    subs = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".") and is_subphase_folder(p)]
    if not subs:
        raise DataError(
            f"{root}: no subphase folder in it (expected {root / 'P01'}/ etc. holding list_ls.txt, mdgms/, "
            "cloudmask/), and it is not one itself"
        )
    return subs


def scan_archive(roots: Sequence[str | Path]) -> list[Sample]:
    """The labelled days of every subphase folder under ``roots`` (each a subphase folder or a
    root of them), in root order, then subphase, then day.

    Raises:
        DataError: as :func:`scan_labelled` and :func:`subphase_folders`; two folders of one
            subphase name, or one day name in two subphases (names both).
    """
    samples: list[Sample] = []
    where: dict[str, Path] = {}
    seen: dict[str, Sample] = {}
    for root in roots:
        for folder in subphase_folders(root):
            sub = subphase_name(folder)
            if sub in where and where[sub].resolve() == folder.resolve():
                raise DataError(f"{folder}: given twice in --data")
            if sub in where:
                raise DataError(f"{folder}: subphase {sub} is already in {where[sub]} (subphase names must be unique)")
            where[sub] = folder
            for s in scan_labelled(folder):
                if s.name in seen:
                    raise DataError(
                        f"{s.image}: day {s.name} is also in subphase {seen[s.name].subphase} "
                        f"({seen[s.name].image}); day names must be unique across subphases"
                    )
                seen[s.name] = s
                samples.append(s)
    return samples


def scan_reference(
    mdgm_root: str | Path, reference_root: str | Path, exclude: Sequence[str] = ("P01",)
) -> list[Sample]:
    """Maps of other seasons (``mdgm/P/PXX/PXX_dayNN_zequat.jpg``) paired with the original
    model's masks (``reference/P/PXX/cloudmask_PXX_dayNN.ncdf``), subphases in ``exclude`` left out.

    ``reference_root`` is either the root of all subphases (``reference/P``) or one subphase
    (``reference/P/P07``): the map of a mask is found by its subphase name under ``mdgm_root``.
    Maps without a reference mask are skipped (the reference covers what the original ran on);
    Ls comes from the subphase's ``_ls.txt``.
    """
    mdgm_root, reference_root = Path(mdgm_root), Path(reference_root)
    if not reference_root.is_dir():
        raise DataError(f"{reference_root}: no such reference folder")
    samples = []
    for ref in sorted(reference_root.rglob("cloudmask_*.ncdf")):
        m = LABEL_NAME.match(ref.name)
        name = m["name"] if m else ""
        sub = ref.parent.name
        if sub in exclude or not name:
            continue
        image = mdgm_root / sub / f"{name}_zequat.jpg"
        if not image.is_file():
            continue
        ls_path = mdgm_root / sub / f"{sub}_ls.txt"
        try:
            table = read_ls_table(ls_path)
        except MapError as exc:
            raise DataError(str(exc)) from None
        if name not in table:
            raise DataError(f"{image}: map {name} missing from {ls_path}")
        samples.append(Sample(name, image, ref, table[name].ls, "reference", sub))
    return samples


def day_number(name: str) -> int:
    """The day number of a labelled day name (``P01day07`` -> 7, ``P05_day13`` -> 13)."""
    m = re.search(r"day(\d+)", name)
    if m is None:
        raise DataError(f"{name}: no 'dayNN' in the name")
    return int(m.group(1))


def split_by_day(samples: Sequence[Sample], days: Sequence[int]) -> tuple[list[Sample], list[Sample]]:
    """``(others, chosen)``: labelled samples whose day number is in ``days`` go to ``chosen``."""
    chosen = set(days)
    picked = [s for s in samples if s.source == "label" and day_number(s.name) in chosen]
    others = [s for s in samples if s not in picked]
    return others, picked


def split_by_subphase(samples: Sequence[Sample], subphases: Sequence[str]) -> tuple[list[Sample], list[Sample]]:
    """``(others, chosen)``: labelled samples of a subphase in ``subphases`` go to ``chosen``."""
    chosen = set(subphases)
    picked = [s for s in samples if s.source == "label" and s.subphase in chosen]
    others = [s for s in samples if s not in picked]
    return others, picked


@dataclass(frozen=True)
class Split:
    """How labelled days are divided: whole subphases, then day numbers within the others."""

    val_days: Sequence[int] = ()
    test_days: Sequence[int] = ()
    val_subphases: Sequence[str] = ()
    test_subphases: Sequence[str] = ()


def split_samples(
    labelled: Sequence[Sample], split: Split, where: str
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """``(train, val, test)`` of ``labelled`` (scan order kept).

    Every day of a ``test_subphases`` / ``val_subphases`` subphase tests / validates; in every
    other subphase, the days numbered in ``test_days`` test, those in ``val_days`` validate and
    the rest train.  ``where`` (the data folders) is named in errors.

    Raises:
        DataError: a subphase not in ``labelled``, a subphase both validating and testing,
            ``val_days`` none of which is left to validate, or no training day left.
    """
    known = sorted({s.subphase for s in labelled})
    for option, subs in (("--val-subphases", split.val_subphases), ("--test-subphases", split.test_subphases)):
        unknown = [s for s in subs if s not in known]
        if unknown:
            raise DataError(f"{option} {','.join(unknown)}: no such subphase in {where} (it has {', '.join(known)})")
    both = sorted(set(split.val_subphases) & set(split.test_subphases))
    if both:
        raise DataError(f"--val-subphases and --test-subphases both name {','.join(both)}: a subphase has one role")
    rest, test_whole = split_by_subphase(labelled, split.test_subphases)
    rest, val_whole = split_by_subphase(rest, split.val_subphases)
    rest, test_days = split_by_day(rest, split.test_days)
    train, val_days = split_by_day(rest, split.val_days)
    if split.val_days and not val_days:
        held = " outside --val-subphases/--test-subphases" if split.val_subphases or split.test_subphases else ""
        raise DataError(f"none of the validation days {list(split.val_days)} is in {where}{held}")
    if not train:
        raise DataError(f"no training day left in {where} after taking out validation/test days")
    chosen_val, chosen_test = set(val_whole + val_days), set(test_whole + test_days)
    return (
        train,
        [s for s in labelled if s in chosen_val],
        [s for s in labelled if s in chosen_test],
    )


def split_record(
    train: Sequence[Sample], val: Sequence[Sample], test: Sequence[Sample]
) -> dict[str, dict[str, list[int]]]:
    """``{subphase: {"train": [day numbers], "val": [...], "test": [...]}}``: which days of which
    subphase had each role (for ``run.json`` ``split.subphases``)."""
    record: dict[str, dict[str, list[int]]] = {}
    for role, samples in (("train", train), ("val", val), ("test", test)):
        for s in samples:
            days = record.setdefault(s.subphase, {"train": [], "val": [], "test": []})[role]
            days.append(day_number(s.name))
    return {sub: {role: sorted(days) for role, days in roles.items()} for sub, roles in sorted(record.items())}


# --------------------------------------------------------------------------- loading
def read_target(sample: Sample) -> np.ndarray:
    """int8 ``(1801, 3600)`` north-up target: 1 cloud (> 0), 0 clear, -1 invalid (-999)."""
    from mars_cloudmask.infer.netcdf import read_mask

    try:
        raw = read_mask(sample.mask)
    except (OSError, KeyError, RuntimeError) as exc:
        raise DataError(f"{sample.mask}: unreadable mask ({exc})") from None
    out = np.full(raw.shape, _MASK_INVALID, dtype=np.int8)
    valid = raw >= 0
    out[valid] = (raw[valid] > 0).astype(np.int8)
    return out


def check_orientation(rgb: np.ndarray, target: np.ndarray, sample: Sample) -> None:
    """Raise DataError when the mask's shape or north/south orientation does not match its map.

    Orientation: labelled pixels must fall on map pixels that hold data; if the mask flipped
    upside down matches the map's data pixels clearly better, the label is upside down.
    """
    if target.shape != rgb.shape[:2]:
        raise DataError(
            f"{sample.mask}: mask is {target.shape[1]} x {target.shape[0]}, map {sample.image} is "
            f"{rgb.shape[1]} x {rgb.shape[0]}"
        )
    labelled = target >= 0
    n = int(labelled.sum())
    if n == 0:
        raise DataError(f"{sample.mask}: no valid pixel in the mask")
    data = rgb.min(axis=2) >= 30
    straight = float((data & labelled).sum()) / n
    flipped = float((data[::-1] & labelled).sum()) / n
    if flipped > straight + 0.05:
        raise DataError(
            f"{sample.mask}: mask looks upside down relative to {sample.image} "
            f"(labelled pixels on data: {straight:.2f} as is, {flipped:.2f} flipped)"
        )


def target_bounds(target: np.ndarray) -> Bounds:
    """Box of the rows and columns holding any valid (>= 0) target pixel (exclusive max)."""
    rows = np.flatnonzero((target >= 0).any(axis=1))
    cols = np.flatnonzero((target >= 0).any(axis=0))
    return Bounds(int(cols[0]), int(cols[-1]) + 1, int(rows[0]), int(rows[-1]) + 1)


def tile_map(
    rgb: np.ndarray,
    target: np.ndarray,
    bounds: Bounds,
    sample: Sample,
    tile_out: int = TILE_OUT,
    margin: int = MARGIN,
    align: int = ALIGN,
) -> TiledMap:
    """Pad and plan one map: the shared seamless plan and canvas (for a net of this ``margin``
    and ``align``, :func:`~mars_cloudmask.train_kit.model.margin` / ``alignment`` of its depth),
    the target cut to the box."""
    plan = plan_tiles(bounds, "seamless", tile_out, margin, align)
    image = build_canvas(rgb, plan)
    canvas_target = np.full((plan.canvas_h, plan.canvas_w), _MASK_INVALID, dtype=np.int8)
    h = min(bounds.height, plan.canvas_h)
    w = min(bounds.width, plan.canvas_w)
    canvas_target[:h, :w] = target[bounds.ymin : bounds.ymin + h, bounds.xmin : bounds.xmin + w]
    # sanity: the first tile's input starts `margin` px before the box (the shared geometry)
    assert tile_input(image, plan, 0, 0).shape == (plan.tile_in, plan.tile_in, rgb.shape[2])
    return TiledMap(sample, image, canvas_target, plan.origins(), tile_out, margin)


InputFn = Callable[[Sample, np.ndarray], np.ndarray]
"""``(sample, rgb uint8 (H, W, 3) north-up) -> model input uint8 (H, W, C)``: the map's RGB plus
any extra channels (:mod:`mars_cloudmask.infer.channels`); None means the RGB alone."""


def load_sample(
    sample: Sample, tile_out: int = TILE_OUT, margin: int = MARGIN, align: int = ALIGN, inputs: InputFn | None = None
) -> TiledMap:
    """Read, check and tile one sample.  Labels: box from the label; references: box from Ls.

    ``inputs`` turns the RGB map into the model's input channels before tiling (RGB alone when None).
    """
    try:
        rgb = read_map(sample.image)
    except MapError as exc:
        raise DataError(str(exc)) from None
    target = read_target(sample)
    check_orientation(rgb, target, sample)
    if sample.source == "label":
        bounds = target_bounds(target)
    else:
        try:
            bounds = bounds_from_ls(rgb, sample.ls)
        except ValueError as exc:
            raise DataError(f"{sample.image}: {exc}") from None
        inside = np.zeros(target.shape, dtype=bool)
        inside[bounds.ymin : bounds.ymax, bounds.xmin : bounds.xmax] = True
        target = np.where(inside, target, _MASK_INVALID).astype(np.int8)
    image = inputs(sample, rgb) if inputs is not None else rgb
    return tile_map(image, target, bounds, sample, tile_out, margin, align)


def map_grid_tiles(path: str | Path, tile_out: int = TILE_OUT, margin: int = MARGIN, align: int = ALIGN) -> np.ndarray:
    """All seamless-plan input tiles of a map over its data columns and rows 300..1500 (uint8)."""
    from mars_cloudmask.infer.geometry import data_columns

    rgb = read_map(path)
    cols = data_columns(rgb) or (0, rgb.shape[1] - 1)
    plan = plan_tiles(Bounds(cols[0], cols[1] + 1, 300, 1500), "seamless", tile_out, margin, align)
    canvas = build_canvas(rgb, plan)
    return np.stack([tile_input(canvas, plan, int(y), int(x)) for y, x in plan.origins()])


# --------------------------------------------------------------------------- batches
def augment(image: np.ndarray, target: np.ndarray, flip: int, brightness: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """One of the four flips (0 none, 1 vertical, 2 horizontal, 3 both) and a brightness factor.

    The brightness factor scales the first three (RGB) channels only: extra channels
    (contrast against a background, position) are left as they are.
    """
    if flip & 1:
        image, target = image[::-1], target[::-1]
    if flip & 2:
        image, target = image[:, ::-1], target[:, ::-1]
    if brightness != 1.0:
        rgb = np.clip(image[..., :3].astype(np.float32) * brightness + 0.5, 0, 255).astype(np.uint8)
        image = rgb if image.shape[-1] == 3 else np.concatenate([rgb, image[..., 3:]], axis=-1)
    return np.ascontiguousarray(image), np.ascontiguousarray(target)


def random_tile(
    tm: TiledMap, rng: np.random.Generator, min_valid: float = 0.05, align: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """A tile at a random output origin (multiple of ``align``) holding >= ``min_valid`` valid target."""
    h, w = tm.target.shape
    best = None
    for _ in range(20):
        y = int(rng.integers(0, (h - tm.tile_out) // align + 1)) * align
        x = int(rng.integers(0, (w - tm.tile_out) // align + 1)) * align
        img, t = tm.tile(y, x)
        frac = float((t >= 0).mean())
        if frac >= min_valid:
            return img, t
        if best is None or frac > best[0]:
            best = (frac, img, t)
    return best[1], best[2]


def _first_new(origins: np.ndarray, tile_out: int) -> dict[int, int]:
    """Per origin along one axis: offset inside the tile of the first pixel no earlier tile covered."""
    starts, end = {}, 0
    for o in sorted(set(int(v) for v in origins)):
        starts[o] = max(end - o, 0)
        end = o + tile_out
    return starts


def grid_tiles(maps: Sequence[TiledMap]) -> tuple[np.ndarray, np.ndarray]:
    """Every seamless-plan tile of the maps, images and targets, each box pixel scored once.

    Seamless tiles overlap by a few pixels (step ``tile_out - 4``): the overlap is marked -999
    in the later tile, so metrics over these tiles equal metrics over the whole box.
    """
    images, targets = [], []
    for tm in maps:
        y_new = _first_new(tm.origins[:, 0], tm.tile_out)
        x_new = _first_new(tm.origins[:, 1], tm.tile_out)
        for y, x in tm.origins:
            img, t = tm.tile(int(y), int(x))
            t[: y_new[int(y)]] = INVALID
            t[:, : x_new[int(x)]] = INVALID
            if (t >= 0).any():
                images.append(img)
                targets.append(t)
    return np.stack(images), np.stack(targets)[..., None]
