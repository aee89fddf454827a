"""Loading a cloudmask ONNX model once, and running tiles through it.

The model contract (between ``export`` and ``infer``): input 0 uint8 NHWC ``(N, H, W, 3)``
with dynamic N, H, W; output 0 float32 ``(N, H - 2*margin, W - 2*margin, 1)``;
``metadata_props`` carry name, version, threshold, tile sizes...  Missing metadata keys take
the defaults of domain.md.

Provider choice: onnxruntime silently falls back to the CPU when a CUDA or cuDNN library is
missing, so the providers the session *really* got are read back after creating it
(``session.get_providers()``), and ``provider="cuda"`` fails at once when CUDA is not active.

Example::

    from mars_cloudmask.infer.runtime import load_model
    model = load_model("cloudmask.onnx", provider="auto")   # once per run
    print(model.provider, model.info.threshold)
    probs = model.run(tiles)        # uint8 (N, 668, 668, 3) -> float32 (N, 484, 484)
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .geometry import ALIGN, DEFAULT_POLAR_OFFSET, DEFAULT_THRESHOLD, MARGIN, TILE_IN, TILE_OUT

PROVIDERS = ("auto", "cuda", "cpu")
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"


CUDA_LIBRARIES = {
    "CUDA runtime": ("libcudart.so.12", "libcudart.so.11.0", "libcudart.so"),
    "cuBLAS": ("libcublas.so.12", "libcublas.so.11", "libcublas.so"),
    "cuDNN": ("libcudnn.so.9", "libcudnn.so.8", "libcudnn.so"),
}
"""Shared libraries the CUDA provider needs, by the sonames tried (newest first)."""


class ModelError(RuntimeError):
    """The model file cannot be used; the one-line message names the file and the reason."""


class ProviderError(RuntimeError):
    """The requested execution provider is not active; the message says what is missing."""


@dataclass(frozen=True)
class ModelInfo:
    """What the model's ``metadata_props`` say (with domain.md defaults for missing keys)."""

    name: str
    version: str
    threshold: float
    tile_in: int
    tile_out: int
    margin: int
    align: int
    polar_offset: float = DEFAULT_POLAR_OFFSET
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, meta: dict[str, str], path: Path) -> "ModelInfo":
        """Parse metadata_props; raises ModelError naming ``path`` on unparsable numbers."""
        try:
            margin = int(meta.get("margin", MARGIN))
            tile_in = int(meta.get("tile_in", TILE_IN))
            tile_out = int(meta.get("tile_out", tile_in - 2 * margin if "tile_in" in meta else TILE_OUT))
            return cls(
                name=meta.get("name", path.stem),
                version=meta.get("version", "unknown"),
                threshold=float(meta.get("threshold", DEFAULT_THRESHOLD)),
                tile_in=tile_in,
                tile_out=tile_out,
                margin=margin,
                align=int(meta.get("align", ALIGN)),
                polar_offset=float(meta.get("polar_offset", DEFAULT_POLAR_OFFSET)),
                metadata=dict(meta),
            )
        except ValueError as exc:
            raise ModelError(f"{path}: bad metadata value ({exc})") from None


def default_model_path() -> Path:
    """The model shipped in ``mars_cloudmask.models`` (it may not exist yet)."""
    from mars_cloudmask.models import default_model_path as shipped

    return shipped()


def missing_default_model_message(path: Path) -> str:
    """The one-line message for a run without ``--model`` while no model ships."""
    return (
        f"{path}: no model shipped yet: train one with `cm-train` and export it with "
        f"`cm-export`, then pass it with --model FILE.onnx (or copy it to that path)"
    )


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (recorded in run records to identify the model)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def find_cuda_libraries() -> dict[str, str | None]:
    """``{library: soname loaded | None}`` for the CUDA runtime, cuBLAS and cuDNN (via ctypes)."""
    found: dict[str, str | None] = {}
    for label, names in CUDA_LIBRARIES.items():
        found[label] = None
        for soname in names:
            try:
                ctypes.CDLL(soname)
            except OSError:
                continue
            found[label] = soname
            break
    return found


def _ort():
    import onnxruntime

    return onnxruntime


def resolve_providers(provider: str, available: list[str]) -> list[str]:
    """The provider list to ask onnxruntime for.

    Raises:
        ProviderError: ``cuda`` asked but this onnxruntime build has no CUDA provider.
        ValueError: unknown provider name.
    """
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}")
    if provider == "cpu":
        return [CPU_EP]
    if CUDA_EP in available:
        return [CUDA_EP, CPU_EP]
    if provider == "cuda":
        raise ProviderError(
            f"--provider cuda: this onnxruntime build has no CUDA provider (available: "
            f"{', '.join(available)}); install the GPU build with `pip install \"mars-cloudmask[gpu]\"` "
            f"(onnxruntime-gpu, never together with onnxruntime)"
        )
    return [CPU_EP]


