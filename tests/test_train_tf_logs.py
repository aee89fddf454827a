"""train_kit.tf_logs: TensorFlow's start-up noise stays off stderr, real lines and CM_VERBOSE stay."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mars_cloudmask.train_kit.tf_logs import is_noise

pytest.importorskip("tensorflow")

SCRIPT = (
    "import sys\n"
    "from mars_cloudmask.train_kit.tf_logs import quiet_tensorflow\n"
    "quiet_tensorflow()\n"
    "import tensorflow as tf\n"
    "tf.constant([1.0]) + 1.0\n"
    "print('a line of ours', file=sys.stderr)\n"
)


def _stderr(env_extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("CM_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}
    env.update(env_extra)
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_known_noise_lines_are_recognised_and_others_are_not():
    assert is_noise("E0000 00:00:1796.1 2705 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error (303)")
    assert is_noise("I0000 00:00:17.6 2705 cudart_stub.cc:31] Could not find cuda drivers on your machine")
    assert is_noise("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert not is_noise("E0000 00:00:1.0 1 op_kernel.cc:1] OOM when allocating tensor with shape[8,16,668,668]")
    assert not is_noise("Traceback (most recent call last):")


def test_a_cpu_machine_sees_no_tensorflow_start_up_lines_but_its_own():
    quiet = _stderr({})
    assert "a line of ours" in quiet
    assert not [ln for ln in quiet.splitlines() if is_noise(ln)], quiet
    assert "cuInit" not in quiet and "cudart_stub" not in quiet


def test_cm_verbose_shows_everything():
    loud = _stderr({"CM_VERBOSE": "1"})
    quiet = _stderr({})
    assert "a line of ours" in loud
    if not any(is_noise(ln) for ln in loud.splitlines()):
        pytest.skip("this TensorFlow build prints no start-up lines here")
    assert len(loud.splitlines()) > len(quiet.splitlines())


def test_cm_train_says_its_error_without_tensorflow_noise(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CM_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}
    args = ["--data", str(tmp_path / "none"), "--val-days", "1", "--out", str(tmp_path / "run")]
    done = subprocess.run(
        [sys.executable, "-c", "from mars_cloudmask.train_kit.cli import main; main()", *args],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 1
    assert "none" in done.stderr and "error" in done.stderr
    assert not [ln for ln in done.stderr.splitlines() if is_noise(ln)], done.stderr


@pytest.mark.parametrize(
    "module,command", [("mars_cloudmask.train_kit.cli", "cm-train"), ("mars_cloudmask.export.cli", "cm-export")]
)
def test_a_runtime_only_install_names_the_train_extra(tmp_path, module, command):
    """keras made unimportable, as in `pip install ".[cpu]"`: one line naming the extra, exit 2, no traceback."""
    args = (
        ["--data", str(tmp_path), "--val-days", "1", "--out", str(tmp_path / "run")]
        if command == "cm-train"
        else ["--to", "onnx", str(tmp_path / "m.keras"), "--out", str(tmp_path / "m.onnx")]
    )
    code = f"import sys; sys.modules['keras'] = None; from {module} import main; main()"
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert f"{command}: needs the 'train' extra" in done.stderr and "mars-cloudmask[train]" in done.stderr
    assert "Traceback" not in done.stderr
