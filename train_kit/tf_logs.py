"""TensorFlow's start-up noise, kept off a user's terminal (issue 35).

On a CPU-only machine, ``import tensorflow`` and its first device query print C++ log lines
that no ``TF_CPP_MIN_LOG_LEVEL`` value silences in TF 2.19+ (they are written before absl's
logging is initialised): ``Could not find cuda drivers``, ``failed call to cuInit: ... (303)``,
oneDNN and CPU-feature notes.  None of them is something a user of ``cm-train`` can act on.

:func:`quiet_tensorflow` imports TensorFlow with the process's stderr (file descriptor 2)
captured, then writes back every captured line except the known noise, so a real error still
shows.  ``CM_VERBOSE=1`` (or ``verbose=True``, the commands' ``--verbose``) shows everything.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

NOISE = re.compile(
    r"cudart_stub|cuInit|cuda_(dnn|blas|fft|platform|executor|diagnostics)|Unable to register cu|"
    r"oneDNN custom operations|TF_ENABLE_ONEDNN_OPTS|cpu_feature_guard|To enable the following instructions|"
    r"rebuild TensorFlow with the appropriate compiler flags|absl::InitializeLog|computation_placer|TF-TRT Warning|"
    r"This TensorFlow binary is optimized"
)
"""Log lines of TensorFlow's start-up that say nothing a CPU user can act on."""


def is_noise(line: str) -> bool:
    """True for a TensorFlow start-up line that :func:`quiet_tensorflow` drops."""
    return bool(NOISE.search(line))


def verbose_requested() -> bool:
    """``CM_VERBOSE`` set to anything but '', '0' or 'false'."""
    return os.environ.get("CM_VERBOSE", "").strip().lower() not in ("", "0", "false")


def quiet_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow and Keras and initialise the devices, dropping the start-up noise from stderr.

    Idempotent; with ``verbose`` (or ``CM_VERBOSE=1``) it only imports.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if verbose:
        os.environ["CM_VERBOSE"] = "1"
    if verbose or verbose_requested() or "tensorflow" in sys.modules:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow as tf

            tf.config.list_physical_devices()  # the cuInit line comes with the first device query
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        kept = [ln for ln in captured.read().decode("utf-8", "replace").splitlines() if ln.strip() and not is_noise(ln)]
    for line in kept:
        print(line, file=sys.stderr)


def start_tensorflow(command: str) -> None:
    """For a command line: :func:`quiet_tensorflow`, or exit 2 with one line naming the ``train``
    extra when TensorFlow or Keras is not installed (a runtime-only ``[cpu]`` install)."""
    try:
        quiet_tensorflow()
    except ModuleNotFoundError as exc:
        print(
            f"{command}: needs the 'train' extra ({exc}): pip install \"mars-cloudmask[train]\"",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
