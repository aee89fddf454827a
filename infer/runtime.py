"""Loading a cloudmask ONNX model once, and running tiles through it.

The model contract (input uint8 NHWC, output float32, ``metadata_props``) is
:mod:`.contract`'s: :class:`ModelInfo` parses the metadata, with its defaults for missing keys.

Backends (``provider``, see :data:`PROVIDERS`):

* ``cuda``: onnxruntime's CUDA provider.  onnxruntime silently falls back to the CPU when a
  CUDA or cuDNN library is missing, so the providers the session *really* got are read back
  (``session.get_providers()``), and ``provider="cuda"`` fails at once when CUDA is not active.
* ``openvino``: OpenVINO's CPU plugin reading the same ONNX file, compiled once per input
  shape (static shapes: a compile costs about 0.1 s and runs faster than one dynamic-shape
  compile; at most :data:`MAX_COMPILED_SHAPES` kept).  ``precision="bf16"`` runs it in bfloat16.
* ``cpu``: onnxruntime's CPU provider (fp32 only).
* ``auto``: CUDA when this onnxruntime build has it, else OpenVINO when it is installed,
  else onnxruntime's CPU provider.

Precision (see :data:`PRECISIONS`, :func:`resolve_backend`): ``fp32``; ``bf16`` (OpenVINO only,
and only on a CPU with native bf16 arithmetic, the ``avx512_bf16`` or ``amx_bf16`` flag of
``/proc/cpuinfo``: elsewhere it is refused rather than emulated); ``auto``: bf16 where OpenVINO
runs on such a CPU and :data:`AUTO_BF16` holds (the accuracy check of ``models/README.md``),
else fp32.  ``model.provider`` and ``model.precision`` say what really runs (the precision is
read back from the compiled model).

Example::

    from mars_cloudmask.infer.runtime import load_model
    model = load_model("cloudmask.onnx", provider="auto")   # once per run
    print(model.provider, model.precision, model.info.threshold)
    probs = model.run(tiles)        # uint8 (N, 668, 668, C) -> float32 (N, 484, 484); C = model.n_channels
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .contract import ModelError, ModelInfo

__all__ = [
    "CloudModel",
    "ModelError",
    "ModelInfo",
    "ModelOutputError",
    "ProviderError",
    "PROVIDERS",
    "PRECISIONS",
    "load_model",
    "resolve_backend",
    "native_bf16",
    "cpu_flags",
]

PROVIDERS = ("auto", "cuda", "openvino", "cpu")
"""Values of ``provider`` (``cm-infer --provider``)."""
PRECISIONS = ("auto", "fp32", "bf16")
"""Values of ``precision`` (``cm-infer --precision``)."""
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
OPENVINO_CPU = "OpenVINO CPU"
"""``model.providers`` of the OpenVINO backend."""
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""``/proc/cpuinfo`` flags of native bf16 arithmetic (either one is enough)."""
AUTO_BF16 = True
"""Whether ``precision="auto"`` may pick bf16: True since bf16 cost at most 0.003 F1 on P01
days 18-20 with the shipped model (``models/README.md``, ``cm-bench --suite precision``)."""
MAX_COMPILED_SHAPES = 3
"""OpenVINO models compiled for distinct input shapes kept at once (least recently used dropped).

Each keeps its own activation buffers: peak RSS measured with the shipped model in bf16 was
0.26 GB with the probe and one 668 px shape, 0.42 GB with 4 shapes up to 796 px, 0.62 GB
with 4 shapes up to 1052 px.  A seamless run uses one tile shape per map (one per box size),
so 3 holds the probe, the current and the previous shape."""


CUDA_LIBRARIES = {
    "CUDA runtime": ("libcudart.so.12", "libcudart.so.11.0", "libcudart.so"),
    "cuBLAS": ("libcublas.so.12", "libcublas.so.11", "libcublas.so"),
    "cuDNN": ("libcudnn.so.9", "libcudnn.so.8", "libcudnn.so"),
}
"""Shared libraries the CUDA provider needs, by the sonames tried (newest first)."""


OUTPUT_TOLERANCE = 1e-3
"""How far outside [0, 1] a probability may fall by rounding (fp32 / bf16) before the output is refused."""


class ModelOutputError(ModelError):
    """The model returned something that is not a probability (NaN, or outside [0, 1])."""


