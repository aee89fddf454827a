"""What a user needs for a useful bug report: versions, providers, OpenVINO, CUDA libraries, threads.

Example::

    from mars_cloudmask.infer.doctor import doctor_info, format_doctor
    print(format_doctor(doctor_info(model_path=None)))   # what ``cm-infer --doctor`` prints
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

DISTRIBUTIONS = ("mars-cloudmask", "numpy", "onnxruntime", "onnxruntime-gpu", "openvino", "numba", "netCDF4", "pillow")


def versions(distributions: tuple[str, ...] = DISTRIBUTIONS) -> dict[str, str | None]:
    """Installed versions of Python and of ``distributions`` (default: the runtime's; None: not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in distributions:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def openvino_info() -> dict[str, Any]:
    """OpenVINO's version, devices and CPU name, and whether the CPU has native bf16 (None: not installed)."""
    from . import runtime

    flags = runtime.cpu_flags()
    info: dict[str, Any] = {
        "cpu_bf16_flags": sorted(set(flags) & set(runtime.BF16_FLAGS)),
        "native_bf16": runtime.native_bf16(flags),
    }
    if not runtime.openvino_installed():
        return {**info, "version": None}
    try:
        ov = runtime._ov()
        core = ov.Core()
        info.update(
            version=ov.__version__,
            devices=list(core.available_devices),
            cpu=str(core.get_property("CPU", "FULL_DEVICE_NAME")),
        )
    except Exception as exc:  # a broken install is reported, not raised
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        info.update(version=None, error=f"openvino cannot start ({first})")
    return info


def doctor_info(
    model_path: str | Path | None = None, provider: str = "auto", threads: int | None = None, precision: str = "auto"
) -> dict[str, Any]:
    """Everything ``--doctor`` reports, as a dict (also usable from Python).

    Loads ``model_path`` (default: the shipped model, if any) with ``provider`` and
    ``precision`` to show what really runs; a model that cannot be loaded is reported, not raised.
    """
    from . import runtime

    info: dict[str, Any] = {"platform": platform.platform(), "versions": versions()}
    both = info["versions"]["onnxruntime"] and info["versions"]["onnxruntime-gpu"]
    info["warnings"] = (
        [
            "onnxruntime and onnxruntime-gpu are both installed: they share one import name; "
            'uninstall both and install one (pip install "mars-cloudmask[gpu]" or [cpu])'
        ]
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
        info["warnings"].append(f'onnxruntime cannot be imported ({exc}): pip install "mars-cloudmask[cpu]"')
    info["openvino"] = openvino_info()
    if info["openvino"].get("error"):
        info["warnings"].append(info["openvino"]["error"])
    info["cuda_libraries"] = runtime.find_cuda_libraries()
    info["threads"] = runtime.thread_settings()
    path = Path(model_path) if model_path else runtime.default_model_path()
    info["model"] = {"path": str(path)}
    if info["onnxruntime_import"] or info["openvino"].get("version"):
        try:
            model = runtime.load_model(model_path, provider=provider, threads=threads, precision=precision)
            info["model"].update(
                name=model.info.name,
                version=model.info.version,
                threshold=model.info.threshold,
                active_providers=model.providers,
                provider=model.provider,
                precision=model.precision,
                intra_op_threads=model.backend.threads_used,
            )
        except (runtime.ModelError, runtime.ProviderError, ValueError) as exc:
            info["model"]["error"] = str(exc)
    return info


def format_doctor(info: dict[str, Any]) -> str:
    """Plain-text report of :func:`doctor_info`, one fact per line."""
    lines = [f"platform: {info['platform']}"]
    lines += [f"{name}: {ver or 'not installed'}" for name, ver in info["versions"].items()]
    lines.append(f"onnxruntime device: {info.get('onnxruntime_device', 'n/a')}")
    lines.append(f"available providers: {', '.join(info['available_providers']) or 'none'}")
    ov = info.get("openvino", {})
    bf16 = (
        ("native bf16 (" + ", ".join(ov.get("cpu_bf16_flags", [])) + ")") if ov.get("native_bf16") else "no native bf16"
    )
    if ov.get("version"):
        devices = ", ".join(ov.get("devices", [])) or "none"
        lines.append(f"openvino: {ov['version']}, devices {devices}; CPU {ov.get('cpu', '?')}, {bf16}")
    else:
        lines.append(f"openvino: not available; CPU {bf16}")
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
        lines.append(
            f"active providers: {', '.join(m['active_providers'])} (running on {m['provider'].upper()}, "
            f"precision {m['precision']})"
        )
        lines.append(f"inference threads: {m['intra_op_threads'] or 'default (all usable CPUs)'}")
    lines += [f"WARNING: {w}" for w in info["warnings"]]
    return "\n".join(lines)
