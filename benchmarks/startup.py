"""Time from the command to the first map written: ``cm-bench --suite startup``.

``cm-infer MAP --out TMP --overwrite [ARGS]`` runs in a subprocess; the parent polls ``TMP``
every :data:`POLL_S` seconds for the first ``.ncdf`` file (the runtime writes through a
temporary name and renames, so a file that appears is complete).  Reported per run: seconds to
the first map (``first_map_s``) and to the process's exit (``exit_s``); the first run of a
variant also pays for filling Numba's cache (``cold``), the others find it.  ``cm-infer
--version`` is timed too: it must not import onnxruntime, OpenVINO or Numba.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

POLL_S = 0.01
"""Polling interval for the output file, s."""


def cm_infer_command() -> list[str]:
    """The ``cm-infer`` console script beside this Python (else ``python -m ...infer.cli``)."""
    script = Path(sys.executable).parent / "cm-infer"
    if script.is_file():
        return [str(script)]
    found = shutil.which("cm-infer")
    return [found] if found else [sys.executable, "-m", "mars_cloudmask.infer.cli"]


def first_map_time(
    map_path: str | Path, args: Sequence[str] = (), timeout_s: float = 600.0, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """One subprocess run of ``cm-infer`` on one map: seconds to the first mask file and to exit."""
    out = Path(tempfile.mkdtemp(prefix="cm-startup-"))
    cmd = [*cm_infer_command(), str(map_path), "--out", str(out), "--overwrite", *args]
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ, **(env or {}))
        )
        first = None
        while proc.poll() is None and time.perf_counter() - t0 < timeout_s:
            if first is None and any(out.rglob("*.ncdf")):
                first = time.perf_counter() - t0
            time.sleep(POLL_S)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            return {"ok": False, "command": cmd, "error": f"timed out after {timeout_s:.0f} s"}
        exit_s = time.perf_counter() - t0
        if first is None and any(out.rglob("*.ncdf")):
            first = exit_s  # written in the last polling interval
        err = (proc.stderr.read() if proc.stderr else "").strip().splitlines()
        ok = proc.returncode == 0 and first is not None
        return {
            "ok": ok,
            "command": cmd,
            "first_map_s": round(first, 3) if first else None,
            "exit_s": round(exit_s, 3),
            "returncode": proc.returncode,
            **({} if ok else {"error": err[-1][:300] if err else "no mask written"}),
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


def version_time(repeats: int = 3) -> dict[str, Any]:
    """Median seconds of ``cm-infer --version``, and whether it stayed light."""
    walls = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([*cm_infer_command(), "--version"], capture_output=True, check=False)
        walls.append(time.perf_counter() - t)
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, mars_cloudmask.infer.cli as c, mars_cloudmask.infer.runtime, "
            "mars_cloudmask.infer.stitch; print(','.join(m for m in ('onnxruntime', 'openvino', 'numba', 'tensorflow') "
            "if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    heavy = [m for m in probe.stdout.strip().split(",") if m]
    return {"median_s": round(statistics.median(walls), 3), "heavy_modules_on_import": heavy}


def startup_suite(
    map_path: str | Path, variants: dict[str, Sequence[str]], repeats: int = 3, progress: Any = None
) -> dict[str, Any]:
    """Each variant (name -> extra cm-infer arguments) ``repeats`` times on one map, after a cold
    run with an empty Numba cache (``NUMBA_CACHE_DIR`` pointed at a fresh folder)."""
    say = progress or (lambda _m: None)
    out: dict[str, Any] = {"map": str(map_path), "version": version_time(), "variants": {}}
    cache = Path(tempfile.mkdtemp(prefix="cm-numba-cache-"))
    try:
        for name, args in variants.items():
            env = {"NUMBA_CACHE_DIR": str(cache / name)}
            say(f"startup {name}: cold run (empty Numba cache)")
            cold = first_map_time(map_path, args, env=env)
            runs = []
            for r in range(repeats):
                say(f"startup {name}: run {r + 1}/{repeats}")
                runs.append(first_map_time(map_path, args, env=env))
            good = [r for r in runs if r["ok"]]
            out["variants"][name] = {
                "args": list(args),
                "cold": cold,
                "runs": runs,
                "first_map_s": statistics.median(r["first_map_s"] for r in good) if good else None,
                "exit_s": statistics.median(r["exit_s"] for r in good) if good else None,
                "ok": bool(good) and len(good) == len(runs),
                **({} if good else {"error": (runs[0] if runs else cold).get("error")}),
            }
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return out
