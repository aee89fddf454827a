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


END_TO_END_MAPS = 5
"""Maps per end-to-end run (the speed issue's target is stated for 5 real maps)."""


def end_to_end_run(
    map_paths: Sequence[str | Path], args: Sequence[str] = (), timeout_s: float = 1800.0
) -> dict[str, Any]:
    """One ``cm-infer MAP... --out TMP --overwrite ARGS`` subprocess, start-up included.

    Returns wall seconds from the command to the process's exit (``wall_s``), to the first mask
    (``first_map_s``), maps per second over the whole run, and the child's own peak RSS (bytes,
    from ``wait4``'s resource usage: this process and other children do not count).
    """
    out = Path(tempfile.mkdtemp(prefix="cm-e2e-"))
    cmd = [*cm_infer_command(), *map(str, map_paths), "--out", str(out), "--overwrite", *args]
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        first, status, usage = None, None, None
        while time.perf_counter() - t0 < timeout_s:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if first is None and any(out.rglob("*.ncdf")):
                first = time.perf_counter() - t0
            time.sleep(POLL_S)
        else:
            proc.kill()
            os.wait4(proc.pid, 0)
            return {"ok": False, "command": cmd, "error": f"timed out after {timeout_s:.0f} s"}
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        written = len(list(out.rglob("*.ncdf")))
        err = (proc.stderr.read() if proc.stderr else "").strip().splitlines()
        ok = proc.returncode == 0 and written == len(map_paths)
        return {
            "ok": ok,
            "command": cmd,
            "wall_s": round(wall, 3),
            "first_map_s": round(first if first is not None else wall, 3),
            "maps_per_s": round(written / wall, 4),
            "peak_rss_bytes": usage.ru_maxrss * 1024 if usage is not None else None,  # Linux: KiB
            "returncode": proc.returncode,
            **({} if ok else {"error": err[-1][:300] if err else f"{written} of {len(map_paths)} masks"}),
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


def end_to_end_suite(
    map_paths: Sequence[str | Path], variants: dict[str, Sequence[str]], repeats: int = 3, progress: Any = None
) -> dict[str, Any]:
    """Each variant (name -> extra cm-infer arguments) on the same maps, ``repeats`` times,
    interleaved (A B A B ...) after one untimed warm-up run each (Numba cache, page cache), so
    both see the same machine load.  The first variant is the baseline of ``x_first``."""
    say = progress or (lambda _m: None)
    maps = [str(p) for p in map_paths]
    out: dict[str, Any] = {
        "maps": maps,
        "repeats": repeats,
        "variants": {n: {"args": list(a), "runs": []} for n, a in variants.items()},
    }
    for name, args in variants.items():
        say(f"end-to-end {name}: warm-up run")
        out["variants"][name]["warmup"] = end_to_end_run(maps, args)
    for r in range(repeats):
        for name, args in variants.items():
            say(f"end-to-end {name}: run {r + 1}/{repeats}")
            out["variants"][name]["runs"].append(end_to_end_run(maps, args))
    base = None
    for v in out["variants"].values():
        good = [r for r in v["runs"] if r["ok"]]
        v["ok"] = bool(good) and len(good) == len(v["runs"])
        if good:
            v["wall_s"] = statistics.median(r["wall_s"] for r in good)
            v["first_map_s"] = statistics.median(r["first_map_s"] for r in good)
            v["maps_per_s"] = len(maps) / v["wall_s"]
            v["peak_rss_bytes"] = max(r["peak_rss_bytes"] or 0 for r in good)
            base = base or v["maps_per_s"]
            v["x_first"] = v["maps_per_s"] / base
        else:
            v["error"] = v["runs"][0].get("error") if v["runs"] else "no run"
    return out
