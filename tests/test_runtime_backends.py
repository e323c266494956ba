"""Opening model files: backend choice, refusals of wrong files, the TensorRT sidecar check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.errors import one_line_message
from support.toy_onnx import toy_parsing_onnx

from dmlcsr.core.metadata import ModelMetadata
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.backends import open_backend
from dmlcsr.runtime.backends.tensorrt_backend import (
    TensorRTBackend,
    check_engine_compatible,
    normalise_compute_capability,
    read_sidecar,
    sidecar_path,
)

pytest.importorskip("onnx")

BUILD = {"version": "10.3.0", "gpu_name": "NVIDIA A10", "compute_capability": "8.6", "precision": "fp16",
         "io": [{"name": "input", "mode": "input", "shape": [-1, 3, 473, 473], "dtype": "float32"},
                {"name": "logits", "mode": "output", "shape": [-1, 19, 119, 119], "dtype": "float32"}],
         "profile": {"min": [1, 3, 473, 473], "opt": [4, 3, 473, 473], "max": [8, 3, 473, 473]},
         "workspace_mib": 4096}


def _engine_with_sidecar(folder: Path, build: dict | None = BUILD, name: str = "model.engine",
                         sidecar_name: str | None = None) -> Path:
    engine = folder / name
    engine.write_bytes(b"\x00" * 64)  # never deserialised by these tests
    if build is not None:
        meta = ModelMetadata(19, [f"c{i}" for i in range(19)], precision="fp16", extra={"tensorrt": build})
        (folder / (sidecar_name or name + ".json")).write_text(meta.to_json())
    return engine



def test_onnx_files_open_with_onnxruntime_and_report_their_batch_limits(toy, tmp_path):
    backend = open_backend(toy, device="cpu")
    assert backend.name.startswith("onnxruntime[") and backend.metadata.num_classes == 19
    assert backend.batch_limits == (1, None)
    out = backend.run_single(np.zeros((3, 3, 97, 97), np.float32))
    assert out.shape == (3, 19, 25, 25)
    fixed = open_backend(toy_parsing_onnx(tmp_path / "fixed.onnx", batch=2), device="cpu")
    assert fixed.batch_limits == (2, 2)


def test_wrong_model_files_get_one_line_errors(toy, tmp_path):
    with pytest.raises(DmlcsrError, match="model file not found"):
        open_backend(tmp_path / "missing.onnx")
    (tmp_path / "best.pth").write_bytes(b"torch zip")
    with pytest.raises(DmlcsrError, match="unknown model type '.pth'.*dmlcsr-export") as exc:
        open_backend(tmp_path / "best.pth")
    one_line_message(exc)
    with pytest.raises(DmlcsrError, match="not a file"):
        open_backend(tmp_path)
    with pytest.raises(DmlcsrError, match="unknown device"):
        open_backend(toy, device="gpu0")
    data = toy.read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(data[:len(data) // 2])
    (tmp_path / "text.onnx").write_text("this is not a model")
    for name in ("truncated.onnx", "text.onnx"):
        with pytest.raises(DmlcsrError, match="not a loadable ONNX model.*dmlcsr-export") as exc:
            open_backend(tmp_path / name)
        one_line_message(exc)


def test_onnxruntime_run_errors_are_one_line(toy):
    backend = open_backend(toy, device="cpu")
    with pytest.raises(DmlcsrError, match="onnxruntime failed to run toy.onnx") as exc:
        backend.run_single(np.zeros((1, 3, 50, 50), np.float32))
    one_line_message(exc)


def test_sidecar_accepts_the_engine_it_was_built_for(tmp_path):
    engine = _engine_with_sidecar(tmp_path)
    meta = check_engine_compatible(engine, "10.3.0", (8, 6), "NVIDIA A10")
    assert meta.num_classes == 19 and meta.precision == "fp16"
    assert check_engine_compatible(engine, "10.3.0.26", "sm_86").num_classes == 19  # build number ignored


@pytest.mark.parametrize("version,capability,what", [("10.4.0", "8.6", "TensorRT 10.4.0"),
                                                     ("8.6.1", "8.6", "TensorRT 8.6.1"),
                                                     ("10.3.0", "8.9", "on 8.9"),
                                                     ("10.3.0", "9.0", "on 9.0")])
def test_sidecar_refuses_another_tensorrt_or_gpu_before_deserialising(tmp_path, version, capability, what):
    engine = _engine_with_sidecar(tmp_path)
    with pytest.raises(DmlcsrError, match="rebuild the engine on this GPU with dmlcsr-export") as exc:
        check_engine_compatible(engine, version, capability, "NVIDIA H100")
    message = one_line_message(exc)
    assert what in message and "TensorRT 10.3.0 on compute capability 8.6 (NVIDIA A10)" in message


def test_sidecar_missing_broken_or_without_build_record(tmp_path):
    with pytest.raises(DmlcsrError, match="no JSON sidecar.*model.engine.json"):
        read_sidecar(_engine_with_sidecar(tmp_path, build=None))
    broken = tmp_path / "broken"
    broken.mkdir()
    engine = _engine_with_sidecar(broken, build=None)
    (broken / "model.engine.json").write_text("{not json")
    with pytest.raises(DmlcsrError, match="not valid JSON"):
        read_sidecar(engine)
    (broken / "model.engine.json").write_text(json.dumps({"num_classes": 2, "label_names": ["a", "b"]}))
    with pytest.raises(DmlcsrError, match="lacks the TensorRT build record"):
        read_sidecar(engine)


def test_sidecar_is_found_by_either_name(tmp_path):
    by_stem = _engine_with_sidecar(tmp_path, name="model.plan", sidecar_name="model.json")
    assert sidecar_path(by_stem) == tmp_path / "model.json"
    assert read_sidecar(by_stem)[1]["compute_capability"] == "8.6"
    other = tmp_path / "other"
    other.mkdir()
    assert sidecar_path(_engine_with_sidecar(other)) == other / "model.engine.json"


def test_compute_capability_spellings():
    for spelling in ("8.6", [8, 6], (8, 6), 8.6, "sm_86", "86"):
        assert normalise_compute_capability(spelling) == "8.6"
    assert normalise_compute_capability("12.0") == "12.0"
    with pytest.raises(DmlcsrError, match="unreadable compute capability"):
        normalise_compute_capability("ampere")


def test_engines_refuse_cpu_and_explain_missing_tensorrt(tmp_path):
    engine = _engine_with_sidecar(tmp_path)
    with pytest.raises(DmlcsrError, match="model.engine runs on cuda only \\(tensorrt\\), not device='cpu'; pass "
                                          "the .onnx model or an OpenVINO .xml for cpu"):
        open_backend(engine, device="cpu")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(DmlcsrError, match=r"pip install 'dmlcsr\[trt\]'") as exc:
            open_backend(engine)
        one_line_message(exc)
    else:
        pytest.skip("tensorrt is installed: the missing-package message cannot be shown here")


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_tensorrt_engine_matches_onnxruntime(toy, tmp_path):
    """Builds an FP32 engine of the toy model with TensorRT's own builder, writes the sidecar
    for this GPU, and compares the TensorRT backend's logits with ONNX Runtime's."""
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    from dmlcsr.runtime.backends.tensorrt_backend import current_gpu, import_cudart

    try:
        capability, gpu = current_gpu(import_cudart())
    except DmlcsrError as exc:
        pytest.skip(f"no CUDA GPU: {exc}")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(toy.read_bytes())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("input", (1, 3, 97, 97), (2, 3, 97, 97), (4, 3, 97, 97))
    config.add_optimization_profile(profile)
    engine = tmp_path / "toy.engine"
    engine.write_bytes(bytes(builder.build_serialized_network(network, config)))
    meta = open_backend(toy, device="cpu").metadata
    meta.extra["tensorrt"] = {"version": trt.__version__, "gpu_name": gpu, "compute_capability": capability,
                              "precision": "fp32"}
    (tmp_path / "toy.engine.json").write_text(meta.to_json())
    backend = open_backend(engine, device="cuda")
    assert backend.batch_limits == (1, 4)
    batch = np.random.default_rng(0).standard_normal((3, 3, 97, 97)).astype(np.float32)
    expected = open_backend(toy, device="cpu").run_single(batch)
    assert np.allclose(backend.run_single(batch), expected, atol=1e-3)
    with pytest.raises(DmlcsrError, match="outside the engine's profile"):
        backend.run_single(np.zeros((5, 3, 97, 97), np.float32))
    mismatched = dict(meta.extra["tensorrt"], compute_capability="1.0")
    meta.extra["tensorrt"] = mismatched
    (tmp_path / "toy.engine.json").write_text(meta.to_json())
    with pytest.raises(DmlcsrError, match="rebuild the engine"):
        TensorRTBackend(engine)
