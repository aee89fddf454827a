"""Which days a model was trained, validated or tested on, from its ONNX metadata (for ``cm-eval``).

``cm-export`` writes the run's split into the model's ``split`` metadata as JSON,
``{"train": ["P01day01", ...], "val": [...], "test": [...], "reference": [...]}``
(``reference``: maps whose original-model masks served as weak training targets).  A
score over days the model trained on or was chosen on is not a test score, so ``cm-eval``
marks those days.  The masks ``cm-infer`` writes carry the model's ``model_sha256``, so the
model of a set of masks is found among the shipped ones without being named.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .masks import day_name

SEEN_ROLES = ("train", "val")
"""Roles whose days the model has seen: its score on them is not a test score."""


@dataclass(frozen=True)
class ModelSplit:
    """A model (as described in messages) and ``{day name: role}`` of the days in its split."""

    model: str
    roles: dict[str, str] = field(default_factory=dict)

    def role(self, day: str) -> str:
        """``train``, ``val``, ``test``, or ``""`` for a day outside the split."""
        return self.roles.get(day, "")

    def seen(self, days: Iterable[str]) -> list[str]:
        """The days among ``days`` that the model trained or was validated on."""
        return [d for d in days if self.role(d) in SEEN_ROLES]


def parse_split(text: str) -> dict[str, str]:
    """``{day name: role}`` from a ``split`` metadata value; ``{}`` when empty or not JSON.

    Day names are made canonical (``P01day18`` -> ``P01_day18``); a ``reference`` day counts
    as ``train`` (its map was a training target); a day in several roles keeps the first of
    train, val, test.
    """
    try:
        data = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    if not isinstance(data, dict):
        return {}
    roles: dict[str, str] = {}
    for key, role in (("train", "train"), ("reference", "train"), ("val", "val"), ("test", "test")):
        names = data.get(key) or []
        for name in names if isinstance(names, list) else []:
            day = day_name(str(name))
            if day is not None:
                roles.setdefault(day, role)
    return roles


def split_from_metadata(meta: Mapping[str, str], model: str) -> ModelSplit:
    """The :class:`ModelSplit` of a model's ``metadata_props``."""
    return ModelSplit(model, parse_split(meta.get("split", "")))


def read_model_split(path: str | Path) -> ModelSplit:
    """Load an ONNX model's metadata (CPU, one thread) and return its split.

    Raises:
        ModelError: the file is missing or not a cloudmask model (message names the file).
    """
    from ..runtime import load_model

    model = load_model(path, provider="cpu", threads=1)
    info = model.info
    return split_from_metadata(info.metadata, f"{info.name} v{info.version} ({Path(path).name})")


def masks_model_sha256(paths: Iterable[str | Path]) -> set[str]:
    """The ``model_sha256`` attributes of the mask files (files without one add nothing)."""
    from ..netcdf import read_attrs

    found: set[str] = set()
    for p in paths:
        try:
            sha = read_attrs(p).get("model_sha256")
        except Exception:  # noqa: BLE001 - unreadable files are reported by the scoring itself
            continue
        if sha:
            found.add(str(sha))
    return found


def shipped_model_with_sha256(sha256s: set[str]) -> Path | None:
    """The shipped ONNX model (``mars_cloudmask.models``) whose SHA-256 is in ``sha256s``, if any."""
    from mars_cloudmask.models import default_model_path

    from ..runtime import file_sha256

    if not sha256s:
        return None
    for candidate in sorted(default_model_path().parent.glob("*.onnx")):
        if file_sha256(candidate) in sha256s:
            return candidate
    return None


def split_for_masks(mask_paths: Iterable[str | Path], model: str | Path | None = None) -> ModelSplit | None:
    """The split of ``model``, else of the shipped model whose SHA-256 the masks carry; None if neither.

    Raises:
        ModelError: ``model`` is not a readable cloudmask ONNX model.
    """
    if model is None:
        model = shipped_model_with_sha256(masks_model_sha256(mask_paths))
    return read_model_split(model) if model is not None else None


def day_numbers(days: Iterable[str]) -> str:
    """Compact day numbers of day names: ``P01_day18, P01_day19, P01_day20`` -> ``18-20``."""
    numbers = sorted({int(d.rsplit("day", 1)[1]) for d in days})
    parts: list[str] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(str(numbers[i]) if i == j else f"{numbers[i]}-{numbers[j]}")
        i = j + 1
    return ",".join(parts)


def split_note(days: list[str], split: ModelSplit) -> str | None:
    """One line saying how many scored days the model trained or was validated on, or None."""
    seen = split.seen(days)
    if not seen:
        return None
    n_train = sum(split.role(d) == "train" for d in seen)
    n_val = len(seen) - n_train
    tested = sorted(d for d, role in split.roles.items() if role == "test")
    hint = f"; its test days alone: --days {day_numbers(tested)}" if tested else ""
    return (
        f"{len(seen)} of {len(days)} scored days were used by {split.model}: {n_train} to train it, "
        f"{n_val} to validate it; their scores are not test scores{hint}"
    )