def _cuda_missing_reason() -> str:
    missing = [label for label, so in find_cuda_libraries().items() if so is None]
    if missing:
        return "libraries not found: " + ", ".join(missing) + " (check LD_LIBRARY_PATH; onnxruntime logs the one it could not load)"
    return "onnxruntime could not start CUDA (no GPU visible, or driver/library version mismatch: see its log above)"


class CloudModel:
    """One onnxruntime session over a cloudmask ONNX file, created once per run.

    Attributes:
        path: the model file.  info: its :class:`ModelInfo`.  provider: ``"cuda"`` or ``"cpu"``,
        what the session really runs on.  providers: the session's provider list.
    """

    def __init__(self, path: str | Path, provider: str = "auto", threads: int | None = None, spinning: bool = False):
        ort = _ort()
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        available = list(ort.get_available_providers())
        wanted = resolve_providers(provider, available)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Idle pool threads spin by default; off, they leave the cores to the decode/write
        # threads and to other jobs (measured faster end to end on a busy 2-core machine).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.spinning = spinning
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=wanted)
        except Exception as exc:  # onnxruntime raises several private exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: not a loadable ONNX model ({first[:200]})") from None
        self.providers = list(self.session.get_providers())
        self.provider = "cuda" if self.providers and self.providers[0] == CUDA_EP else "cpu"
        if provider == "cuda" and self.provider != "cuda":
            raise ProviderError(f"--provider cuda: CUDA is not active in onnxruntime, {_cuda_missing_reason()}")
        self.requested_provider = provider
        self.threads = threads
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.info = ModelInfo.from_metadata(meta, self.path)
        self._check_contract()

    def _check_contract(self) -> None:
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        if len(ins) != 1:
            raise ModelError(f"{self.path}: expected 1 input (uint8 NHWC image), found {len(ins)}")
        inp = ins[0]
        if inp.type != "tensor(uint8)":
            raise ModelError(f"{self.path}: input {inp.name!r} is {inp.type}, expected tensor(uint8) (raw map pixels)")
        if len(inp.shape) != 4 or inp.shape[3] != 3:
            raise ModelError(f"{self.path}: input {inp.name!r} has shape {inp.shape}, expected (N, H, W, 3) NHWC")
        if not outs or len(outs[0].shape) != 4:
            raise ModelError(f"{self.path}: output 0 must be (N, H, W, 1), found {outs[0].shape if outs else 'none'}")
        self.input_name = inp.name
        self.output_name = outs[0].name
        n = 2 * self.info.margin + 4  # smallest input whose output is 4 px: a cheap probe
        try:
            y = self.session.run([self.output_name], {self.input_name: np.zeros((1, n, n, 3), np.uint8)})[0]
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise ModelError(f"{self.path}: a {n} x {n} input fails ({first}); dynamic H, W required") from None
        if y.shape != (1, 4, 4, 1) or y.dtype != np.float32:
            raise ModelError(
                f"{self.path}: a {n} x {n} input gave {y.dtype} {tuple(y.shape)}, expected float32 (1, 4, 4, 1) "
                f"(output = input - 2 * margin {self.info.margin})"
            )

    def run(self, tiles: np.ndarray) -> np.ndarray:
        """Probabilities for a batch of tiles: uint8 ``(N, H, W, 3)`` -> float32 ``(N, H-2m, W-2m)``."""
        y = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(tiles)})[0]
        return y[..., 0]

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the model file (computed once)."""
        if getattr(self, "_sha256", None) is None:
            self._sha256 = file_sha256(self.path)
        return self._sha256

    def describe(self) -> dict[str, Any]:
        """Model file, hash, metadata and session providers, for run records."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "name": self.info.name,
            "version": self.info.version,
            "metadata": self.info.metadata,
            "provider": self.provider,
            "session_providers": self.providers,
            "threads": self.threads,
            "intra_op_spinning": self.spinning,
        }


def load_model(
    path: str | Path | None = None, provider: str = "auto", threads: int | None = None, spinning: bool = False
) -> CloudModel:
    """Load a cloudmask ONNX model once (``path=None``: the shipped default model).

    ``threads``: onnxruntime intra-op threads (None: one per core); ``spinning``: let idle
    pool threads spin (onnxruntime's default; off here, see :class:`CloudModel`).

    Raises:
        ModelError: missing file, not ONNX, or not the cloudmask contract (message names the file).
        ProviderError: ``provider="cuda"`` and CUDA is not active.
    """
    if path is None:
        path = default_model_path()
        if not Path(path).is_file():
            raise ModelError(missing_default_model_message(Path(path)))
    return CloudModel(path, provider=provider, threads=threads, spinning=spinning)


def thread_settings() -> dict[str, Any]:
    """CPU count and the thread-related environment variables that change onnxruntime / Numba."""
    env = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count()
    return {"cpu_count": os.cpu_count(), "usable_cpus": affinity, **{k: os.environ.get(k) for k in env}}
