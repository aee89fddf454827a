"""Every path a run uses in ``OUT``: the folder itself (:func:`ensure_output_root`), a map's
mask under either suffix, quicklook and copies (:func:`output_targets`), their stale temporaries,
and the input roots with ``OUT`` left out of the scan (:func:`roots_outside`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .atomic import remove_stale_temporaries_of_many
from .maps import MapJob
from .plan import RunPlan
from .results import OutputError


def ensure_output_root(out: Path) -> Path:
    """Create ``out`` if needed and check it is writable.

    Raises:
        OutputError: one line naming the folder and the reason.
    """
    import tempfile

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".cm-infer-write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{out}: output folder is not writable ({exc.strerror or exc})") from None
    return out


def quicklook_path(mask_path: Path) -> Path:
    """The PNG quicklook beside a mask."""
    return mask_path.with_suffix(".png")


def copy_paths(job: MapJob, plan: RunPlan) -> list[tuple[Path, Path]]:
    """``(source, destination)`` of ``--copy-maps``: the map into ``mdgms/``, the ``_ls.txt`` beside."""
    sub = plan.output_path(job).parent.parent
    pairs = [(job.path, sub / "mdgms" / job.path.name)]
    if job.ls_file is not None:
        pairs.append((job.ls_file, sub / job.ls_file.name))
    return pairs


def existing_output(job: MapJob, plan: RunPlan) -> Path | None:
    """The map's mask in ``OUT``, under this run's suffix or another (None: none)."""
    for path in [plan.output_path(job), *plan.other_output_paths(job)]:
        if path.exists() or path.is_symlink():
            return path
    return None


def remove_stale_temporaries(job: MapJob, plan: RunPlan) -> list[Path]:
    """Delete the temporaries a dead run or worker left beside this map's outputs; returns them.

    Only those no live process is writing (their writer's lock is gone): another run on the
    same ``OUT`` keeps its files.
    """
    return remove_stale_temporaries_of_many(output_targets(job, plan))


def output_targets(job: MapJob, plan: RunPlan) -> list[Path]:
    """Every file a run may write for this map: the mask (either suffix), quicklook, copies."""
    out = plan.output_path(job)
    return [out, *plan.other_output_paths(job), quicklook_path(out)] + [dst for _, dst in copy_paths(job, plan)]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def roots_outside(roots: Sequence[str | Path], out: str | Path) -> list[str | Path]:
    """``roots`` with ``out`` left out of the scan: a root holding ``out`` is replaced by its
    entries other than the branch of ``out`` (down to ``out`` itself), so a run whose ``OUT`` is
    inside its input tree never reads its own map copies back as input.  The entries are
    those the folder walk of :func:`.maps.find_jobs` would visit (not hidden, not ``list/`` or
    ``cloudmasks/``, ``mdgms/`` only without maps or ``cloudmasks/`` beside it)."""
    from .maps import COPY_FOLDER, MAP_SUFFIXES, SKIPPED_FOLDERS

    target = Path(os.path.realpath(out))
    result: list[str | Path] = []
    for root in roots:
        real = Path(os.path.realpath(root))
        if real == target:
            continue  # OUT itself given as input: nothing of it is input
        if not (real.is_dir() and _inside(target, real)):
            result.append(root)
            continue
        folder = Path(os.path.abspath(root))
        while True:
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                result.append(folder)  # find_jobs names the unreadable folder
                break
            maps_beside = any(e.suffix.lower() in MAP_SUFFIXES and e.is_file() for e in entries)
            copies_skipped = maps_beside or any(e.name == "cloudmasks" and e.is_dir() for e in entries)
            branch = None
            for e in entries:
                if e.name.startswith(".") or (e.is_dir() and e.name in SKIPPED_FOLDERS):
                    continue
                if e.is_dir() and e.name == COPY_FOLDER and copies_skipped:
                    continue
                if e.is_dir() and _inside(target, Path(os.path.realpath(e))):
                    branch = e
                elif e.is_dir() or e.suffix.lower() in MAP_SUFFIXES:
                    result.append(e)
            if branch is None or Path(os.path.realpath(branch)) == target:
                break
            folder = branch
    return result


def find_run_jobs(roots: Sequence[str | Path], out: str | Path) -> tuple[list[MapJob], list[str]]:
    """:func:`.maps.find_jobs` of ``roots`` with ``out`` left out of the scan (:func:`roots_outside`)."""
    from .maps import find_jobs

    return find_jobs(roots_outside(roots, out))
