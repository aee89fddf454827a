"""Benchmarks installed as a user installs them: defaults from the working directory, never from
the package's own location (benchmarks/paths.py, the defaults of cm-bench and model_card)."""

from __future__ import annotations

from pathlib import Path

import pytest

import mars_cloudmask.benchmarks as benchmarks_pkg
from mars_cloudmask.benchmarks import runner
from mars_cloudmask.benchmarks.paths import DATA_ENV, data_dir
from tests.tiny_model import make_tiny_unet_onnx

PKG_DIR = Path(benchmarks_pkg.__file__).resolve().parent
# what the old defaults were computed from: the package folder and ../shared beside its parent
FILE_DERIVED = (str(PKG_DIR), str(PKG_DIR.parents[0].parent / "shared"), "site-packages")


def _squashed(text: str) -> str:
    """Help text without any whitespace, so a path wrapped over two lines is still found."""
    return "".join(text.split())


def test_data_dir_is_the_option_then_the_variable_then_shared_data_from_the_cwd(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert data_dir() == Path("..") / "shared" / "data"  # relative: resolved against the CWD
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_dir() == tmp_path
    assert data_dir(tmp_path / "mine") == tmp_path / "mine"


def test_cm_bench_help_shows_no_path_of_the_installed_package():
    from typer.testing import CliRunner

    from mars_cloudmask.benchmarks.cli import app

    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"})
    assert result.exit_code == 0, result.output
    help_text = _squashed(result.output)
    assert "CLOUDMASK_DATA" in help_text and "../shared/data" in help_text
    for path in FILE_DERIVED:
        assert _squashed(path) not in help_text, path


def test_model_card_help_shows_no_path_of_the_installed_package(capsys):
    from mars_cloudmask.benchmarks.model_card import main

    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = _squashed(capsys.readouterr().out)
    assert "CLOUDMASK_DATA" in help_text
    for path in FILE_DERIVED:
        assert _squashed(path) not in help_text, path


def test_keras_variants_are_skipped_with_one_line_without_the_train_extra(monkeypatch, tmp_path, map_tree):
    monkeypatch.setattr(runner, "keras_available", lambda: False)
    onnx = make_tiny_unet_onnx(tmp_path / "tiny.onnx")
    fake_keras = tmp_path / "model.keras"
    fake_keras.write_bytes(b"never read")
    said: list[str] = []
    cfg = runner.BenchConfig(maps_root=map_tree, onnx=onnx, keras=fake_keras, suites=(), workdir=tmp_path / "w")
    doc = runner.run_benchmark(cfg, said.append)
    keras_lines = [line for line in said if "keras" in line.lower()]
    assert keras_lines == [f"keras-original, keras-center: skipped: {runner.KERAS_MISSING}"]
    assert "mars-cloudmask[train]" in keras_lines[0]
    assert set(doc["skipped"]) == {"keras-original", "keras-center"} and doc["errors"] == []
