"""dmlcsr-export end to end at the demo model's small size (225 px, to keep CI fast): FP32,
FP16 and INT8 QDQ ONNX plus a Triton repository in one run (the session's
``demo_small_exported``, which the parity tests judge too), then each artefact checked."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper
from support.sizes import DEMO_CALIBRATION_SIZE as SIZE

from dmlcsr.errors import DmlcsrError
from dmlcsr.export.cli import export_main
from dmlcsr.export.compare import format_report
from dmlcsr.export.face_inputs import preprocess_file
from dmlcsr.export.onnx_export import read_metadata
from dmlcsr.export.quantize import STEM_SHAPES, load_calibration_inputs
from dmlcsr.export.runners import open_artefact
from dmlcsr.export.triton import parse_config
from dmlcsr.export.verify import verify_artefacts
from dmlcsr.runtime.backends import open_backend

LOGITS = [-(-side // 4) for side in SIZE]  # 57 x 57 at 225


@pytest.fixture(scope="module")
def exported(demo_small_exported):
    return demo_small_exported


def _run(path, images):
    return open_backend(path, "cpu", engine="onnxruntime").run_single(images)


@pytest.fixture(scope="module")
def images(face_paths):
    return np.stack([preprocess_file(p, SIZE) for p in face_paths[4:6]])


def test_every_artefact_is_written_and_listed(exported):
    for precision in ("fp32", "fp16", "int8"):
        assert exported[precision].is_file() and str(exported[precision]) in exported["output"]
        onnx.checker.check_model(str(exported[precision]), full_check=True)
    assert (exported["triton"] / "dmlcsr" / "config.pbtxt").is_file()


def test_fp16_is_half_inside_float_outside(exported, images):
    model = onnx.load(str(exported["fp16"]))
    conv_weights = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    dtypes = {i.data_type for i in model.graph.initializer if i.name in conv_weights}
    assert dtypes == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    meta, base = read_metadata(model), read_metadata(exported["fp32"])
    assert meta.precision == "fp16" and meta.label_names == base.label_names
    assert meta.preprocessing.input_size == SIZE
    half, full = _run(exported["fp16"], images), _run(exported["fp32"], images)
    assert half.dtype == np.float32 and half.shape == full.shape == (2, 19, *LOGITS)
    assert 0 < np.abs(half - full).max() < 0.05 * np.abs(full).max()


def test_int8_is_symmetric_per_channel_qdq_for_tensorrt(exported):
    model = onnx.load(str(exported["int8"]))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    stem = [n for n in convs if n.input[1] in {'conv1.weight', 'conv2.weight', 'conv3.weight'}]  # official names
    assert [tuple(inits[n.input[1]].shape) for n in stem] == list(STEM_SHAPES)
    assert len(stem) == 3 and len(convs) == 128
    assert sum(getattr(producers.get(c.input[0]), "op_type", "") == "Concat" for c in convs) == 3  # cat -> conv
    for conv in stem:  # float by default: weights straight from initializers, input not dequantized
        assert conv.input[1] in inits and producers.get(conv.input[0], conv).op_type != "DequantizeLinear"
    for conv in convs:
        if conv in stem:
            continue
        weight_dq = producers[conv.input[1]]
        assert weight_dq.op_type == "DequantizeLinear"
        weight, scale, zero = (inits[name] for name in weight_dq.input)
        assert weight.dtype == np.int8 and scale.shape == (weight.shape[0],)  # per output channel
        assert not zero.any()
        reads = producers[conv.input[0]].op_type  # activations quantized too, but a Concat's output
        assert reads == "DequantizeLinear" or reads == "Concat"
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    dequantized = [n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in inits]
    # Q/DQ only where a Conv or MatMul reads the tensor, as TensorRT wants them (not on every Conv output)
    assert dequantized and all(set(consumers[name]) <= {"Conv", "MatMul"} for name in dequantized)
    zero_points = [inits[n.input[2]] for n in model.graph.node
                   if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)  # no int32 bias DQ
    biases = [n.input[2] for n in convs if len(n.input) > 2]
    assert biases and all(b in inits and inits[b].dtype == np.float32 for b in biases)  # float, for TensorRT
    meta = read_metadata(model)
    assert meta.precision == "int8-qdq"
    assert meta.extra["calibration"] == {"method": "percentile", "percentile": 99.99, "images": 7,
                                         "quantized_ops": ["Conv", "MatMul"], "quantized_tensors": "inputs",
                                         "stem": "float", "float_outputs_of": ["Concat", "Softmax"]}
    # no Q/DQ after Concat or Softmax: OpenVINO miscomputes both patterns in int8
    assert not [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in producers
                and producers[n.input[0]].op_type in ("Concat", "Softmax")]


def test_int8_agreement_is_reported_for_cpu_kernels_and_for_the_qdq_math(exported, demo_checkpoint, face_paths,
                                                                          images):
    kernels, math = verify_artefacts(demo_checkpoint, [exported["int8"]], face_paths[4:6], device="cpu")
    print("\n" + format_report(kernels) + "\n" + format_report(math))
    assert kernels.precision == math.precision == "int8-qdq" and kernels.images == math.images == 2
    assert "unfused QDQ arithmetic" in math.artefact and "unfused" not in kernels.artefact
    for report in (kernels, math):
        assert 0 <= report.agreement_logits <= 1 and len(report.per_class) == 19
    # the quantized arithmetic itself must track FP32 closely (a wrong scale or zero point would not)
    simulated = open_artefact(exported["int8"], "cpu", "onnxruntime", as_written=True)(images)
    full = _run(exported["fp32"], images)
    assert np.corrcoef(simulated.ravel(), full.ravel())[0, 1] > 0.98


def test_triton_repository_parses_and_matches_the_model(exported):
    model_dir = exported["triton"] / "dmlcsr"
    config = parse_config((model_dir / "config.pbtxt").read_text())
    assert config.name == "dmlcsr" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 8 and list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    (inp,), (out,) = config.input, config.output
    assert (inp.name, list(inp.dims), out.name, list(out.dims)) == ("input", [3, *SIZE], "logits", [19, *LOGITS])
    assert inp.data_type == out.data_type == 11  # TYPE_FP32: the FP16 model keeps float32 I/O
    served = model_dir / "1" / "model.onnx"
    assert served.read_bytes() == exported["fp16"].read_bytes()  # auto: FP16 when no engine was built
    assert read_metadata(served).precision == "fp16"


def test_triton_parser_is_strict():
    with pytest.raises(Exception, match="max_batch"):
        parse_config('name: "x"\nmax_batch: 4\n')


@pytest.mark.parametrize("case", ["empty", "unreadable", "too few"])
def test_calibration_folders_that_cannot_calibrate(case, face_paths, tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    expected = {"empty": "holds no images", "unreadable": "unreadable: broken.jpg", "too few": "needs at least 4"}
    if case == "unreadable":
        for path in face_paths[:4]:
            shutil.copy(path, folder / path.name)
        (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    elif case == "too few":
        shutil.copy(face_paths[0], folder / face_paths[0].name)
    with pytest.raises(DmlcsrError, match=expected[case]):
        load_calibration_inputs(folder, SIZE)


@pytest.mark.parametrize("case", ["int8 without calib", "empty calib", "missing checkpoint", "unwritable out",
                                  "engine without tensorrt", "input too narrow"])
def test_cli_bad_inputs_fail_fast_with_one_line(case, demo_training_checkpoint, tmp_path):
    if case == "engine without tensorrt":
        _skip_if_tensorrt()
    empty = tmp_path / "empty"
    empty.mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ckpt, out, extra, expected = str(demo_training_checkpoint), str(tmp_path / "out"), [], ""
    if case == "int8 without calib":
        extra, expected = ["--int8"], "--int8 needs --calib"
    elif case == "empty calib":
        extra, expected = ["--int8", "--calib", str(empty)], "holds no images"
    elif case == "missing checkpoint":
        ckpt, expected = str(tmp_path / "nope.pth"), "checkpoint not found"
    elif case == "unwritable out":
        out, expected = str(blocker / "sub"), "output directory"
    elif case == "input too narrow":  # H,W parses (each side >= 17) but cannot be exported
        extra, expected = ["--input-size", "473,32"], "--input-size 473,32 is too small"
    else:
        extra, expected = ["--engine", "fp16"], "pip install 'dmlcsr[trt]'"
    result = CliRunner().invoke(export_main, ["--ckpt", ckpt, "--out", out, "--input-size", "225", *extra])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0]
    assert not list((tmp_path / "out").glob("*.onnx")), "failed before any export work"


def _skip_if_tensorrt() -> None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return
    pytest.skip("tensorrt is installed here: the missing-TensorRT error cannot be shown")


def test_bad_batch_range_is_a_usage_error(demo_training_checkpoint, tmp_path):
    result = CliRunner().invoke(export_main, ["--ckpt", str(demo_training_checkpoint), "--batch", "4:2:8"])
    assert result.exit_code == 2 and "MIN <= OPT <= MAX" in result.output
