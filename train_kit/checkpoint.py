"""Run folders and checkpoints: where a run keeps its weights, and loading them safely.

A run folder holds ``best.keras`` (lowest validation loss so far), ``last.keras`` (end of the
latest epoch, for resuming), ``state.json`` (:class:`.run_state.RunState`: epoch, best loss, counters),
``history.json``, ``metrics.json``, ``run.json`` (the exact configuration and command),
``curves.png`` and ``epochs/epoch-NNN.weights.h5`` (the weights at the end of each epoch, for
weight averaging; about 4 bytes a parameter each).  Models are in the backend-neutral ``.keras``
format.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from mars_cloudmask.infer.atomic import write_text_atomic

BEST = "best.keras"
LAST = "last.keras"
STATE = "state.json"
RUN = "run.json"
METRICS = "metrics.json"
HISTORY = "history.json"
CURVES = "curves.png"
EPOCHS = "epochs"


def epoch_weights(run: str | Path, epoch: int) -> Path:
    """Where a run keeps the weights of the end of ``epoch`` (1-based)."""
    return Path(run) / EPOCHS / f"epoch-{epoch:03d}.weights.h5"


class CheckpointError(ValueError):
    """A checkpoint or run folder cannot be used; the message names the file and the reason."""


def resolve_weights(path: str | Path) -> Path:
    """The ``.keras`` file of a run folder (its ``best.keras``, else ``last.keras``) or the file itself."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, LAST):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: run folder holds neither {BEST} nor {LAST}")
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder")
    if path.suffix != ".keras":
        raise CheckpointError(f"{path}: expected a .keras file or a run folder")
    return path


def load_model(path: str | Path, compile: bool = False):
    """Load a ``.keras`` model (or a run folder's best one); corrupt files raise CheckpointError."""
    import keras

    from . import loss, metrics

    weights = resolve_weights(path)
    if weights.stat().st_size == 0:
        raise CheckpointError(f"{weights}: empty checkpoint file")
    try:
        custom = {"MaskedWeightedBCE": loss.MaskedWeightedBCE, "MaskedScore": metrics.MaskedScore}
        return keras.saving.load_model(weights, compile=compile, custom_objects=custom)
    except Exception as exc:  # zip, h5 and deserialisation errors all mean "unusable file"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{weights}: corrupt or unreadable checkpoint ({first[:200]})") from None


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically (temporary file in the same folder, then rename)."""
    return write_text_atomic(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a broken one raises CheckpointError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable JSON ({exc})") from None


def _save_atomic(path: str | Path, suffix: str, write) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path`` (ending in ``suffix``), then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_model(model, path: str | Path) -> Path:
    """Save a model atomically to a ``.keras`` file."""
    return _save_atomic(path, ".keras", model.save)


def save_weights(model, path: str | Path) -> Path:
    """Save a model's weights atomically to a ``.weights.h5`` file."""
    return _save_atomic(path, ".weights.h5", model.save_weights)


def average_weights(model, paths: list[Path]):
    """Set ``model``'s variables (BatchNorm statistics included) to the mean of the weight files.

    Every file must hold weights of ``model``'s architecture; a missing or unreadable one
    raises CheckpointError naming it.  Returns ``model``.
    """
    import numpy as np

    if not paths:
        raise CheckpointError("no weight file to average")
    total = None
    for path in paths:
        if not Path(path).is_file():
            raise CheckpointError(f"{path}: missing (was the run made with --no-keep-epochs?)")
        try:
            model.load_weights(path)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{path}: unreadable weights or another architecture ({first[:200]})") from None
        weights = [np.asarray(w, dtype=np.float64) for w in model.get_weights()]
        total = weights if total is None else [t + w for t, w in zip(total, weights, strict=True)]
    model.set_weights([t / len(paths) for t in total])
    return model


def _jsonable(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
