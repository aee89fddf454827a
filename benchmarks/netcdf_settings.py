"""NetCDF compression settings of a mask: file size and write time per setting.

``python -m mars_cloudmask.benchmarks.netcdf_settings MASK.ncdf [--repeats 3] [--json OUT.json]``

Reads one real mask (float32, as ``cm-infer`` writes it) and writes its ``cloudmask`` variable
again with each zlib level, with and without the shuffle filter, and with three chunk shapes
(netCDF's default, one chunk of the whole map, 256 x 512 tiles), in memory and then to a
temporary file, as ``write_mask`` does; reports the median write time and the file size, and
checks each file reads back equal (so every setting stays readable by netCDF4 scripts).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CHUNKS: dict[str, tuple[int, int] | None] = {"default": None, "whole map": (1801, 3600), "256x512": (256, 512)}
LEVELS = (1, 4, 6, 9)


def write_variant(data: np.ndarray, path: Path, complevel: int, shuffle: bool, chunks: tuple[int, int] | None) -> float:
    """Write ``data`` (south-up float32) as ``cloudmask(y, x)`` with these settings; seconds taken."""
    import netCDF4

    t = time.perf_counter()
    ds = netCDF4.Dataset(f"bench-{path.name}", "w", format="NETCDF4_CLASSIC", memory=1 << 20)
    ds.createDimension("x", data.shape[1])
    ds.createDimension("y", data.shape[0])
    var = ds.createVariable(
        "cloudmask",
        "f4",
        ("y", "x"),
        zlib=True,
        complevel=complevel,
        shuffle=shuffle,
        chunksizes=chunks,
        fill_value=np.float32(-999.0),
    )
    var.set_auto_maskandscale(False)
    var[:, :] = data
    image = bytes(ds.close())
    path.write_bytes(image)
    return time.perf_counter() - t


def measure(mask_path: str | Path, repeats: int = 3) -> list[dict[str, Any]]:
    """Every setting on the mask in ``mask_path``: median seconds, bytes, read-back check."""
    import netCDF4

    with netCDF4.Dataset(mask_path) as ds:
        var = ds["cloudmask"]
        var.set_auto_maskandscale(False)
        data = np.ascontiguousarray(var[:], dtype=np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for level in LEVELS:
            for shuffle in (False, True):
                for chunk_name, chunks in CHUNKS.items():
                    path = Path(tmp) / f"l{level}-s{int(shuffle)}-{chunk_name.replace(' ', '')}.nc"
                    seconds = [write_variant(data, path, level, shuffle, chunks) for _ in range(repeats)]
                    with netCDF4.Dataset(path) as ds:
                        back = ds["cloudmask"]
                        back.set_auto_maskandscale(False)
                        same = bool(np.array_equal(back[:], data))
                    rows.append(
                        {
                            "complevel": level,
                            "shuffle": shuffle,
                            "chunks": chunk_name,
                            "write_s": round(statistics.median(seconds), 4),
                            "bytes": path.stat().st_size,
                            "reads_back_equal": same,
                        }
                    )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| zlib level | shuffle | chunks | write s (median) | size MB | reads back |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['complevel']} | {'yes' if r['shuffle'] else 'no'} | {r['chunks']} | {r['write_s']:.3f} | "
            f"{r['bytes'] / 1e6:.2f} | {'equal' if r['reads_back_equal'] else 'DIFFERS'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mask", type=Path, help="A probability mask written by cm-infer.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows as JSON here.")
    args = parser.parse_args(argv)
    rows = measure(args.mask, args.repeats)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
