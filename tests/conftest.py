"""Shared pytest fixtures: a tiny ONNX model, synthetic maps, the real-data folder.

* ``tiny_model``: path of a tiny random-weight U-Net ONNX file (session-scoped).
* ``synthetic_map``: ``make_map(seed=0)``, a uint8 (1801, 3600, 3) north-up map (session-scoped;
  copy it before changing it).
* ``map_tree``: a folder ``P/P01`` with ``P01_ls.txt`` and two synthetic JPEGs (per test).
* ``data_dir``: ``$CLOUDMASK_DATA``, else ``../shared/data`` beside the checkout (tests using it
  skip when absent).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.synthetic import make_map, write_map_tree
from tests.tiny_model import make_tiny_unet_onnx

DATA_DIR = Path(os.environ.get("CLOUDMASK_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
"""The real data: ``$CLOUDMASK_DATA`` (as the benchmarks read it), else ``../shared/data`` beside the checkout."""


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny random-weight U-Net (``make_tiny_unet_onnx(seed=0)``)."""
    return make_tiny_unet_onnx(tmp_path_factory.mktemp("models") / "tiny.onnx", seed=0)


@pytest.fixture(scope="session")
def synthetic_map() -> np.ndarray:
    """A synthetic map, ``make_map(seed=0)`` (read-only: copy before editing)."""
    rgb = make_map(seed=0)
    rgb.setflags(write=False)
    return rgb


@pytest.fixture
def map_tree(tmp_path: Path) -> Path:
    """``tmp_path/maps`` holding ``P/P01/P01_ls.txt`` and days 1 and 2 as JPEGs; returns the root."""
    root = tmp_path / "maps"
    write_map_tree(root, days=(1, 2))
    return root


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder (:data:`DATA_DIR`); skips the test when it has no ``mdgm/``."""
    if not (DATA_DIR / "mdgm").is_dir():
        pytest.skip(f"real data not found at {DATA_DIR}")
    return DATA_DIR
