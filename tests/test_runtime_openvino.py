"""The OpenVINO backend and the backend registry on real inference (a toy model: the
mechanics; DML-CSR parity is in test_export_openvino.py): which engine opens which file,
metadata in the IR, threads, the throughput queue, bf16, and every bad input's message."""

from __future__ import annotations

import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from support.errors import one_line_message
from support.toy_onnx import toy_parsing_onnx

from dmlcsr.core.cpu import this_cpu
from dmlcsr.errors import DmlcsrError, DmlcsrWarning
from dmlcsr.runtime import FaceParser
from dmlcsr.runtime.backends import REGISTRY, choose_engine, open_backend
from dmlcsr.runtime.parser import cpu_int8_advice

pytest.importorskip("openvino")
from dmlcsr.export.openvino_export import save_ir, write_fp32_ir  # noqa: E402 - needs openvino


@pytest.fixture(scope="module")
def toy_ir(toy) -> Path:
    return write_fp32_ir(toy, toy.with_name("toy-fp32.xml"))


def test_registry_picks_the_engine_by_suffix_and_honours_a_request(toy, toy_ir):
    assert [e.engine for e in REGISTRY] == ["onnxruntime", "openvino", "tensorrt"]
    assert choose_engine(toy).engine == "onnxruntime"  # the faster FP32 engine for .onnx on CPUs
    assert choose_engine(toy_ir).engine == "openvino"
    assert choose_engine(toy, "openvino").engine == "openvino"
    if REGISTRY[2].is_available():
        assert choose_engine(Path("m.engine"), device="cuda").engine == "tensorrt"
    else:  # no TensorRT here: the refusal names what to install
        with pytest.raises(DmlcsrError, match="cannot open m.engine: tensorrt is not installed; pip install"):
            choose_engine(Path("m.engine"), device="cuda")
    for entry in REGISTRY:
        availability = entry.is_available()
        assert availability.available or availability.reason  # never unavailable without a reason
    assert REGISTRY[1].is_available() and REGISTRY[0].is_available()


def test_ir_keeps_the_metadata_and_matches_onnxruntime(toy, toy_ir, face_paths):
    assert toy_ir.with_suffix(".bin").is_file() and not list(toy_ir.parent.glob(".*partial*"))
    ov_parser, ort_parser = FaceParser(toy_ir), FaceParser(toy)
    assert ov_parser.backend.name == "openvino[CPU, fp32, f32 compute]"
    assert ov_parser.backend.engine == "openvino" and ort_parser.backend.engine == "onnxruntime"
    assert ov_parser.label_names == ort_parser.label_names and ov_parser.input_size == (97, 97)
    assert ov_parser.backend.metadata.extra["openvino"]["openvino"]  # the versions it was written with
    for path in face_paths[:3]:
        assert (ov_parser.parse(path) == ort_parser.parse(path)).mean() >= 0.9999
    via_onnx = FaceParser(toy, engine="openvino")  # an .onnx through OpenVINO, on request
    assert via_onnx.backend.engine == "openvino" and via_onnx.num_classes == 19
    np.testing.assert_allclose(via_onnx.parse(face_paths[0], output="logits"),
                               ort_parser.parse(face_paths[0], output="logits"), atol=1e-4)


def test_throughput_queue_gives_the_sequential_results(toy_ir, face_paths):
    latency = FaceParser(toy_ir)
    throughput = FaceParser(toy_ir, throughput=True)
    assert latency.backend.requests_in_flight == 1
    assert throughput.backend.requests_in_flight >= 1 and "streams" in throughput.backend.name
    expected = latency.parse_batch(face_paths, batch_size=3)
    got = throughput.parse_batch(face_paths, batch_size=3)
    assert all((a == b).all() for a, b in zip(expected, got, strict=True))
    crops = [latency.crop_for(np.zeros((200, 300, 3), np.uint8))] * 5
    image = np.full((200, 300, 3), 90, np.uint8)
    np.testing.assert_array_equal(throughput.infer_crops(image, crops), latency.infer_crops(image, crops))


def test_one_parser_shared_by_threads_equals_sequential_calls(toy_ir, face_paths):
    parser = FaceParser(toy_ir)
    expected = [parser.parse(p) for p in face_paths]
    results: dict[int, list[np.ndarray]] = {}

    def work(index: int) -> None:
        results[index] = [parser.parse(p) for p in face_paths]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all((a == b).all() for got in results.values() for a, b in zip(got, expected, strict=True))


def test_bf16_is_an_explicit_choice(toy_ir, face_paths):
    if not this_cpu()["native_bf16"]:
        with pytest.raises(DmlcsrError, match="bf16 instructions") as exc:
            FaceParser(toy_ir, inference_precision="bf16")
        one_line_message(exc)
        return
    parser = FaceParser(toy_ir, inference_precision="bf16")
    assert "bf16 compute" in parser.backend.name and parser.backend.inference_precision == "bf16"
    assert (parser.parse(face_paths[0]) == FaceParser(toy_ir).parse(face_paths[0])).mean() > 0.95


