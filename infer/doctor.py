"""What a user needs for a useful bug report: versions, providers, CUDA libraries, threads.

Example::

    from mars_cloudmask.infer.doctor import doctor_info, format_doctor
    print(format_doctor(doctor_info(model_path=None)))   # what ``cm-infer --doctor`` prints
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

DISTRIBUTIONS = ("mars-cloudmask", "numpy", "onnxruntime", "onnxruntime-gpu", "numba", "netCDF4", "pillow")


def versions(distributions: tuple[str, ...] = DISTRIBUTIONS) -> dict[str, str | None]:
    """Installed versions of Python and of ``distributions`` (default: the runtime's; None: not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in distributions:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def doctor_info(model_path: str | Path | None = None, provider: str = "auto", threads: int | None = None) -> dict[str, Any]:
    """Everything ``--doctor`` reports, as a dict (also usable from Python).

    Creates a session on ``model_path`` (default: the shipped model, if any) to show the
    providers it really gets; a model that cannot be loaded is reported, not raised.
    """
    from . import runtime

    info: dict[str, Any] = {"platform": platform.platform(), "versions": versions()}
    both = info["versions"]["onnxruntime"] and info["versions"]["onnxruntime-gpu"]
    info["warnings"] = (
        ["onnxruntime and onnxruntime-gpu are both installed: they share one import name; "
         "uninstall both and install one (pip install \"mars-cloudmask[gpu]\" or [cpu])"]
        if both
        else []
    )
    try:
        ort = runtime._ort()
        info["onnxruntime_import"] = ort.__version__
        info["available_providers"] = list(ort.get_available_providers())
        info["onnxruntime_device"] = ort.get_device()
    except ImportError as exc:
        info["onnxruntime_import"] = None
        info["available_providers"] = []
        info["warnings"].append(f"onnxruntime cannot be imported ({exc}): pip install \"mars-cloudmask[cpu]\"")
    info["cuda_libraries"] = runtime.find_cuda_libraries()
    info["threads"] = runtime.thread_settings()
    path = Path(model_path) if model_path else runtime.default_model_path()
    info["model"] = {"path": str(path)}
    if info["onnxruntime_import"]:
        try:
            model = runtime.load_model(model_path, provider=provider, threads=threads)
            info["model"].update(
                name=model.info.name,
                version=model.info.version,
                threshold=model.info.threshold,
                active_providers=model.providers,
                provider=model.provider,
                intra_op_threads=model.session.get_session_options().intra_op_num_threads,
            )
        except (runtime.ModelError, runtime.ProviderError) as exc:
            info["model"]["error"] = str(exc)
    return info


def format_doctor(info: dict[str, Any]) -> str:
    """Plain-text report of :func:`doctor_info`, one fact per line."""
    lines = [f"platform: {info['platform']}"]
    lines += [f"{name}: {ver or 'not installed'}" for name, ver in info["versions"].items()]
    lines.append(f"onnxruntime device: {info.get('onnxruntime_device', 'n/a')}")
    lines.append(f"available providers: {', '.join(info['available_providers']) or 'none'}")
    for label, soname in info["cuda_libraries"].items():
        lines.append(f"{label}: {soname or 'not found'}")
    t = info["threads"]
    env = ", ".join(f"{k}={v}" for k, v in t.items() if k.endswith("THREADS") and v is not None)
    lines.append(f"threads: {t['usable_cpus']} usable CPUs of {t['cpu_count']}" + (f"; {env}" if env else ""))
    m = info["model"]
    lines.append(f"model: {m['path']}")
    if "error" in m:
        lines.append(f"model error: {m['error']}")
    elif "provider" in m:
        lines.append(f"model: {m['name']} {m['version']}, threshold {m['threshold']}")
        lines.append(f"active providers: {', '.join(m['active_providers'])} (running on {m['provider'].upper()})")
        lines.append(f"onnxruntime intra-op threads: {m['intra_op_threads'] or 'default (all usable CPUs)'}")
    lines += [f"WARNING: {w}" for w in info["warnings"]]
    return "\n".join(lines)
