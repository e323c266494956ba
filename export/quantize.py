"""INT8 by explicit quantization: an FP32 ONNX model -> a QDQ ONNX model calibrated on
real face photos with ONNX Runtime's static quantization.

The QDQ file is what TensorRT builds INT8 engines from (implicit-calibration INT8 is
deprecated in TensorRT 10 and gone in 11), and ONNX Runtime runs it on CPU too. Choices
made for TensorRT: symmetric int8 for activations and weights (TensorRT accepts zero
points of 0 only), per-channel weight scales, and Q/DQ pairs on the inputs of the weighted
ops (Conv, MatMul) only, where NVIDIA's own quantization toolkit puts them: their outputs
and the rest (LeakyReLU, Add, Resize, Concat...) stay in float, where TensorRT fuses them
into the int8 kernels' epilogues anyway, and each extra Q/DQ would only add rounding error
(quantizing the Conv outputs too, ONNX Runtime's default, cost the demo model 2 points of
label agreement). ONNX Runtime also hands a Conv's dequantized input to every other reader
of that tensor, so each residual block's identity path would add the rounded activation and
the residual stream would be re-quantized 33 times; those readers are re-wired to the float
tensor (demo model at 225 px: 98.7 % -> 99.5 % agreement). Activation ranges default to
the 99.99th percentile of |x|: ONNX Runtime's 99.999 keeps a few outliers and coarsens the
step for every other value (a demo-model variant at 225 px: 97.9 % agreement at 99.99,
93.5 % at 99.9; another 90.4 % at 99.99 and 87.4 % at 99.999). The deep stem's three convs
stay float by default (``quantize_stem=False``): they see the raw image, hold 2.5 % of the
FLOPs, and quantizing them alone cost the demo model 1.1 points of agreement, the most of
any stage (keeping a network's first layers in float is common practice).
Biases stay float: TensorRT's parser rejects the int32
DequantizeLinear that ONNX Runtime writes for quantized biases (onnx-tensorrt #850).
Concat and Softmax outputs get no Q/DQ pair (``FLOAT_PRODUCERS``): OpenVINO 2026.4 computes
both patterns wrongly in int8 (a Concat's signed int8 Q/DQ loses its scale when its
low-precision transformations move it onto the Concat inputs; the attention block's
Softmax -> Q/DQ -> MatMul, softmax as the second operand, is fused into one kernel that
miscomputes), which took OpenVINO's agreement on this file to 48-72 %; without those 8
nodes it computes what the QDQ arithmetic says. They cover 3 convs and one MatMul, which
then read float activations (and so run in float on TensorRT too).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader

from dmlcsr.core.metadata import ModelMetadata
from dmlcsr.errors import DmlcsrError
from dmlcsr.export.face_inputs import list_images, preprocess_file
from dmlcsr.export.onnx_export import INPUT_NAME, read_metadata, set_metadata
from dmlcsr.runtime.output_files import atomic_target

CALIBRATION_METHODS = ("entropy", "percentile", "minmax")
MIN_CALIBRATION_IMAGES = 4
QUANTIZED_OP_TYPES = ("Conv", "MatMul")
#: ops whose outputs keep no Q/DQ pair (OpenVINO miscomputes them in int8; see above)
FLOAT_PRODUCERS = ("Concat", "Softmax")
DEFAULT_PERCENTILE = 99.99
#: weight shapes (out, in, kh, kw) of the deep stem's three convs, first in every DML-CSR / EAGRNet graph
STEM_SHAPES = ((64, 3, 3, 3), (64, 64, 3, 3), (128, 64, 3, 3))


class FaceCalibrationReader(CalibrationDataReader):
    """ONNX Runtime CalibrationDataReader over preprocessed photos, one image per batch.

    Implements ``set_range`` so quantize_static's strided mode can hand the images over one
    at a time: the calibrator then keeps one image's activations in memory, not all of them.
    """

    def __init__(self, inputs: Sequence[np.ndarray]) -> None:
        self.inputs = list(inputs)
        self.start, self.end = 0, len(self.inputs)
        self.position = 0

    def __len__(self) -> int:
        return len(self.inputs)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end = start_index, min(end_index, len(self.inputs))
        self.position = self.start

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= self.end:
            return None
        batch = self.inputs[self.position][None]
        self.position += 1
        return {INPUT_NAME: batch}


def load_calibration_inputs(directory: str | os.PathLike, input_size: tuple[int, int], limit: int | None = None,
                            min_images: int = MIN_CALIBRATION_IMAGES) -> list[np.ndarray]:
    """Every image of ``directory`` (at most ``limit``) preprocessed as the runtime does.

    Unreadable files are an error listing them all: skipping them silently would calibrate
    on fewer images than the user thinks.
    """
    paths = list_images(directory, purpose="--calib")[:limit]
    inputs, broken = [], []
    for path in paths:
        try:
            inputs.append(preprocess_file(path, input_size))
        except DmlcsrError as exc:
            broken.append(f"{path.name} ({str(exc).split(';')[0].removeprefix(str(path)).strip(' :')})")
    if broken:
        raise DmlcsrError(f"{len(broken)} of {len(paths)} calibration images in {directory} are unreadable: "
                          f"{', '.join(broken[:3])}{' ...' if len(broken) > 3 else ''}; fix or remove them")
    if len(inputs) < min_images:
        raise DmlcsrError(f"--calib {directory} holds {len(inputs)} image(s); INT8 calibration needs at least "
                          f"{min_images} (a few hundred representative face photos are best)")
    return inputs


def quantize_int8(fp32_onnx: str | os.PathLike, output: str | os.PathLike, inputs: Sequence[np.ndarray],
                  method: str = "percentile", percentile: float = DEFAULT_PERCENTILE,
                  quantize_stem: bool = False) -> Path:
    """Write the INT8 QDQ model of ``fp32_onnx`` calibrated on ``inputs`` to ``output``
    (``percentile`` applies to the percentile method only)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile,
               "minmax": CalibrationMethod.MinMax}
    if method not in methods:
        raise DmlcsrError(f"unknown calibration method {method!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
    if not 50.0 < percentile <= 100.0:
        raise DmlcsrError(f"--calib-percentile must be in (50, 100], not {percentile}; 99.99 is a good start")
    if not inputs:
        raise DmlcsrError("no calibration inputs; pass --calib DIR with face photos")
    meta = read_metadata(fp32_onnx)
    if meta.precision != "fp32":
        raise DmlcsrError(f"{fp32_onnx} is already {meta.precision}; quantize the FP32 export")
    output = Path(output)
    with tempfile.TemporaryDirectory(prefix="dmlcsr-int8-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_onnx), str(prepared), skip_optimization=True)
        float_nodes = [] if quantize_stem else stem_conv_nodes(onnx.load(str(prepared), load_external_data=False))
        quantize_static(
            str(prepared), str(output), FaceCalibrationReader(inputs), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OP_TYPES), per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=methods[method],
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                           "CalibStridedMinMax": 1, "CalibTensorRangeSymmetric": True,
                           "CalibPercentile": percentile,
                           "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OP_TYPES)},
            nodes_to_exclude=float_nodes)
    model = onnx.load(str(output))
    _float_for_unquantized_readers(model)
    _drop_qdq_after(model, FLOAT_PRODUCERS)
    set_metadata(model, _int8_metadata(meta, method, percentile, len(inputs), quantize_stem))
    with atomic_target(output) as partial:
        onnx.save(model, str(partial))
        onnx.checker.check_model(str(partial), full_check=True)
    return output


def _float_for_unquantized_readers(model: onnx.ModelProto) -> None:
    """Point every op that is not quantized (Add, Concat, Resize...) back at the float tensor
    it read before quantization, so Q/DQ pairs feed Conv and MatMul only."""
    weights = {init.name for init in model.graph.initializer}
    producers = {name: node for node in model.graph.node for name in node.output}
    for node in model.graph.node:
        if node.op_type in (*QUANTIZED_OP_TYPES, "QuantizeLinear", "DequantizeLinear"):
            continue
        for index, name in enumerate(node.input):
            dequantize = producers.get(name)
            if dequantize is None or dequantize.op_type != "DequantizeLinear" or dequantize.input[0] in weights:
                continue
            node.input[index] = producers[dequantize.input[0]].input[0]


def _drop_qdq_after(model: onnx.ModelProto, producer_types: Sequence[str]) -> None:
    """Remove the activation Q/DQ pairs on the outputs of ``producer_types`` ops: their
    readers read the float tensor again."""
    graph = model.graph
    producers = {name: node for node in graph.node for name in node.output}
    quantizers = [node for node in graph.node if node.op_type == "QuantizeLinear" and node.input[0] in producers
                  and producers[node.input[0]].op_type in producer_types]
    float_of: dict[str, str] = {}
    dropped = set()
    for quantize in quantizers:
        dropped.add(id(quantize))
        for node in graph.node:
            if node.op_type == "DequantizeLinear" and node.input[0] == quantize.output[0]:
                float_of[node.output[0]] = quantize.input[0]
                dropped.add(id(node))
    kept = [node for node in graph.node if id(node) not in dropped]
    for node in kept:
        for index, name in enumerate(node.input):
            node.input[index] = float_of.get(name, name)
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in graph.node for name in node.input}
    initializers = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def stem_conv_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv nodes of the deep stem: the graph's first three convs, recognised by
    their weight shapes. Not by weight names: those depend on the exporter and the module
    around the network (EAGRNet's export wrapper prefixes them), and a re-used file must
    quantize exactly as a fresh one."""
    weights = {init.name: tuple(init.dims) for init in model.graph.initializer}
    convs = [node for node in model.graph.node if node.op_type == "Conv"][:len(STEM_SHAPES)]
    shapes = tuple(weights.get(node.input[1]) for node in convs)
    if shapes != STEM_SHAPES:
        raise DmlcsrError(f"the first convolutions have weights {shapes}, not DML-CSR's deep stem {STEM_SHAPES}; "
                          "quantize a model exported by dmlcsr-export, or pass --int8-stem")
    return [node.name for node in convs]


def _int8_metadata(meta: ModelMetadata, method: str, percentile: float, images: int,
                   quantize_stem: bool) -> ModelMetadata:
    calibration = {"method": method, "images": images, "quantized_ops": list(QUANTIZED_OP_TYPES),
                   "quantized_tensors": "inputs", "stem": "int8" if quantize_stem else "float",
                   "float_outputs_of": list(FLOAT_PRODUCERS)}
    if method == "percentile":
        calibration["percentile"] = percentile
    extra = {**meta.extra, "calibration": calibration}
    return replace(meta, precision="int8-qdq", extra=extra)