def test_bad_ir_files_get_one_line_errors(toy, toy_ir, tmp_path):
    lonely = tmp_path / "lonely.xml"
    lonely.write_bytes(toy_ir.read_bytes())
    with pytest.raises(DmlcsrError, match="no weights file lonely.bin.*copy the .bin along") as exc:
        open_backend(lonely)
    one_line_message(exc)
    truncated = tmp_path / "truncated.xml"
    truncated.write_bytes(toy_ir.read_bytes()[:500])
    (tmp_path / "truncated.bin").write_bytes(toy_ir.with_suffix(".bin").read_bytes())
    with pytest.raises(DmlcsrError, match="not a loadable OpenVINO IR.*dmlcsr-export --openvino") as exc:
        open_backend(truncated)
    one_line_message(exc)
    short_bin = tmp_path / "short.xml"
    short_bin.write_bytes(toy_ir.read_bytes())
    (tmp_path / "short.bin").write_bytes(toy_ir.with_suffix(".bin").read_bytes()[:100])
    with pytest.raises(DmlcsrError, match="short.xml") as exc:
        open_backend(short_bin)
    one_line_message(exc)
    with pytest.raises(DmlcsrError, match="pass the OpenVINO IR's .xml") as exc:
        open_backend(toy_ir.with_suffix(".bin"))
    one_line_message(exc)


def test_an_ir_of_another_model_is_refused(toy, tmp_path):
    import openvino

    foreign = tmp_path / "foreign.xml"
    openvino.save_model(openvino.Core().read_model(str(toy_parsing_onnx(tmp_path / "bare.onnx", metadata=False))),
                        str(foreign))
    with pytest.raises(DmlcsrError, match="carries no dmlcsr metadata") as exc:
        FaceParser(foreign)
    one_line_message(exc)
    from dmlcsr.core.metadata import ModelMetadata

    other = ModelMetadata(19, [f"c{i}" for i in range(19)], input_name="image")  # names another graph's input
    model = openvino.Core().read_model(str(toy))
    with pytest.raises(DmlcsrError, match="has inputs \\['input'\\].*re-export") as exc:
        FaceParser(save_ir(model, tmp_path / "mismatch.xml", other))
    one_line_message(exc)


def test_engine_requests_that_cannot_be_honoured(toy, toy_ir):
    cases = [(dict(path=toy_ir, engine="onnxruntime"), "does not open .xml"),
             (dict(path=toy, engine="tensorrt"), "does not open .onnx"),
             (dict(path=toy, engine="coreml"), "unknown engine 'coreml'"),
             (dict(path=toy_ir, device="cuda"), "toy-fp32.xml runs on cpu only \\(openvino\\), not device='cuda'"),
             (dict(path=toy, engine="openvino", device="cuda"), "runs on cpu only"),
             (dict(path=toy, inference_precision="bf16"), "bf16 is an OpenVINO option"),
             (dict(path=toy, threads=0), "threads must be a whole number")]
    for kwargs, message in cases:
        with pytest.raises(DmlcsrError, match=message) as exc:
            open_backend(**kwargs)
        one_line_message(exc)


def test_openvino_missing_is_named_with_the_install_command(toy, toy_ir, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now fails, as without the extra
    with pytest.raises(DmlcsrError, match="openvino is not installed; pip install 'dmlcsr\\[openvino\\]'") as exc:
        open_backend(toy_ir)
    one_line_message(exc)
    with pytest.raises(DmlcsrError, match="cannot open toy.onnx with openvino"):
        open_backend(toy, engine="openvino")
    assert open_backend(toy).engine == "onnxruntime"  # .onnx still opens with the default engine


def test_int8_advice_on_cpus_without_vnni_and_for_qdq_on_onnxruntime(toy):
    from dataclasses import replace

    backend = open_backend(toy, "cpu")
    backend.metadata = replace(backend.metadata, precision="int8-qdq")
    no_vnni = {"native_int8_dot": False}
    advice = cpu_int8_advice(backend, no_vnni)
    assert len(advice) == 2 and "no VNNI" in advice[0] and "dmlcsr-export --openvino --int8" in advice[1]
    assert cpu_int8_advice(backend, {"native_int8_dot": True}) == advice[1:]
    backend.metadata = replace(backend.metadata, precision="fp32")
    assert cpu_int8_advice(backend, no_vnni) == []


def test_parser_warns_once_when_opening_int8_qdq_on_onnxruntime(tmp_path):
    from dmlcsr.core.labels import default_label_set
    from dmlcsr.core.metadata import ModelMetadata, Preprocessing

    meta = ModelMetadata(19, list(default_label_set(19).names), precision="int8-qdq",
                         preprocessing=Preprocessing(input_size=(97, 97)))
    path = toy_parsing_onnx(tmp_path / "int8.onnx", metadata=meta)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FaceParser(path)
    assert [w.category for w in caught].count(DmlcsrWarning) >= 1
    assert any("made for TensorRT" in str(w.message) for w in caught)
