"""mars_cloudmask.infer: the lightweight cloud-mask runtime (onnxruntime, Numba, NetCDF).

Never imports TensorFlow.  Importing the package imports no submodule (only
``importlib.metadata``, for ``__version__``), so ``import mars_cloudmask.infer`` and
``cm-infer --version`` stay cheap; import what you need from its submodules, e.g.
``from mars_cloudmask.infer.predict import predict``.
"""

from __future__ import annotations

__all__ = ["__version__"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mars-cloudmask")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


__version__ = _version()
