"""The ``mars_cloudmask.infer`` package itself: importing it is cheap (infer/__init__.py)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_package_loads_no_submodule_and_no_heavy_library():
    code = (
        "import sys, mars_cloudmask.infer as m; "
        "print(m.__version__); "
        "print(sorted(k for k in sys.modules if k.startswith('mars_cloudmask.infer.'))); "
        "print(sorted(k for k in ('numpy', 'onnxruntime', 'numba', 'netCDF4', 'tensorflow') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] and out[0] != "None"
    assert out[1] == "[]", f"submodules imported by the package: {out[1]}"
    assert out[2] == "[]", f"libraries imported by the package: {out[2]}"
