"""Mask provenance: whether an existing mask is sound (:func:`inspect_mask`), how it was made
where that differs from a plan (:func:`provenance_changes`), and the global attributes a new
mask gets (:func:`mask_attributes`)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .geometry import INVALID, MAP_HEIGHT, MAP_WIDTH
from .plan import RunPlan
from .results import LoadedMap


def values_problem(path: Path, data: np.ndarray) -> str | None:
    """None when every value of a mask is -999 (invalid) or a probability in [0, 1]; else one
    line naming the file (a mask edited to 5.0 or NaN everywhere is not sound)."""
    valid = data != INVALID
    bad_nan = int(np.count_nonzero(~np.isfinite(data)))
    if bad_nan:
        return f"{path}: {bad_nan} values are NaN or infinite"
    outside = valid & ((data < 0.0) | (data > 1.0))
    if outside.any():
        lo, hi = float(data[outside].min()), float(data[outside].max())
        return f"{path}: {int(np.count_nonzero(outside))} values outside [0, 1] and not -999 (from {lo:g} to {hi:g})"
    return None


def inspect_mask(path: Path) -> tuple[str | None, dict[str, Any]]:
    """``(problem, attributes)`` of an existing mask in one read: problem None when it is a
    complete, readable mask of the map's shape whose values are sound (:func:`values_problem`)."""
    import netCDF4

    from .netcdf import NETCDF_LOCK, check_mask_file

    try:
        with NETCDF_LOCK, netCDF4.Dataset(path) as ds:
            var = ds.variables["cloudmask"]
            if var.shape != (MAP_HEIGHT, MAP_WIDTH):
                raise ValueError(var.shape)
            var.set_auto_maskandscale(False)
            data = np.asarray(var[:, :], dtype=np.float32)
            attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
    except Exception:  # noqa: BLE001 - the check below names what is wrong
        return check_mask_file(path) or f"{path}: not a readable NetCDF mask", {}
    return values_problem(path, data), attrs


def mask_problem(path: Path) -> str | None:
    """None when ``path`` is a complete, readable mask of the map's shape with sound values; else why not."""
    return inspect_mask(path)[0]


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


def provenance_changes(attrs: dict[str, Any], plan: RunPlan) -> list[str]:
    """How the mask with global attributes ``attrs`` was made, where that differs from ``plan``:
    e.g. ``["model cloudmask-unet 2 (sha256 ab12cd34..)", "threshold 0.47", "binary output"]``;
    empty when it was made as this run would make it."""
    a = {k: _plain(v) for k, v in attrs.items()}
    changes = []
    if a.get("model_sha256") != plan.model_sha256:
        sha = a.get("model_sha256")
        name = a.get("model_name")
        made_by = f"model {name} {a.get('model_version', '?')}" if name else "an unknown model"
        changes.append(made_by + (f" (sha256 {str(sha)[:8]}..)" if sha else ""))
    threshold = a.get("threshold")
    if not isinstance(threshold, (int, float)) or abs(float(threshold) - plan.threshold) > 1e-9:
        changes.append(f"threshold {threshold if threshold is not None else 'unknown'}")
    want = "binary" if plan.binary else "probability"
    if a.get("output_type", "probability") != want:
        changes.append(f"{a.get('output_type')} output")
    if plan.bounds is not None:
        if a.get("bounds_source") != "--bounds" or list(a.get("bounds_xmin_xmax_ymin_ymax") or []) != list(plan.bounds):
            box = a.get("bounds_xmin_xmax_ymin_ymax")
            changes.append("bounds from Ls" if a.get("bounds_source") != "--bounds" else f"--bounds {box}")
    elif a.get("bounds_source", "Ls") != "Ls":
        changes.append(f"--bounds {a.get('bounds_xmin_xmax_ymin_ymax')}")
    elif a.get("polar_offset_deg") is not None and abs(float(a["polar_offset_deg"]) - plan.polar_offset) > 1e-9:
        changes.append(f"polar offset {a['polar_offset_deg']:g}")
    if a.get("stitch_mode", plan.stitch) != plan.stitch:
        changes.append(f"stitch {a['stitch_mode']}")
    if a.get("input_channels", "rgb") != plan.channels:
        changes.append(f"input channels {a.get('input_channels', 'rgb')}")
    return changes


def mask_attributes(loaded: LoadedMap, plan: RunPlan, model_sha256: str | None = None) -> dict[str, Any]:
    """Global attributes of a mask file (CF ``Conventions`` is added by the writer)."""
    from . import __version__

    job, entry, box = loaded.job, loaded.entry, loaded.bounds
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out_name = plan.output_path(job).name
    return {
        "title": f"Water-ice cloud {'mask' if plan.binary else 'probability'} of MARCI MDGM {job.name}",
        "source": f"U-Net cloud mask (cloudmask {__version__}) of a MARCI Mars Daily Global Map",
        "source_map": job.path.name,
        "map_name": job.name,
        "phase": job.phase,
        "subphase": job.subphase,
        "solar_longitude": entry.ls if entry else None,
        "solar_longitude_units": "degree",
        "mars_year": entry.mars_year if entry else None,
        "model_name": plan.model_name,
        "model_version": plan.model_version,
        "model_sha256": model_sha256 or plan.model_sha256,
        "threshold": plan.threshold,
        "output_type": "binary" if plan.binary else "probability",
        "stitch_mode": plan.stitch,
        "polar_offset_deg": plan.polar_offset,
        "bounds_source": "--bounds" if plan.bounds is not None else "Ls",
        "bounds_xmin_xmax_ymin_ymax": list(box.as_tuple()) if box else None,
        "bounds_convention": "north-up JPEG pixel indices, exclusive max",
        "history": f"{now} cm-infer {__version__} run {plan.run_id}: {job.path.name} -> {out_name}",
        "run_id": plan.run_id,
        # models with extra channels only: RGB masks keep the attributes they always had
        **({"input_channels": plan.channels} if plan.channels != "rgb" else {}),
        **({"background_composite": loaded.background} if loaded.background else {}),
    }
