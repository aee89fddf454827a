"""Model loading and providers (infer/runtime.py) and ``--doctor`` facts (infer/doctor.py)."""

from __future__ import annotations

import hashlib

import numpy as np
import onnxruntime as ort
import pytest

from mars_cloudmask.infer import runtime
from mars_cloudmask.infer.doctor import doctor_info, format_doctor, versions
from mars_cloudmask.infer.runtime import CPU_EP, CUDA_EP, ModelError, ProviderError, load_model, resolve_providers
from tests.tiny_model import make_tiny_unet_onnx

HAS_CUDA = CUDA_EP in ort.get_available_providers()


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_load_model_reads_metadata_and_runs_tiles(tiny_model):
    model = load_model(tiny_model, provider="cpu")
    assert model.provider == "cpu" and model.providers[0] == CPU_EP
    assert model.info.name == "tiny-random-unet" and model.info.threshold == 0.5
    assert (model.info.tile_in, model.info.tile_out, model.info.margin, model.info.align) == (668, 484, 92, 16)
    y = model.run(np.zeros((2, 668, 684, 3), np.uint8))
    assert y.shape == (2, 484, 500) and y.dtype == np.float32
    assert model.sha256 == hashlib.sha256(tiny_model.read_bytes()).hexdigest()
    assert model.describe()["metadata"]["width"] == "2"


def test_missing_metadata_takes_the_domain_defaults(tmp_path):
    keys = ("name", "version", "threshold", "tile_in", "tile_out", "margin", "align")
    path = make_tiny_unet_onnx(tmp_path / "bare.onnx", metadata={k: None for k in keys})
    info = load_model(path, provider="cpu").info
    assert info.threshold == 0.912 and info.name == "bare" and info.version == "unknown"
    assert (info.tile_in, info.tile_out, info.margin, info.align) == (668, 484, 92, 16)


def test_bad_metadata_number_names_the_file(tmp_path):
    path = make_tiny_unet_onnx(tmp_path / "badmeta.onnx", metadata={"threshold": "high"})
    with pytest.raises(ModelError) as exc:
        load_model(path, provider="cpu")
    assert str(path) in one_line(exc) and "metadata" in str(exc.value)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError) as exc:
        load_model(tmp_path / "nope.onnx", provider="cpu")
    assert one_line(exc) == f"{tmp_path / 'nope.onnx'}: model file not found"


def test_a_file_that_is_not_onnx(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_text("this is not a protobuf")
    with pytest.raises(ModelError) as exc:
        load_model(bad, provider="cpu")
    assert one_line(exc).startswith(f"{bad}: not a loadable ONNX model")


def _graph_model(path, inp_type, out_shape_fn):
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT)]
    nodes += out_shape_fn()
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", inp_type, ["N", "H", "W", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_float_input_model_is_refused(tmp_path):
    from onnx import TensorProto, helper

    path = _graph_model(tmp_path / "f.onnx", TensorProto.FLOAT, lambda: [helper.make_node("Identity", ["xf"], ["y"])])
    with pytest.raises(ModelError) as exc:
        load_model(path, provider="cpu")
    assert str(path) in one_line(exc) and "tensor(float)" in str(exc.value) and "uint8" in str(exc.value)


def test_a_model_without_the_valid_padding_rule_is_refused(tmp_path):
    from onnx import TensorProto, helper

    # uint8 NHWC in, same-size output: not "output = input - 184"
    path = _graph_model(
        tmp_path / "same.onnx", TensorProto.UINT8, lambda: [helper.make_node("Identity", ["xf"], ["y"])]
    )
    with pytest.raises(ModelError) as exc:
        load_model(path, provider="cpu")
    assert str(path) in one_line(exc) and "expected float32 (1, 4, 4, 1)" in str(exc.value)


def test_default_model_missing_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "default_model_path", lambda: tmp_path / "cloudmask-unet.onnx")
    with pytest.raises(ModelError) as exc:
        load_model(None)
    msg = one_line(exc)
    assert "cm-train" in msg and "cm-export" in msg and "--model" in msg


