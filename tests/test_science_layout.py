"""The runtime stands alone: cm-infer's modules never import the science subpackage or matplotlib."""

from __future__ import annotations

import subprocess
import sys


def modules_loaded_by(code: str) -> set[str]:
    """The names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def science_or_matplotlib(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.startswith("mars_cloudmask.infer.science") or m.split(".")[0] == "matplotlib")


def test_the_runtime_imports_no_science_module():
    loaded = modules_loaded_by("import mars_cloudmask.infer.cli, mars_cloudmask.infer.engine")
    assert "mars_cloudmask.infer.engine" in loaded
    assert science_or_matplotlib(loaded) == []
