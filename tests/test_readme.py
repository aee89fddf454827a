"""The README's Python examples run as written: every ```python block right after a
``<!-- readme-test: python -->`` line is executed in a fresh working folder that has the real
data at ``../shared/data``, as a clone with ``../shared`` beside it has."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- readme-test: python -->"


def readme_blocks(text: str) -> list[str]:
    """The code of each ```python block that directly follows the marker line."""
    pattern = re.escape(MARKER) + r"\s*\n```python\n(.*?)\n```"
    return re.findall(pattern, text, flags=re.DOTALL)


def test_the_marker_finds_the_python_api_block():
    blocks = readme_blocks(README.read_text())
    assert len(blocks) == 1
    assert "run_folder(" in blocks[0] and "report.counts()" in blocks[0]


def test_readme_blocks_ignores_unmarked_code():
    text = f"```python\nunmarked()\n```\n{MARKER}\n```python\nmarked()\n```\n"
    assert readme_blocks(text) == ["marked()"]


@pytest.mark.slow
def test_python_api_block_runs_from_a_clone(data_dir, tmp_path, monkeypatch, capsys):
    clone = tmp_path / "clone"
    clone.mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(data_dir.resolve(), target_is_directory=True)
    monkeypatch.chdir(clone)
    (block,) = readme_blocks(README.read_text())
    namespace: dict = {"__name__": "readme"}
    exec(compile(block, str(README), "exec"), namespace)

    # what the block's comments promise
    assert "{'done': 1, 'skipped': 0, 'failed': 0}" in capsys.readouterr().out
    prob, mask = namespace["prob"], namespace["mask"]
    assert prob.shape == (1801, 3600) and prob.dtype == np.float32
    valid = prob != -999
    assert 0.3 < valid.mean() < 0.9 and 0 <= prob[valid].min() and prob[valid].max() <= 1
    assert set(np.unique(mask).tolist()) == {-999.0, 0.0, 1.0}
    np.testing.assert_array_equal(mask == -999, ~valid)  # read back north-up, same pixels invalid
    assert (clone / "masks-api" / "cloudmask_P01_day01.ncdf").is_file()
    assert (clone / "masks-api" / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day01.ncdf").is_file()