def check_output(probs: np.ndarray, path: str | Path, tolerance: float = OUTPUT_TOLERANCE) -> np.ndarray:
    """``probs`` if every value is a probability in [0, 1] (``tolerance`` of rounding allowed);
    else :class:`ModelOutputError` naming the model ``path`` (never clipped into a mask)."""
    bad_nan = int(np.count_nonzero(np.isnan(probs)))
    if bad_nan:
        raise ModelOutputError(f"model {path} returned NaN for {bad_nan} of {probs.size} pixels: not a probability")
    lo, hi = (float(probs.min()), float(probs.max())) if probs.size else (0.0, 1.0)
    if lo < -tolerance or hi > 1.0 + tolerance:
        raise ModelOutputError(
            f"model {path} returned values from {lo:g} to {hi:g}, outside the probabilities [0, 1] (no sigmoid?)"
        )
    return probs


class ProviderError(RuntimeError):
    """The requested provider or precision cannot run here; the message says what is missing."""


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


def _ov():
    import openvino

    return openvino


def openvino_installed() -> bool:
    """Whether ``openvino`` can be imported (found without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def _installed(dist: str) -> bool:
    try:
        version(dist)
    except PackageNotFoundError:
        return False
    return True


def ort_available_providers(query: bool = False) -> list[str]:
    """onnxruntime's available providers; [] when it is not installed.

    Unless ``query``, onnxruntime is not imported just to learn that a build without the
    ``onnxruntime-gpu`` distribution has no CUDA provider (it costs start-up time): ``[CPU_EP]``.
    """
    if importlib.util.find_spec("onnxruntime") is None:
        return []
    if not query and not _installed("onnxruntime-gpu"):
        return [CPU_EP]
    return list(_ort().get_available_providers())


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (or of the text ``cpuinfo``); empty elsewhere."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def native_bf16(flags: Iterable[str]) -> bool:
    """Whether a CPU with these flags has native bf16 arithmetic (``avx512_bf16`` or ``amx_bf16``)."""
    return any(f in set(flags) for f in BF16_FLAGS)


def option_problem(provider: str, precision: str, threads: int | None) -> str | None:
    """Why ``--provider`` / ``--precision`` / ``--threads`` cannot be used (one line naming the
    option and the choices), or None (pure: nothing is imported or loaded)."""
    if provider not in PROVIDERS:
        return f"--provider {provider}: use one of {', '.join(PROVIDERS)}"
    if precision not in PRECISIONS:
        return f"--precision {precision}: use one of {', '.join(PRECISIONS)}"
    if threads is not None and threads < 1:
        return f"--threads {threads}: must be a number of threads >= 1 (leave it out to use every core)"
    return None


@dataclass(frozen=True)
class Backend:
    """What :func:`resolve_backend` chose: ``name`` (``cuda``, ``openvino`` or ``cpu``) and
    ``precision`` (``fp32`` or ``bf16``)."""

    name: str
    precision: str


def resolve_backend(
    provider: str,
    precision: str = "auto",
    *,
    ort_providers: Iterable[str] = (CPU_EP,),
    openvino: bool = False,
    flags: Iterable[str] = (),
    auto_bf16: bool = AUTO_BF16,
) -> Backend:
    """The backend and precision for a request, from what is installed (pure function).

    ``ort_providers``: onnxruntime's available providers ([] if not installed); ``openvino``:
    OpenVINO importable; ``flags``: the CPU's ``/proc/cpuinfo`` flags.

    * ``auto``: CUDA if onnxruntime has it (and bf16 not asked), else OpenVINO if installed, else
      onnxruntime CPU.  ``precision="auto"``: bf16 on OpenVINO when the CPU has native bf16 and
      ``auto_bf16``, else fp32.
    * ``precision="bf16"`` needs OpenVINO and a CPU with native bf16: otherwise ProviderError
      (never a silent fp32 run, never a slow emulated one).

    Raises:
        ValueError: unknown provider or precision name.
        ProviderError: the request cannot be met here (the message says why and what to do).
    """
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    ort_providers, flags = list(ort_providers), set(flags)
    if precision == "bf16" and provider in ("cuda", "cpu"):
        raise ProviderError(
            f"--precision bf16 runs only with --provider openvino (or auto), not with onnxruntime's "
            f"{provider} provider; use --precision fp32 or auto"
        )
    name = provider
    if provider == "auto":
        if CUDA_EP in ort_providers and precision != "bf16":
            name = "cuda"
        elif openvino:
            name = "openvino"
        elif precision == "bf16":
            raise ProviderError(
                "--precision bf16 needs OpenVINO, which is not installed: "
                'pip install "mars-cloudmask[cpu]" (or pip install openvino)'
            )
        else:
            name = "cpu"
    if name == "openvino" and not openvino:
        raise ProviderError(
            '--provider openvino: OpenVINO is not installed: pip install "mars-cloudmask[cpu]" '
            "(or pip install openvino)"
        )
    if name in ("cuda", "cpu") and not ort_providers:
        raise ProviderError(
            f'--provider {provider}: onnxruntime is not installed: pip install "mars-cloudmask[cpu]" '
            f"(or [gpu] for CUDA)"
        )
    if name == "cuda" and CUDA_EP not in ort_providers:
        raise ProviderError(
            f"--provider cuda: this onnxruntime build has no CUDA provider (available: "
            f'{", ".join(ort_providers)}); install the GPU build with `pip install "mars-cloudmask[gpu]"` '
            f"(onnxruntime-gpu, never together with onnxruntime)"
        )
    if name != "openvino":
        return Backend(name, "fp32")
    has_bf16 = native_bf16(flags)
    if precision == "bf16" and not has_bf16:
        raise ProviderError(
            f"--precision bf16: this CPU has no native bf16 arithmetic (none of the "
            f"{', '.join(BF16_FLAGS)} flags in /proc/cpuinfo); use --precision fp32 or auto"
        )
    if precision == "bf16" or (precision == "auto" and has_bf16 and auto_bf16):
        return Backend("openvino", "bf16")
    return Backend("openvino", "fp32")


def resolve_providers(provider: str, available: list[str]) -> list[str]:
    """The provider list to ask onnxruntime for (``cuda``, ``cpu`` or ``auto`` meaning onnxruntime).

    Raises:
        ProviderError: ``cuda`` asked but this onnxruntime build has no CUDA provider.
        ValueError: unknown provider name.
    """
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}")
    if provider == "openvino":
        raise ValueError("--provider openvino is not an onnxruntime provider")
    if provider == "cpu":
        return [CPU_EP]
    if CUDA_EP in available:
        return [CUDA_EP, CPU_EP]
    if provider == "cuda":
        resolve_backend("cuda", "fp32", ort_providers=available)  # raises the one-line reason
    return [CPU_EP]


def _cuda_missing_reason() -> str:
    missing = [label for label, so in find_cuda_libraries().items() if so is None]
    if missing:
        return (
            "libraries not found: "
            + ", ".join(missing)
            + " (check LD_LIBRARY_PATH; onnxruntime logs the one it could not load)"
        )
    return "onnxruntime could not start CUDA (no GPU visible, or driver/library version mismatch: see its log above)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


class _OrtSession:
    """onnxruntime behind :class:`CloudModel`: ``providers``, ``provider``, ``meta``, ``run``."""

    def __init__(self, path: Path, provider: str, threads: int | None):
        ort = _ort()
        wanted = resolve_providers(provider, list(ort.get_available_providers()))
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Idle pool threads spin by default; off, they leave the cores to the decode/write
        # threads and to other jobs (measured faster end to end on a busy 2-core machine).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=wanted)
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(f"{path}: not a loadable ONNX model ({_first_line(exc)})") from None
        self.providers = list(self.session.get_providers())
        self.provider = "cuda" if self.providers and self.providers[0] == CUDA_EP else "cpu"
        if provider == "cuda" and self.provider != "cuda":
            raise ProviderError(f"--provider cuda: CUDA is not active in onnxruntime, {_cuda_missing_reason()}")
        self.precision = "fp32"
        self.meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.version = ort.__version__
        self.threads_used = self.session.get_session_options().intra_op_num_threads or None

    def check_io(self, path: Path, channels: int) -> None:
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        if len(ins) != 1:
            raise ModelError(f"{path}: expected 1 input (uint8 NHWC image), found {len(ins)}")
        inp = ins[0]
        if inp.type != "tensor(uint8)":
            raise ModelError(f"{path}: input {inp.name!r} is {inp.type}, expected tensor(uint8) (raw map pixels)")
        if len(inp.shape) != 4 or inp.shape[3] != channels:
            raise ModelError(f"{path}: input {inp.name!r} has shape {inp.shape}, expected (N, H, W, {channels}) NHWC")
        if not outs or len(outs[0].shape) != 4:
            raise ModelError(f"{path}: output 0 must be (N, H, W, 1), found {outs[0].shape if outs else 'none'}")
        self.input_name, self.output_name = inp.name, outs[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]


class _OpenVinoModel:
    """OpenVINO's CPU plugin behind :class:`CloudModel`, one compiled model per input shape."""

    def __init__(self, path: Path, precision: str, threads: int | None):
        ov = _ov()
        self.core = ov.Core()
        try:
            self.model = self.core.read_model(str(path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long messages
            raise ModelError(f"{path}: not a loadable ONNX model ({_first_line(exc)})") from None
        self.config = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            **({"INFERENCE_NUM_THREADS": str(int(threads))} if threads else {}),
        }
        self.path = path
        self.providers = [OPENVINO_CPU]
        self.provider = "openvino"
        self.requested_precision = precision
        self.precision = precision  # replaced by what the first compiled model reports
        self.version = ov.__version__
        self.threads_used: int | None = int(threads) if threads else None
        self.meta = self._metadata()
        self._compiled: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def _metadata(self) -> dict[str, str]:
        rt = self.model.get_rt_info()
        if "framework" not in list(rt.keys()):
            return {}
        fw = rt["framework"]
        return {str(k): fw[k].astype(str) for k in list(fw.keys())}

    def check_io(self, path: Path, channels: int) -> None:
        ins, outs = self.model.inputs, self.model.outputs
        if len(ins) != 1:
            raise ModelError(f"{path}: expected 1 input (uint8 NHWC image), found {len(ins)}")
        inp = ins[0]
        etype = inp.get_element_type().get_type_name()
        if etype != "u8":
            raise ModelError(f"{path}: input {inp.get_any_name()!r} is {etype}, expected u8 (raw map pixels)")
        shape = inp.get_partial_shape()
        if (
            shape.rank.is_dynamic
            or shape.rank.get_length() != 4
            or not shape[3].is_static
            or shape[3].get_length() != channels
        ):
            raise ModelError(
                f"{path}: input {inp.get_any_name()!r} has shape {shape}, expected (N, H, W, {channels}) NHWC"
            )
        if (
            not outs
            or outs[0].get_partial_shape().rank.is_dynamic
            or outs[0].get_partial_shape().rank.get_length() != 4
        ):
            raise ModelError(
                f"{path}: output 0 must be (N, H, W, 1), found {outs[0].get_partial_shape() if outs else 'none'}"
            )

    def _request(self, shape: tuple[int, ...]):
        entry = self._compiled.get(shape)
        if entry is not None:
            self._compiled.move_to_end(shape)
            return entry[1]
        model = self.model.clone()
        model.reshape(list(shape))
        compiled = self.core.compile_model(model, "CPU", self.config)
        self.precision = (
            "bf16" if compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "bf16" else "fp32"
        )
        if self.threads_used is None:
            self.threads_used = int(compiled.get_property("INFERENCE_NUM_THREADS")) or None
        request = compiled.create_infer_request()
        self._compiled[shape] = (compiled, request)
        while len(self._compiled) > MAX_COMPILED_SHAPES:
            self._compiled.popitem(last=False)
        return request

    def run(self, x: np.ndarray) -> np.ndarray:
        with self._lock:  # one infer request per shape: calls from several threads take turns
            request = self._request(tuple(int(v) for v in x.shape))
            request.infer({0: x}, share_inputs=True)
            return request.get_output_tensor(0).data.copy()


class CloudModel:
    """A cloudmask ONNX model on one backend (onnxruntime CUDA / CPU, or OpenVINO), loaded once.

    Attributes:
        path: the model file.  info: its :class:`ModelInfo`.  spec: its input
        :class:`~.channels.ChannelSpec` (``n_channels`` per pixel).  provider: ``"cuda"``,
        ``"openvino"`` or ``"cpu"`` (onnxruntime), what really runs.  precision: ``"fp32"`` or
        ``"bf16"``, what really runs.  providers: the session's provider list (``["OpenVINO CPU"]``
        for OpenVINO).
    """

    def __init__(
        self,
        path: str | Path,
        provider: str = "auto",
        threads: int | None = None,
        precision: str = "auto",
    ):
        self.path = Path(path)
        if threads is not None and threads < 1:
            raise ValueError(f"threads={threads}: must be >= 1 (None: every core)")
        backend = resolve_backend(
            provider,
            precision,
            ort_providers=ort_available_providers(query=provider == "cuda"),
            openvino=openvino_installed(),
            flags=cpu_flags(),
        )
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        self.backend: _OrtSession | _OpenVinoModel
        if backend.name == "openvino":
            self.backend = _OpenVinoModel(self.path, backend.precision, threads)
        else:
            # "auto" lets onnxruntime fall back to its CPU provider when CUDA does not start
            ort_provider = provider if backend.name == "cuda" else "cpu"
            self.backend = _OrtSession(self.path, ort_provider, threads)
        self.requested_provider = provider
        self.requested_precision = precision
        self.threads = threads
        self.info = ModelInfo.from_metadata(self.backend.meta, self.path)
        self.spec = self.info.channel_spec(self.path)
        self.backend.check_io(self.path, self.spec.n_channels)
        self._probe()

    @property
    def n_channels(self) -> int:
        """Input channels per pixel: 3 (RGB) + the extras of :attr:`spec`."""
        return self.spec.n_channels

    @property
    def provider(self) -> str:
        return self.backend.provider

    @property
    def providers(self) -> list[str]:
        return list(self.backend.providers)

    @property
    def precision(self) -> str:
        return self.backend.precision

    @property
    def session(self):
        """The onnxruntime session (None on OpenVINO)."""
        return getattr(self.backend, "session", None)

    def _probe(self) -> None:
        n = 2 * self.info.margin + 4  # smallest input whose output is 4 px: a cheap probe
        try:
            y = self.backend.run(np.zeros((1, n, n, self.n_channels), np.uint8))
        except Exception as exc:
            raise ModelError(
                f"{self.path}: a {n} x {n} input fails ({_first_line(exc)}); dynamic H, W required"
            ) from None
        if y.shape != (1, 4, 4, 1) or y.dtype != np.float32:
            raise ModelError(
                f"{self.path}: a {n} x {n} input gave {y.dtype} {tuple(y.shape)}, expected float32 (1, 4, 4, 1) "
                f"(output = input - 2 * margin {self.info.margin})"
            )

    def run(self, tiles: np.ndarray) -> np.ndarray:
        """Probabilities for a batch of tiles: uint8 ``(N, H, W, C)`` -> float32 ``(N, H-2m, W-2m)``,
        ``C`` = :attr:`n_channels` (3 for an RGB model; the per-map input of
        :func:`.channels.model_input` otherwise).  ValueError for another channel count."""
        if tiles.ndim != 4 or tiles.shape[-1] != self.n_channels:
            raise ValueError(
                f"{self.path}: tiles of shape {tuple(tiles.shape)}, the model takes (N, H, W, {self.n_channels}) "
                f"({self.spec.text})"
            )
        return check_output(self.backend.run(np.ascontiguousarray(tiles))[..., 0], self.path)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the model file (computed once)."""
        if getattr(self, "_sha256", None) is None:
            self._sha256 = file_sha256(self.path)
        return self._sha256

    def describe(self) -> dict[str, Any]:
        """Model file, hash, metadata, backend and precision, for run records."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "name": self.info.name,
            "version": self.info.version,
            "metadata": self.info.metadata,
            "provider": self.provider,
            "precision": self.precision,
            "requested": {"provider": self.requested_provider, "precision": self.requested_precision},
            "session_providers": self.providers,
            "backend_version": f"{'openvino' if self.provider == 'openvino' else 'onnxruntime'} {self.backend.version}",
            "threads": self.threads,
            "intra_op_spinning": False,  # onnxruntime's idle threads never spin (:class:`_OrtSession`)
        }


def load_model(
    path: str | Path | None = None,
    provider: str = "auto",
    threads: int | None = None,
    precision: str = "auto",
) -> CloudModel:
    """Load a cloudmask ONNX model once (``path=None``: the shipped default model).

    ``provider``: one of :data:`PROVIDERS`; ``precision``: one of :data:`PRECISIONS` (see the
    module docstring).  ``threads``: intra-op threads (None: one per core); onnxruntime's idle
    pool threads never spin (see :class:`_OrtSession`).

    Raises:
        ModelError: missing file, not ONNX, or not the cloudmask contract (message names the file).
        ProviderError: the provider or precision asked for cannot run here.
        ValueError: unknown provider or precision name.
    """
    if path is None:
        path = default_model_path()
        if not Path(path).is_file():
            raise ModelError(missing_default_model_message(Path(path)))
    return CloudModel(path, provider=provider, threads=threads, precision=precision)


def thread_settings() -> dict[str, Any]:
    """CPU count and the thread-related environment variables that change onnxruntime / Numba."""
    env = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    affinity: int | None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count()
    return {"cpu_count": os.cpu_count(), "usable_cpus": affinity, **{k: os.environ.get(k) for k in env}}
