"""Child-process entry point: ``python -m mars_cloudmask.benchmarks.worker SPEC.json RESULT.json``.

Measures one :class:`.measure.VariantSpec` and writes its result (or ``{"ok": false,
"error": "<one line>"}``) to RESULT.json; exit status 0 on success, 1 on failure.  Run by
:func:`.runner.run_variant`, one process per variant, so each variant's peak RSS is its own
and TensorFlow is loaded only in the Keras variants' processes.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m mars_cloudmask.benchmarks.worker SPEC.json RESULT.json", file=sys.stderr)
        return 2
    spec_path, result_path = Path(args[0]), Path(args[1])
    from .measure import VariantSpec, measure_variant

    try:
        spec = VariantSpec.from_json(json.loads(spec_path.read_text()))
        if spec.engine == "keras":  # TensorFlow's start-up lines say nothing a user can act on
            from mars_cloudmask.train_kit.tf_logs import quiet_tensorflow

            quiet_tensorflow()
        result = {"ok": True, **measure_variant(spec)}
        status = 0
    except Exception as exc:  # reported to the parent as one line, with the traceback on stderr
        traceback.print_exc()
        result = {"ok": False, "error": " ".join(f"{type(exc).__name__}: {exc}".split())[:500]}
        status = 1
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(result_path)
    return status


if __name__ == "__main__":
    sys.exit(main())
