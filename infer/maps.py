"""Reading MDGMs and their ``_ls.txt`` tables, and finding maps in the Dataverse layout.

Layout (domain.md 1): ``<phase>/<subphase>/<subphase>_ls.txt`` and
``<subphase>_dayNN_zequat.jpg``.  A map's name is the first 9 characters of its file name
(``P01_day01``).  Maps are returned north-up, ``uint8 (1801, 3600, 3)`` RGB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .geometry import MAP_HEIGHT, MAP_WIDTH

MAP_SUFFIXES = (".jpg", ".jpeg")


class MapError(ValueError):
    """A map (or its Ls table) cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class LsEntry:
    """One row of an ``_ls.txt`` table: map name, Mars year, solar longitude Ls (deg)."""

    name: str
    mars_year: int
    ls: float


@dataclass(frozen=True)
class MapJob:
    """One map to process: where it is, what it is called, where its Ls comes from.

    ``phase`` and ``subphase`` are the folder names used for the output layout
    ``OUT/<phase>/<subphase>/cloudmasks/cloudmask_<name>.ncdf``.
    """

    path: Path
    name: str
    phase: str
    subphase: str
    ls_file: Path | None

    def relative_output(self, suffix: str = ".ncdf") -> Path:
        """Output path relative to ``--out``."""
        return Path(self.phase) / self.subphase / "cloudmasks" / f"cloudmask_{self.name}{suffix}"


def map_name(path: str | Path) -> str:
    """The map's name: the first 9 characters of its file name (``P01_day01``)."""
    return Path(path).name[:9]


def read_map(path: str | Path) -> np.ndarray:
    """Decode one MDGM JPEG to ``uint8 (1801, 3600, 3)`` RGB, north-up.

    Raises:
        MapError: the file is missing, empty, corrupt or truncated, not RGB, or not 3600 x 1801.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise MapError(f"{path}: empty file")
        with Image.open(path) as im:
            if im.size != (MAP_WIDTH, MAP_HEIGHT):
                raise MapError(f"{path}: image is {im.size[0]} x {im.size[1]}, expected {MAP_WIDTH} x {MAP_HEIGHT}")
            if im.mode != "RGB":
                raise MapError(f"{path}: image mode is {im.mode}, expected RGB")
            im.load()  # raises on truncated or corrupt data
            rgb = np.asarray(im, dtype=np.uint8)
    except MapError:
        raise
    except FileNotFoundError:
        raise MapError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise MapError(f"{path}: not a readable image (corrupt JPEG?)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MapError(f"{path}: corrupt or truncated image ({exc})") from None
    return rgb


def read_ls_table(path: str | Path) -> dict[str, LsEntry]:
    """Parse an ``_ls.txt`` (or ``list_ls.txt``) table into ``{name: LsEntry}``.

    Rows are ``NAME  MARS_YEAR  LS``, whitespace separated; blank lines are ignored.

    Raises:
        MapError: the file is missing or a row cannot be parsed (names file and line).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise MapError(f"{path}: cannot read Ls table ({exc.strerror or exc})") from None
    table: dict[str, LsEntry] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            name, year, ls = parts[0], int(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            raise MapError(f"{path}:{lineno}: expected 'NAME MARS_YEAR LS', got {line.strip()!r}") from None
        table[name] = LsEntry(name, year, ls)
    return table


def ls_file_for(map_path: Path) -> Path | None:
    """The ``_ls.txt`` of the subphase folder holding ``map_path``, or None if there is none."""
    folder = map_path.parent
    own = folder / f"{folder.name}_ls.txt"
    if own.is_file():
        return own
    candidates = sorted(folder.glob("*_ls.txt"))
    return candidates[0] if len(candidates) == 1 else None


def _is_map(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in MAP_SUFFIXES and not path.name.startswith(".")


def _job(path: Path) -> MapJob:
    path = path.resolve()
    return MapJob(
        path=path,
        name=map_name(path),
        phase=path.parent.parent.name or "maps",
        subphase=path.parent.name,
        ls_file=ls_file_for(path),
    )


def find_maps(*roots: str | Path) -> list[MapJob]:
    """Every map under the given roots, sorted by phase, subphase and name.

    A root may be a folder of phases, a phase folder (``P/``), one subphase folder, or a
    single JPEG.  Folders named ``list``, ``mdgms`` and ``cloudmasks`` and hidden files are
    not searched; files that are not JPEGs are ignored.

    Raises:
        MapError: a root does not exist.
    """
    jobs: dict[Path, MapJob] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise MapError(f"{root}: no such file or folder")
        if root.is_file():
            if root.suffix.lower() not in MAP_SUFFIXES:
                raise MapError(f"{root}: not a JPEG map (expected .jpg or .jpeg)")
            candidates = [root]
        else:
            candidates = [
                p
                for p in root.rglob("*")
                if _is_map(p) and not ({"list", "mdgms", "cloudmasks"} & set(p.relative_to(root).parts[:-1]))
                and not any(part.startswith(".") for part in p.relative_to(root).parts)
            ]
        for p in candidates:
            job = _job(p)
            jobs[job.path] = job
    return sorted(jobs.values(), key=lambda j: (j.phase, j.subphase, j.name, str(j.path)))


def ls_entry(job: MapJob) -> LsEntry:
    """The map's row of its subphase's ``_ls.txt``; MapError naming the file when absent."""
    if job.ls_file is None:
        raise MapError(f"{job.path}: no _ls.txt in {job.path.parent} (give --bounds to run without Ls)")
    table = read_ls_table(job.ls_file)
    if job.name not in table:
        raise MapError(f"{job.path}: no row for {job.name} in {job.ls_file}")
    return table[job.name]


def find_jobs(roots) -> tuple[list[MapJob], list[str]]:
    """Maps under every root, and one-line errors for roots that cannot be searched."""
    jobs: dict[Path, MapJob] = {}
    errors: list[str] = []
    for root in roots:
        try:
            for job in find_maps(root):
                jobs[job.path] = job
        except MapError as exc:
            errors.append(str(exc))
    ordered = sorted(jobs.values(), key=lambda j: (j.phase, j.subphase, j.name, str(j.path)))
    return ordered, errors
