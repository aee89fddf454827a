"""mars_cloudmask.infer: the lightweight cloud-mask runtime (onnxruntime, Numba, NetCDF).

Never imports TensorFlow.  Submodules are imported on first use, so ``import
mars_cloudmask.infer`` (and ``cm-infer --version``) stays cheap.
"""

from __future__ import annotations

import importlib

__all__ = ["__version__"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mars-cloudmask")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


__version__ = _version()
