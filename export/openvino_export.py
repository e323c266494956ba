"""ONNX -> OpenVINO IR (.xml + .bin), FP32 as is or INT8 quantized with NNCF.

Why NNCF: it is OpenVINO's own post-training quantizer and places its FakeQuantize ops
where the CPU plugin's int8 kernels (VNNI / AMX) pick them up. The recipe
(``NncfRecipe``) was chosen by measurement on the demo model at 473 px (label agreement
with FP32 after the official upsample; latency on a 2-core Zen 5 with AVX512-VNNI, ONNX
Runtime FP32 1355 ms; docs/cpu-engines.md):

| recipe | agreement | latency |
|---|---|---|
| NNCF defaults (MIXED preset), stem float | 98.40 % | 322 ms |
| + residual Adds left float (as the QDQ recipe) | 98.96 % | 436 ms |
| + NNCF's histogram-optimal activation ranges | 99.24 % | 400 ms |
| + mirrored photos in the calibration set (the default) | 99.30 % | 362 ms |
| + accuracy control, max drop 0.005 (``max_drop``) | 99.52 % | 755 ms |

Tried and dropped: PERFORMANCE preset (98.26 %, 748 ms: signed activations are slow
here), quantile ranges (97.6 %), the stem quantized (97.7 %), the head or layer4 float
(99.25 % / 99.12 %, much slower), Concat/MatMul float (no gain). The repaired QDQ file
run by OpenVINO agrees on 99.17 % at 592 ms.

The IR carries the same metadata document as the ONNX file, in its rt_info under
``dmlcsr``, with the precision set to what the IR computes ("fp32", "int8-nncf").
Files are written under temporary names and renamed, .bin before .xml, so a reader never
finds an .xml whose weights are half-written.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from dmlcsr.core.metadata import METADATA_KEY, ModelMetadata
from dmlcsr.errors import DmlcsrError
from dmlcsr.export.onnx_export import read_metadata
from dmlcsr.export.quantize import STEM_SHAPES

INSTALL_HINT = "pip install 'dmlcsr[openvino]' (OpenVINO and NNCF)"
INT8_PRECISION = "int8-nncf"


@dataclass(frozen=True)
class NncfRecipe:
    """The NNCF settings an INT8 IR is made with (recorded in its metadata)."""

    preset: str = "mixed"            # symmetric weights, asymmetric activations
    quantize_stem: bool = False      # the three stem convs see the raw image: float by default
    float_adds: bool = True          # residual Adds read float, as in the QDQ recipe
    ranges: str = "histogram"        # activation ranges: NNCF's histogram optimum, or "minmax"
    mirrored: bool = True            # calibrate on each photo and its mirror image too
    fast_bias_correction: bool = True
    #: with a value, NNCF accuracy control reverts the most sensitive layers to float until the
    #: labels agree with FP32 on the calibration photos within this drop (0.005: 99.5 %)
    max_drop: float | None = None


DEFAULT_RECIPE = NncfRecipe()


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise DmlcsrError(f"--openvino needs OpenVINO, which is not installed; {INSTALL_HINT}") from None
    return openvino


def import_nncf():
    try:
        import nncf
    except ImportError:
        raise DmlcsrError(f"--openvino --int8 needs NNCF, which is not installed; {INSTALL_HINT}") from None
    return nncf


def stem_convolutions(model) -> list[str]:
    """Friendly names of the deep stem's three convolutions: the first three in the graph,
    recognised by their weight shapes (names differ between exporters; shapes do not)."""
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"][:len(STEM_SHAPES)]
    shapes = tuple(tuple(op.input_value(1).get_partial_shape().to_shape()) for op in convs)
    if shapes != STEM_SHAPES:
        raise DmlcsrError(f"the first convolutions have weights {shapes}, not DML-CSR's deep stem {STEM_SHAPES}; "
                          "quantize a model exported by dmlcsr-export, or pass --int8-stem")
    return [op.get_friendly_name() for op in convs]


def save_ir(model, xml_path: Path, meta: ModelMetadata) -> Path:
    """Write ``model`` with ``meta`` in its rt_info as ``xml_path`` + .bin, atomically."""
    openvino = import_openvino()
    model.set_rt_info(meta.to_json(), [METADATA_KEY])
    partial = xml_path.with_name(f".{xml_path.stem}.partial-{os.getpid()}.xml")
    try:
        openvino.save_model(model, str(partial), compress_to_fp16=False)
        os.replace(partial.with_suffix(".bin"), xml_path.with_suffix(".bin"))
        os.replace(partial, xml_path)
    except OSError as exc:
        raise DmlcsrError(f"cannot write {xml_path} ({exc.strerror}); pass a writable --out") from None
    finally:
        for leftover in (partial, partial.with_suffix(".bin")):
            leftover.unlink(missing_ok=True)
    return xml_path


def read_onnx_for_openvino(fp32_onnx: str | os.PathLike):
    """The FP32 ONNX file as an OpenVINO model, with its dmlcsr metadata."""
    meta = read_metadata(fp32_onnx)
    if meta.precision != "fp32":
        raise DmlcsrError(f"{fp32_onnx} is {meta.precision}; OpenVINO IR is made from the FP32 export")
    return import_openvino().Core().read_model(str(fp32_onnx)), meta


def write_fp32_ir(fp32_onnx: str | os.PathLike, xml_path: str | os.PathLike) -> Path:
    """The FP32 ONNX file as an FP32 IR (weights kept in float32, not compressed to f16)."""
    model, meta = read_onnx_for_openvino(fp32_onnx)
    return save_ir(model, Path(xml_path), replace(meta, extra={**meta.extra, "openvino": _versions()}))


def write_int8_ir(fp32_onnx: str | os.PathLike, xml_path: str | os.PathLike, inputs: Sequence[np.ndarray],
                  recipe: NncfRecipe = DEFAULT_RECIPE, log: Callable[[str], None] = print) -> Path:
    """An INT8 IR of ``fp32_onnx`` quantized by NNCF on ``inputs`` (3 x S x S arrays
    preprocessed as the runtime does) with ``recipe``."""
    nncf = import_nncf()
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    if not inputs:
        raise DmlcsrError("no calibration inputs; pass --calib DIR with face photos")
    model, meta = read_onnx_for_openvino(fp32_onnx)
    ignored = nncf.IgnoredScope(names=[] if recipe.quantize_stem else stem_convolutions(model),
                                types=["Add"] if recipe.float_adds else [])
    presets = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}
    advanced = AdvancedQuantizationParameters()
    if recipe.ranges == "histogram":
        advanced.activations_range_estimator_params = RangeEstimatorParametersSet.HISTOGRAM
    samples = [*inputs, *(x[:, :, ::-1].copy() for x in inputs)] if recipe.mirrored else list(inputs)
    began = time.perf_counter()
    dataset = nncf.Dataset(samples, lambda x: x[None])
    nncf_logger = logging.getLogger("nncf")  # it logs every op it leaves unquantized: keep its errors
    level = nncf_logger.level
    nncf_logger.setLevel(logging.ERROR)
    try:
        if recipe.max_drop is None:
            quantized = nncf.quantize(model, dataset, preset=presets[recipe.preset], subset_size=len(samples),
                                      fast_bias_correction=recipe.fast_bias_correction, ignored_scope=ignored,
                                      advanced_parameters=advanced)
        else:
            validation = nncf.Dataset(list(zip(inputs, _fp32_labels(model, inputs), strict=True)))
            quantized = nncf.quantize_with_accuracy_control(
                model, dataset, validation, _label_agreement, max_drop=recipe.max_drop,
                preset=presets[recipe.preset], subset_size=len(samples),
                fast_bias_correction=recipe.fast_bias_correction, ignored_scope=ignored,
                advanced_quantization_parameters=advanced)
    finally:
        nncf_logger.setLevel(level)
    log(f"NNCF quantized on {len(inputs)} photos{' and their mirror images' if recipe.mirrored else ''} in "
        f"{time.perf_counter() - began:.0f} s")
    calibration = {"method": "nncf", "images": len(inputs), **asdict(recipe)}
    int8 = replace(meta, precision=INT8_PRECISION,
                   extra={**meta.extra, "calibration": calibration, "openvino": _versions()})
    return save_ir(quantized, Path(xml_path), int8)


def _labels(request, x: np.ndarray) -> np.ndarray:
    """Labels after the official upsample, what dmlcsr-verify's agreement is taken on."""
    from dmlcsr.core.geometry import labels_from_logits

    request.infer({0: x[None]})
    return labels_from_logits(request.get_output_tensor(0).data, x.shape[1:])


def _fp32_labels(model, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    compiled = import_openvino().Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return [_labels(request, x) for x in inputs]


def _label_agreement(compiled, items) -> tuple[float, list[float]]:
    """NNCF's validation function: mean label agreement with FP32, and per photo (for ranking)."""
    request = compiled.create_infer_request()
    values = [float((_labels(request, x) == reference).mean()) for x, reference in items]
    return float(np.mean(values)), values


def _versions() -> dict[str, str]:
    import importlib.metadata

    found = {}
    for name in ("openvino", "nncf"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found
