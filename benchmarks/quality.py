"""Reduced-precision variants of a cloudmask ONNX model, and how much they change the masks.

* :func:`make_fp16`: fp16 weights and activations (onnxconverter-common, through
  ``export.onnx_export.to_fp16``), uint8 input and float32 output kept: the CUDA variant,
  checked here on the CPU provider.
* :func:`make_int8`: onnxruntime static quantization (QDQ, uint8 activations, int8 weights,
  per-channel), calibrated with MinMax on real tiles (:func:`calibration_tiles`).
* :func:`compare_masks`: F1 of a variant's masks against the fp32 model's own masks, the
  largest probability difference, and (when labels are given) both models' F1 against labels.

All masks compared are **north-up** ``(1801, 3600)`` float32 NetCDF outputs of ``cm-infer``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

INT8_MAX_F1_DROP = 0.005
"""cm-infer offers the int8 model only if its F1 drops by at most this much (and it is faster)."""


def _copy_metadata(src, dst, extra: dict[str, str]) -> None:
    """Give ``dst`` (ModelProto) the metadata_props of ``src`` plus ``extra``."""
    meta = {p.key: p.value for p in src.metadata_props}
    meta.update(extra)
    del dst.metadata_props[:]
    for key, value in meta.items():
        entry = dst.metadata_props.add()
        entry.key, entry.value = key, str(value)


def make_fp16(src: str | Path, dst: str | Path) -> Path:
    """Write the fp16 variant of ``src`` to ``dst`` (metadata kept, ``precision=fp16`` added)."""
    import onnx

    from mars_cloudmask.export.onnx_export import save_atomic, to_fp16

    proto = onnx.load(str(src))
    half = to_fp16(proto)
    _copy_metadata(proto, half, {"precision": "fp16"})
    return save_atomic(half, dst)


def calibration_tiles(maps: Sequence[str | Path], per_map: int, seed: int = 0, bounds=None) -> np.ndarray:
    """``per_map`` random seamless-plan input tiles of each map's Ls box, uint8 ``(n, 668, 668, 3)``.

    Tiles whose input holds almost no data (< 20 % valid pixels) are skipped, so the calibration
    sees real surface and clouds rather than black gaps.
    """
    from mars_cloudmask.infer.engine import load_map
    from mars_cloudmask.infer.geometry import build_canvas, plan_tiles, tile_input
    from mars_cloudmask.infer.maps import find_jobs

    rng = np.random.default_rng(seed)
    jobs, errors = find_jobs(maps)
    if errors:
        raise ValueError("; ".join(errors))
    box = tuple(bounds) if bounds else None
    tiles: list[np.ndarray] = []
    for job in jobs:
        loaded = load_map(job, bounds=box)
        if loaded.bounds is None:
            continue
        plan = plan_tiles(loaded.bounds, "seamless")
        canvas = build_canvas(loaded.rgb, plan)
        origins = plan.origins()
        good = [o for o in origins if (tile_input(canvas, plan, int(o[0]), int(o[1])).min(axis=2) >= 30).mean() >= 0.2]
        pick = rng.permutation(len(good))[:per_map]
        tiles.extend(
            np.ascontiguousarray(tile_input(canvas, plan, int(good[i][0]), int(good[i][1]))) for i in sorted(pick)
        )
    if not tiles:
        raise ValueError("no calibration tile with data found in " + ", ".join(map(str, maps)))
    return np.stack(tiles)


def make_int8(src: str | Path, dst: str | Path, tiles: np.ndarray, per_channel: bool = True) -> Path:
    """Statically quantize ``src`` (QDQ, U8 activations / S8 weights, MinMax on ``tiles``) to ``dst``.

    ``tiles``: uint8 ``(n, H, W, 3)`` calibration inputs.  Metadata kept, ``precision=int8`` and
    ``calibration_tiles`` added.  Written atomically.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from mars_cloudmask.export.onnx_export import save_atomic

    src, dst = Path(src), Path(dst)

    class Tiles(CalibrationDataReader):
        def __init__(self, name: str):
            self.name, self.k = name, 0

        def get_next(self):
            if self.k >= len(tiles):
                return None
            self.k += 1
            return {self.name: tiles[self.k - 1 : self.k]}

        def rewind(self) -> None:
            self.k = 0

    original = onnx.load(str(src))
    input_name = original.graph.input[0].name
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception:  # pre-processing is an optimisation; quantize the original if it fails
            pre = src
        raw = Path(tmp) / "int8.onnx"
        quantize_static(
            str(pre),
            str(raw),
            Tiles(input_name),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            extra_options={"CalibMaxIntermediateOutputs": _flush_every(len(tiles))},
        )
        quant = onnx.load(str(raw))
    _copy_metadata(original, quant, {"precision": "int8", "calibration_tiles": str(len(tiles))})
    return save_atomic(quant, dst)


def _flush_every(n: int) -> int:
    """How many tiles' activations the calibrator holds before folding them into its ranges.

    Small, to bound memory (each 668 px tile's activations take hundreds of MB), and NOT a
    divisor of ``n``: onnxruntime 1.32 raises "No data is collected" when the last flush
    leaves nothing behind.
    """
    return next(k for k in range(2, n + 2) if n % k)


