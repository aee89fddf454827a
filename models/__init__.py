"""The trained model(s) shipped with cloudmask; ``default_model_path()`` is cm-infer's default."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "cloudmask-unet.onnx"


def default_model_path() -> Path:
    """Path of the shipped default ONNX model (it may not exist in a checkout without one)."""
    return Path(str(resources.files(__name__).joinpath(DEFAULT_MODEL)))
