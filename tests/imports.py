"""The project modules a source file imports, read from its syntax tree (imports inside
functions count too), for tests that keep module pairs from importing each other."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = {"infer": "infer", "train_kit": "train_kit", "export": "export", "benchmarks": "benchmarks"}


def imported_modules(module: str) -> set[str]:
    """Dotted names (without ``mars_cloudmask.``) of everything ``module`` (e.g.
    ``"infer.netcdf"``) imports, relative imports resolved; ``from X import a`` gives both
    ``X`` and ``X.a``."""
    top, _, rest = module.partition(".")
    path = ROOT / PACKAGE_DIRS[top] / (rest.replace(".", "/") + ".py" if rest else "__init__.py")
    base = module.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(base[: len(base) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out |= {n.removeprefix("mars_cloudmask.") for n in names}
    return out


def imports_module(module: str, other: str) -> bool:
    """True when ``module`` imports ``other`` or anything inside it."""
    return any(n == other or n.startswith(other + ".") for n in imported_modules(module))