def compare_masks(
    variant_dir: str | Path,
    fp32_dir: str | Path,
    threshold: float,
    labels_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Compare a variant's probability masks with the fp32 model's, day by day and pooled.

    Returns ``f1_vs_fp32`` (pooled over days: the variant's cloud pixels against the fp32
    model's, at ``threshold``), ``max_abs_diff`` (probability, pixels valid in both),
    ``class_flips`` (share of those pixels changing side of the threshold), and with
    ``labels_dir``: ``f1_labels_fp32``, ``f1_labels_variant`` and ``f1_drop`` (fp32 - variant).
    """
    from mars_cloudmask.infer.geometry import INVALID
    from mars_cloudmask.infer.netcdf import read_mask
    from mars_cloudmask.infer.science.evaluate import Counts, confusion
    from mars_cloudmask.infer.science.masks import binarise, find_masks, load_binary

    var, ref = find_masks(variant_dir), find_masks(fp32_dir)
    labels = find_masks(labels_dir) if labels_dir else {}
    days = sorted(set(var) & set(ref))
    if not days:
        raise ValueError(f"no common days between {variant_dir} and {fp32_dir}")
    pairs = [(day, read_mask(var[day]), read_mask(ref[day])) for day in days]
    agree, lab_ref, lab_var = Counts(), Counts(), Counts()
    max_diff, flips, both_valid = 0.0, 0, 0
    for day, a, b in pairs:
        pa, pb = binarise(a, threshold), binarise(b, threshold)
        both = pa.valid & pb.valid
        if both.any():
            max_diff = max(max_diff, float(np.abs(a[both] - b[both]).max()))
        flips += int(np.count_nonzero((pa.cloud != pb.cloud) & both))
        both_valid += int(np.count_nonzero(both))
        agree = agree + confusion(pa, pb)
        if day in labels:
            truth = load_binary(labels[day], label=True)
            lab_ref = lab_ref + confusion(pb, truth)
            lab_var = lab_var + confusion(pa, truth)
    out: dict[str, Any] = {
        "days": days,
        "threshold": threshold,
        "f1_vs_fp32": _nan_none(agree.metrics()["f1"]),
        "fp32_cloud_pixels": agree.tp + agree.fn,
        "max_abs_diff": max_diff,
        "class_flips": flips / both_valid if both_valid else None,
    }
    if agree.tp + agree.fn == 0:
        # an untrained model may put no pixel above the threshold: compare at the fp32 model's
        # 95th percentile instead (5 % "cloud"), clearly labelled as such
        valid = np.concatenate([b[b > INVALID + 0.5] for _, _, b in pairs])
        probe = float(np.percentile(valid, 95)) if valid.size else None
        if probe is not None:
            c = Counts()
            for _, a, b in pairs:
                c = c + confusion(binarise(a, probe), binarise(b, probe))
            out.update(probe_threshold=probe, f1_vs_fp32_at_probe=_nan_none(c.metrics()["f1"]))
    if labels:
        f_ref, f_var = _nan_none(lab_ref.metrics()["f1"]), _nan_none(lab_var.metrics()["f1"])
        out.update(
            label_days=[d for d in days if d in labels],
            f1_labels_fp32=f_ref,
            f1_labels_variant=f_var,
            f1_drop=(f_ref - f_var) if f_ref is not None and f_var is not None else None,
        )
    return out


def _nan_none(v: float) -> float | None:
    return None if v is None or np.isnan(v) else float(v)


def int8_verdict(
    comparison: dict[str, Any], trained: bool, int8_s_per_map: float | None, fp32_s_per_map: float | None
) -> dict[str, Any]:
    """Should ``cm-infer`` offer the int8 model?  Only if its F1 drops <= 0.005 AND it is faster.

    The F1 drop is measured against labels when the model is trained and labels were compared;
    otherwise ``1 - F1(int8 vs fp32 masks)`` stands in (an untrained model has no meaningful
    label F1), and the verdict says which was used.
    """
    if trained and comparison.get("f1_drop") is not None:
        drop, basis = comparison["f1_drop"], "F1 against labels (fp32 - int8)"
    elif comparison.get("f1_vs_fp32") is not None:
        drop, basis = (
            1.0 - comparison["f1_vs_fp32"],
            "1 - F1 of int8 masks against fp32 masks (no trained-model label F1)",
        )
    elif comparison.get("f1_vs_fp32_at_probe") is not None:
        drop = 1.0 - comparison["f1_vs_fp32_at_probe"]
        basis = (
            f"1 - F1 of int8 masks against fp32 masks at the fp32 95th-percentile probability "
            f"{comparison['probe_threshold']:.3f} (untrained model: no pixel above the threshold)"
        )
    else:
        drop, basis = None, "no cloud pixel at the threshold in either mask: F1 undefined"
    faster = int8_s_per_map is not None and fp32_s_per_map is not None and int8_s_per_map < fp32_s_per_map
    offer = drop is not None and drop <= INT8_MAX_F1_DROP and faster
    return {
        "f1_drop": drop,
        "basis": basis,
        "faster": faster,
        "speedup": (fp32_s_per_map / int8_s_per_map) if int8_s_per_map and fp32_s_per_map else None,
        "offer_in_cm_infer": offer,
        "rule": f"offer only if the F1 drop <= {INT8_MAX_F1_DROP} and int8 is faster than fp32 end to end",
    }


def model_is_trained(path: str | Path) -> bool:
    """True when the model's metadata names its training data (random-weight models leave it
    empty or start it with "none")."""
    from mars_cloudmask.export.onnx_export import read_metadata

    data = read_metadata(path).get("training_data", "").strip()
    return bool(data) and not data.lower().startswith("none")