def test_resolve_providers_rules():
    both = [CUDA_EP, CPU_EP]
    assert resolve_providers("auto", both) == [CUDA_EP, CPU_EP]
    assert resolve_providers("cuda", both) == [CUDA_EP, CPU_EP]
    assert resolve_providers("cpu", both) == [CPU_EP]
    assert resolve_providers("auto", [CPU_EP]) == [CPU_EP]
    with pytest.raises(ProviderError, match="onnxruntime-gpu"):
        resolve_providers("cuda", [CPU_EP])
    with pytest.raises(ValueError, match="unknown provider"):
        resolve_providers("tpu", [CPU_EP])


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has CUDA")
def test_cuda_on_a_machine_without_cuda_fails_at_once(tiny_model):
    with pytest.raises(ProviderError) as exc:
        load_model(tiny_model, provider="cuda")
    assert "no CUDA provider" in one_line(exc) and "mars-cloudmask[gpu]" in str(exc.value)


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has CUDA")
def test_auto_picks_openvino_when_installed_else_onnxruntime_cpu(tiny_model, monkeypatch):
    if runtime.openvino_installed():
        model = load_model(tiny_model, provider="auto", precision="fp32")
        assert model.provider == "openvino" and model.providers == [runtime.OPENVINO_CPU]
    monkeypatch.setattr(runtime, "openvino_installed", lambda: False)
    model = load_model(tiny_model, provider="auto")
    assert model.provider == "cpu" and model.providers == [CPU_EP] and model.precision == "fp32"


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has CUDA")
@pytest.mark.filterwarnings("ignore:Specified provider")
def test_silent_cpu_fallback_is_caught(tiny_model, monkeypatch):
    """onnxruntime-gpu without its CUDA libraries lists CUDA as available but runs on the CPU."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA_EP, CPU_EP])
    with pytest.raises(ProviderError) as exc:
        load_model(tiny_model, provider="cuda")
    assert "CUDA is not active" in one_line(exc)
    monkeypatch.setattr(runtime, "ort_available_providers", lambda query=False: [CUDA_EP, CPU_EP])
    model = load_model(tiny_model, provider="auto")  # auto accepts the CPU and says so
    assert model.provider == "cpu"


def test_threads_option_reaches_the_session(tiny_model):
    model = load_model(tiny_model, provider="cpu", threads=1)
    assert model.session.get_session_options().intra_op_num_threads == 1


def test_doctor_reports_versions_providers_and_model(tiny_model):
    info = doctor_info(tiny_model, provider="cpu")
    assert info["versions"]["onnxruntime"] == ort.__version__
    assert CPU_EP in info["available_providers"]
    assert set(info["cuda_libraries"]) == {"CUDA runtime", "cuBLAS", "cuDNN"}
    assert info["model"]["active_providers"] == [CPU_EP]
    text = format_doctor(info)
    assert "available providers:" in text and "active providers: CPUExecutionProvider" in text
    assert f"numba: {versions()['numba']}" in text


@pytest.mark.skipif(not runtime.openvino_installed(), reason="openvino not installed")
def test_doctor_shows_the_openvino_version_device_and_precision(tiny_model):
    import openvino

    info = doctor_info(tiny_model, provider="openvino", precision="fp32")
    assert info["openvino"]["version"] == openvino.__version__ and "CPU" in info["openvino"]["devices"]
    assert (info["model"]["provider"], info["model"]["precision"]) == ("openvino", "fp32")
    text = format_doctor(info)
    assert f"openvino: {openvino.__version__}, devices " in text and "CPU" in text
    assert "active providers: OpenVINO CPU (running on OPENVINO, precision fp32)" in text


def test_doctor_reports_a_bad_model_instead_of_raising(tmp_path):
    info = doctor_info(tmp_path / "missing.onnx")
    assert "model file not found" in info["model"]["error"]
    assert "model error:" in format_doctor(info)


def test_thread_spinning_is_always_off(tiny_model):
    """Issue 33 item 7: the unused ``spinning`` knob is gone; idle threads never spin."""
    entry = "session.intra_op.allow_spinning"
    off = load_model(tiny_model, provider="cpu")
    assert off.session.get_session_options().get_session_config_entry(entry) == "0"
    assert off.describe()["intra_op_spinning"] is False
    with pytest.raises(TypeError):
        load_model(tiny_model, provider="cpu", spinning=True)  # type: ignore[call-arg]


# --------------------------------------------------------------------------- backend resolution
BF16 = {"avx512f", "avx512_bf16"}
NO_BF16 = {"avx2", "avx512f"}


def test_auto_resolution_prefers_cuda_then_openvino_then_onnxruntime_cpu():
    resolve = runtime.resolve_backend
    assert resolve("auto", ort_providers=[CUDA_EP, CPU_EP], openvino=True, flags=BF16) == runtime.Backend(
        "cuda", "fp32"
    )
    assert resolve("auto", ort_providers=[CPU_EP], openvino=True, flags=BF16) == runtime.Backend("openvino", "bf16")
    assert resolve("auto", ort_providers=[CPU_EP], openvino=True, flags=NO_BF16) == runtime.Backend("openvino", "fp32")
    assert resolve("auto", ort_providers=[CPU_EP], openvino=False, flags=BF16) == runtime.Backend("cpu", "fp32")
    assert resolve("auto", "bf16", ort_providers=[CUDA_EP, CPU_EP], openvino=True, flags=BF16).name == "openvino"
    assert resolve("openvino", "fp32", openvino=True, flags=BF16) == runtime.Backend("openvino", "fp32")
    assert resolve("cpu", "fp32", openvino=True, flags=BF16) == runtime.Backend("cpu", "fp32")
    # the accuracy switch: auto precision stays fp32 when bf16 was found too costly
    assert resolve("auto", openvino=True, flags=BF16, auto_bf16=False).precision == "fp32"


def test_bf16_is_refused_where_it_cannot_run_natively():
    resolve = runtime.resolve_backend
    for provider in ("cpu", "cuda"):
        with pytest.raises(ProviderError, match="only with --provider openvino"):
            resolve(provider, "bf16", ort_providers=[CUDA_EP, CPU_EP], openvino=True, flags=BF16)
    with pytest.raises(ProviderError, match="no native bf16") as exc:  # faked flags of an older CPU
        resolve("openvino", "bf16", openvino=True, flags=NO_BF16)
    assert one_line(exc)
    with pytest.raises(ProviderError, match="OpenVINO is not installed"):
        resolve("openvino", "fp32", openvino=False)
    with pytest.raises(ProviderError, match="needs OpenVINO"):
        resolve("auto", "bf16", openvino=False, flags=BF16)
    with pytest.raises(ValueError, match="unknown precision"):
        resolve("auto", "fp16")


def test_cpu_flags_and_native_bf16_from_cpuinfo_text():
    text = "processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n\nprocessor\t: 1\n"
    assert {"avx512_bf16", "amx_tile"} <= runtime.cpu_flags(text)
    assert runtime.native_bf16(runtime.cpu_flags(text))
    assert runtime.native_bf16({"amx_bf16"}) and not runtime.native_bf16(NO_BF16)
    assert runtime.cpu_flags("no flags here") == frozenset()


def test_the_cli_can_validate_against_the_tuples():
    assert runtime.PROVIDERS == ("auto", "cuda", "openvino", "cpu")
    assert runtime.PRECISIONS == ("auto", "fp32", "bf16")


def test_bf16_on_a_cpu_without_bf16_flags_fails_in_load_model(tiny_model, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda cpuinfo=None: frozenset(NO_BF16))
    with pytest.raises(ProviderError, match="no native bf16"):
        load_model(tiny_model, provider="openvino", precision="bf16")
    with pytest.raises(ProviderError, match="only with --provider openvino"):
        load_model(tiny_model, provider="cpu", precision="bf16")
    if runtime.openvino_installed():  # auto on that CPU: fp32
        assert load_model(tiny_model, provider="openvino").precision == "fp32"


# --------------------------------------------------------------------------- OpenVINO backend
needs_openvino = pytest.mark.skipif(not runtime.openvino_installed(), reason="openvino not installed")


@needs_openvino
def test_openvino_fp32_equals_onnxruntime_on_several_tile_sizes(tiny_model):
    ort_model = load_model(tiny_model, provider="cpu")
    ov_model = load_model(tiny_model, provider="openvino", precision="fp32", threads=1)
    assert (ov_model.provider, ov_model.precision, ov_model.session) == ("openvino", "fp32", None)
    assert ov_model.info == ort_model.info
    rng = np.random.default_rng(3)
    for shape in [(1, 668, 668, 3), (2, 204, 236, 3), (1, 668, 668, 3)]:  # a shape seen again
        tiles = rng.integers(0, 256, shape, dtype=np.uint8)
        got, want = ov_model.run(tiles), ort_model.run(tiles)
        assert got.shape == want.shape == (shape[0], shape[1] - 184, shape[2] - 184)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    d = ov_model.describe()
    assert d["provider"] == "openvino" and d["precision"] == "fp32" and d["backend_version"].startswith("openvino ")


@needs_openvino
def test_openvino_keeps_a_bounded_cache_of_compiled_shapes(tiny_model, monkeypatch):
    monkeypatch.setattr(runtime, "MAX_COMPILED_SHAPES", 2)
    model = load_model(tiny_model, provider="openvino", precision="fp32", threads=1)
    for w in (188, 204, 220, 188):
        model.run(np.zeros((1, 188, w, 3), np.uint8))
    assert list(model.backend._compiled) == [(1, 188, 220, 3), (1, 188, 188, 3)]


@needs_openvino
@pytest.mark.skipif(not runtime.native_bf16(runtime.cpu_flags()), reason="this CPU has no native bf16")
def test_openvino_bf16_runs_in_bf16_and_stays_close(tiny_model):
    tiles = np.random.default_rng(4).integers(0, 256, (1, 252, 252, 3), dtype=np.uint8)
    model = load_model(tiny_model, provider="openvino", precision="bf16", threads=1)
    assert model.precision == "bf16"
    diff = np.abs(model.run(tiles) - load_model(tiny_model, provider="cpu").run(tiles))
    assert 0 < diff.max() < 0.1  # bf16 keeps ~3 significant digits: different, but close


@needs_openvino
def test_openvino_reports_a_file_that_is_not_onnx(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_text("this is not a protobuf")
    with pytest.raises(ModelError) as exc:
        load_model(bad, provider="openvino")
    assert one_line(exc).startswith(f"{bad}: not a loadable ONNX model")


@pytest.mark.parametrize("provider", ["cpu", pytest.param("openvino", marks=needs_openvino)])
def test_a_model_wanting_channels_the_runtime_cannot_provide_is_refused(tmp_path, provider):
    path = make_tiny_unet_onnx(tmp_path / "rgbd.onnx", metadata={"input_channels": "rgb+dust"})
    with pytest.raises(ModelError) as exc:
        load_model(path, provider=provider, precision="fp32")
    assert one_line(exc).startswith(f"{path}: the model wants input channels 'rgb+dust'")


def test_the_shipped_version_2_model_keeps_loading_and_reads_as_rgb():
    path = runtime.default_model_path()
    if not path.is_file():
        pytest.skip(f"no model shipped at {path}")
    info = load_model(path, provider="cpu").info
    assert (info.version, info.input_channels, info.polar_offset) == ("2", "rgb", -3.0)
    if runtime.openvino_installed():
        assert load_model(path, provider="openvino", precision="fp32").info == info


def test_metadata_threshold_47_is_refused_at_load(tmp_path):
    """Issue 32 item 6: a model whose threshold is 47 would give all-clear binary masks."""
    path = make_tiny_unet_onnx(tmp_path / "t47.onnx", metadata={"threshold": "47"})
    with pytest.raises(ModelError) as exc:
        load_model(path, provider="cpu")
    assert one_line(exc).startswith(f"{path}: bad model metadata: threshold 47.0")


def _with_output_op(path, out_path, op: str, value: float):
    """Copy the ONNX model at ``path`` with ``output = op(output, value)`` appended."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    final = graph.output[0].name
    for node in graph.node:
        node.output[:] = [f"{final}_raw" if o == final else o for o in node.output]
    graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), "cm_test_const"))
    graph.node.append(helper.make_node(op, [f"{final}_raw", "cm_test_const"], [final]))
    onnx.save(model, str(out_path))
    return out_path


