"""What machine a benchmark ran on: CPU, cores, memory, load, library versions, peak RSS.

Versions are read from the installed distributions' metadata, so the parent process of a
benchmark never imports TensorFlow to learn its version.
"""

from __future__ import annotations

import os
import platform
import re
import resource
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

DISTRIBUTIONS = (
    "mars-cloudmask",
    "onnxruntime",
    "onnxruntime-gpu",
    "tensorflow",
    "keras",
    "numpy",
    "numba",
    "netCDF4",
    "pillow",
    "onnx",
    "onnxconverter-common",
)
FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "f16c")


def versions() -> dict[str, str | None]:
    """Python and the installed versions of the distributions that change the figures."""
    from mars_cloudmask.infer.doctor import versions as installed

    return installed(DISTRIBUTIONS)


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, Any]:
    """CPU model name and the SIMD flags that matter for onnxruntime (Linux; empty elsewhere)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return {"model": platform.processor() or None, "flags": []}
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    have = set(flags.group(1).split()) if flags else set()
    return {"model": model.group(1).strip() if model else None, "flags": [f for f in FLAGS_OF_INTEREST if f in have]}


def memory_bytes() -> int | None:
    """Total physical memory, bytes."""
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:  # psutil is a base dependency, but keep the fingerprint robust
        return None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def peak_rss_bytes() -> int:
    """Peak resident set size of THIS process so far, bytes (``ru_maxrss`` is KiB on Linux)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if platform.system() == "Darwin" else rss * 1024)


def current_rss_bytes() -> int | None:
    """Resident set size of this process now, bytes."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        return None


def machine_name() -> str:
    """Short host name, made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", platform.node() or "machine")[:40]


def utc_stamp() -> str:
    """``2026-11-25T0450Z``: the date (and minute) part of a results file name."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H%MZ")


def fingerprint() -> dict[str, Any]:
    """Everything that identifies the machine and software a run measured."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "machine": machine_name(),
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_bytes": memory_bytes(),
        "versions": versions(),
        "thread_env": {
            k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
        },
    }
