"""``python -m mars_cloudmask.benchmarks``: the same as ``cm-bench``."""

from .cli import main

main()