@pytest.mark.parametrize("op, value, said", [("Add", float("nan"), "NaN"), ("Mul", 3.0, "outside the probabilities")])
def test_an_output_that_is_not_a_probability_is_refused_not_clipped(tiny_model, tmp_path, op, value, said):
    """Issue 32 item 6: NaN or values beyond [0, 1] fail (naming the model) instead of becoming a mask."""
    path = _with_output_op(tiny_model, tmp_path / "bad.onnx", op, value)
    model = load_model(path, provider="cpu")
    with pytest.raises(runtime.ModelOutputError) as exc:
        model.run(np.full((1, 668, 668, 3), 200, np.uint8))
    assert str(path) in one_line(exc) and said in str(exc.value)


def test_check_output_allows_rounding_only():
    ok = np.array([0.0, 1.0 + 1e-6, -1e-7], np.float32)
    assert runtime.check_output(ok, "m.onnx") is ok
    with pytest.raises(runtime.ModelOutputError, match="from -0.5 to 1"):
        runtime.check_output(np.array([-0.5, 1.0], np.float32), "m.onnx")


def test_runtime_options_are_checked_before_any_model(tiny_model):
    """Issue 32 item 15: one line naming the option and its choices (not a traceback, not the model)."""
    assert runtime.option_problem("auto", "auto", None) is None and runtime.option_problem("cpu", "fp32", 2) is None
    assert runtime.option_problem("foo", "auto", None) == "--provider foo: use one of auto, cuda, openvino, cpu"
    assert runtime.option_problem("cpu", "foo", None) == "--precision foo: use one of auto, fp32, bf16"
    assert runtime.option_problem("cpu", "fp32", -3).startswith("--threads -3: must be a number of threads >= 1")
    with pytest.raises(ValueError, match="threads=-3: must be >= 1"):
        load_model(tiny_model, provider="openvino", threads=-3)
