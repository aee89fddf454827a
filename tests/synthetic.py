"""Synthetic MDGMs and Dataverse-style folder trees for tests (no real data needed).

Example::

    from tests.synthetic import make_map, write_map_tree
    rgb = make_map(seed=1)                       # uint8 (1801, 3600, 3), north-up
    paths = write_map_tree(tmp_path, days=(1, 2))  # tmp_path/P/P01/P01_ls.txt + 2 JPEGs
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mars_cloudmask.infer.geometry import MAP_HEIGHT, MAP_WIDTH


def make_map(
    seed: int = 0,
    *,
    stripes: int = 3,
    clouds: int = 8,
    height: int = MAP_HEIGHT,
    width: int = MAP_WIDTH,
) -> np.ndarray:
    """A map-like uint8 ``(height, width, 3)`` RGB image, north-up.

    Reddish noisy ground, ``stripes`` black (0, 0, 0) no-data gaps running north-south,
    black polar caps (top and bottom 10 % of the rows), and ``clouds`` bright bluish-white
    elliptic patches.  Same seed, same map.
    """
    rng = np.random.default_rng(seed)
    yy = np.arange(height, dtype=np.float32)[:, None]
    xx = np.arange(width, dtype=np.float32)[None, :]
    smooth = (20 * np.sin(xx / 97.0 + seed) * np.cos(yy / 61.0 - seed)).astype(np.int16)
    noise = rng.integers(-20, 21, size=(height, width), dtype=np.int16)
    ground = np.empty((height, width, 3), dtype=np.uint8)
    for c, base in enumerate((150, 100, 75)):
        ground[..., c] = np.clip(base + smooth + noise, 0, 255)
    for _ in range(clouds):
        cy, cx = rng.uniform(0.15 * height, 0.85 * height), rng.uniform(0, width)
        ry, rx = rng.uniform(20, 120), rng.uniform(40, 300)
        y0, y1 = max(int(cy - 1.1 * ry), 0), min(int(cy + 1.1 * ry) + 1, height)
        cols = np.arange(int(cx - 1.1 * rx), int(cx + 1.1 * rx) + 1) % width  # wraps in longitude
        d = ((yy[y0:y1] - cy) / ry) ** 2 + ((np.arange(len(cols), dtype=np.float32)[None, :] - 1.1 * rx) / rx) ** 2
        a = np.clip(1.2 - d, 0, 1)[..., None]
        patch = ground[y0:y1][:, cols].astype(np.float32)
        ground[y0:y1, cols] = (patch * (1 - a) + np.array([215.0, 210.0, 235.0], np.float32) * a).astype(np.uint8)
    rgb = ground
    for _ in range(stripes):
        x0 = int(rng.integers(0, width))
        w = int(rng.integers(20, 150))
        cols = np.arange(x0, x0 + w) % width
        rgb[:, cols] = 0
    cap = height // 10
    rgb[:cap] = 0
    rgb[height - cap :] = 0
    return rgb


def write_map(path: str | Path, rgb: np.ndarray, quality: int = 92) -> Path:
    """Write an RGB array as a JPEG (Pillow) and return the path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, "RGB").save(path, quality=quality)
    return path


def write_map_tree(
    root: str | Path,
    *,
    phase: str = "P",
    subphase: str = "P01",
    days: tuple[int, ...] | list[int] = (1, 2),
    ls_start: float = 132.5,
    mars_year: int = 28,
    seed: int = 0,
    ls_rows: bool | list[int] = True,
) -> list[Path]:
    """Write ``root/<phase>/<subphase>/<subphase>_ls.txt`` and one JPEG per day.

    Maps are ``make_map(seed + day)`` saved as ``<subphase>_dayNN_zequat.jpg``.  ``ls_rows``:
    True writes a row per day, False writes no ``_ls.txt`` at all, a list writes rows only for
    those days.  Returns the JPEG paths in day order.
    """
    folder = Path(root) / phase / subphase
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for day in days:
        paths.append(write_map(folder / f"{subphase}_day{day:02d}_zequat.jpg", make_map(seed + day)))
    if ls_rows is not False:
        with_rows = list(days) if ls_rows is True else list(ls_rows)
        lines = [f"{subphase}_day{d:02d}       {mars_year}       {ls_start + 0.4 * (d - 1):.3f}" for d in with_rows]
        (folder / f"{subphase}_ls.txt").write_text("\n".join(lines) + "\n")
    return paths


def jpeg_bytes(rgb: np.ndarray, quality: int = 90) -> bytes:
    """``rgb`` (uint8 ``(h, w, 3)``) encoded as JPEG bytes (Pillow)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def blocky_map(seed: int = 0, block: int = 16) -> np.ndarray:
    """A fast map-sized uint8 ``(1801, 3600, 3)`` image of random ``block``-pixel squares."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (MAP_HEIGHT // block + 1, MAP_WIDTH // block + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(small.repeat(block, 0).repeat(block, 1)[:MAP_HEIGHT, :MAP_WIDTH])


def corrupt_jpegs(good: bytes) -> dict[str, bytes]:
    """Damaged variants of the map-sized JPEG ``good`` that a lenient decoder accepts.

    ``half_then_eoi``: the first half of the file followed by an end-of-image marker;
    ``zeros_mid_stream``: 4 KiB of zero bytes written over the middle of the data;
    ``patched_header``: a 16 x 16 JPEG whose SOF0 header claims the size of ``good``.
    """
    mid = len(good) // 2
    tiny = bytearray(jpeg_bytes(np.full((16, 16, 3), 128, np.uint8)))
    sof, big = tiny.find(b"\xff\xc0"), good.find(b"\xff\xc0")
    tiny[sof + 5 : sof + 9] = good[big + 5 : big + 9]  # height and width, big-endian
    return {
        "half_then_eoi": good[:mid] + b"\xff\xd9",
        "zeros_mid_stream": good[:mid] + bytes(4096) + good[mid + 4096 :],
        "patched_header": bytes(tiny),
    }
