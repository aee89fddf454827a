"""Ls and Mars year of a mask (cm-stats and cm-stack): its attributes, else ``_ls.txt`` tables.

Files without ``solar_longitude`` (or ``ls``) and ``mars_year`` attributes (the original's
masks, the labels) take them from ``_ls.txt`` tables: those given explicitly, else any
``*_ls.txt`` in the mask's folder or its parent (``cm-infer`` copies the table into
``<out>/<phase>/<subphase>/``).  Ls is in degrees.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

from .masks import day_name

LS_ATTRS = ("solar_longitude", "ls")
"""Global attributes holding a mask's Ls (cm-infer writes ``solar_longitude``), first found wins."""


def ls_tables(paths: Iterable[str | Path]) -> dict[str, tuple[int, float]]:
    """``{day name: (Mars year, Ls)}`` from ``_ls.txt`` files or folders searched for ``*_ls.txt``."""
    from ..maps import read_ls_table

    table: dict[str, tuple[int, float]] = {}
    for p in paths:
        p = Path(p)
        files = sorted(p.rglob("*_ls.txt")) if p.is_dir() else [p]
        for f in files:
            for entry in read_ls_table(f).values():
                name = day_name(entry.name)
                if name is not None:
                    table.setdefault(name, (entry.mars_year, entry.ls))
    return table


def day_ls(path: Path, attrs: dict, table: dict[str, tuple[int, float]]) -> tuple[int, float]:
    """``(Mars year, Ls)`` of a mask: its attributes, else ``table``, else an ``_ls.txt``
    beside it or one folder up.  Raises ValueError naming the file when none has it or the
    Ls found is not a finite number."""
    name = day_name(path) or path.stem
    found: tuple[int, float] | None = None
    for key in LS_ATTRS:
        if key in attrs and "mars_year" in attrs:
            try:
                found = int(attrs["mars_year"]), float(attrs[key])
            except (TypeError, ValueError):
                raise ValueError(
                    f"{path}: Ls {attrs[key]!r} or Mars year {attrs['mars_year']!r} is not a number"
                ) from None
            break
    if found is None and name in table:
        found = table[name]
    if found is None:
        local = ls_tables([f for d in (path.parent, path.parent.parent) for f in sorted(d.glob("*_ls.txt"))])
        found = local.get(name)
    if found is not None:
        if not math.isfinite(found[1]):
            raise ValueError(f"{path}: Ls is {found[1]} (not a number)")
        return found
    missing = [] if any(k in attrs for k in LS_ATTRS) else ["'solar_longitude'"]
    missing += [] if "mars_year" in attrs else ["'mars_year'"]
    what = f"no {' or '.join(missing)} attribute" if missing else "its attributes are incomplete"
    raise ValueError(f"{path}: no Ls for {name} ({what}, no _ls.txt row; give --ls-table)")
