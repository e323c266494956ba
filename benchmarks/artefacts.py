"""The files exported targets run, made by dmlcsr.export exactly as users make them, into
the bench's work folder, and reused by later runs only when they came from the same
weights and size (engines: the same TensorRT release and GPU architecture too)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from dmlcsr.benchmarks.models import BenchModel
from dmlcsr.benchmarks.targets import BenchContext
from dmlcsr.core.geometry import size_text
from dmlcsr.errors import DmlcsrError


def artefact_path(model: BenchModel, ctx: BenchContext, kind: str, suffix: str = ".onnx") -> Path:
    slug = model.name.lower().replace("-", "")
    return ctx.work_dir / f"{slug}-{model.num_classes}c-{size_text(ctx.input_size)}px-{kind}{suffix}"


def reusable(path: Path, model: BenchModel) -> bool:
    """An artefact from an earlier run counts only if it came from the same weights (and,
    for an engine, the same TensorRT release and GPU architecture)."""
    if not path.is_file():
        return False
    try:
        extra = engine_metadata(path).extra if path.suffix == ".engine" else _artefact_metadata(path).extra
    except DmlcsrError:
        return False
    return extra.get("network") == model.name and extra.get("weights") == model.weights


def _artefact_metadata(path: Path):
    """The metadata of an ONNX file or an OpenVINO IR."""
    from dmlcsr.export.onnx_export import read_metadata

    if path.suffix == ".xml":  # read, not compiled: the rt_info is all that is needed
        from dmlcsr.runtime.backends.openvino_backend import ov_core, read_rt_metadata

        meta = read_rt_metadata(ov_core().read_model(str(path)))
        if meta is None:
            raise DmlcsrError(f"{path} carries no dmlcsr metadata")
        return meta
    return read_metadata(path)


def engine_metadata(path: Path):
    """The engine's metadata, or DmlcsrError if it was built elsewhere."""
    import tensorrt
    import torch

    from dmlcsr.runtime.backends.tensorrt_backend import check_engine_compatible

    major, minor = torch.cuda.get_device_capability()
    return check_engine_compatible(path, tensorrt.__version__, f"{major}.{minor}")


def cached(model: BenchModel, ctx: BenchContext, kind: str, make: Callable[[Path], object],
           suffix: str = ".onnx") -> Path:
    """The artefact ``kind`` of ``model``: from this run, from an earlier one with the same
    weights, or made now by ``make(path)``."""
    key = (model.name, kind)
    if key not in ctx.artefacts:
        path = artefact_path(model, ctx, kind, suffix)
        if not reusable(path, model):
            make(path)
        ctx.artefacts[key] = path
    return ctx.artefacts[key]


def fp32_onnx(model: BenchModel, ctx: BenchContext) -> Path:
    """The FP32 ONNX file dmlcsr-export writes for ``model`` (EAGRNet's logits output only)."""
    from dmlcsr.export.onnx_export import deploy_metadata, export_onnx

    meta = deploy_metadata(model.num_classes, input_size=ctx.input_size, network=model.name, weights=model.weights)
    return cached(model, ctx, "fp32", lambda path: export_onnx(model.exportable(), path, meta, ctx.input_size))


def int8_onnx(model: BenchModel, ctx: BenchContext) -> Path:
    """The INT8 QDQ ONNX file dmlcsr-export makes from the FP32 one, calibrated (its default
    method) on the real face photos shipped with dmlcsr, preprocessed as the runtime does."""
    from dmlcsr.export.quantize import quantize_int8

    def make(path: Path) -> None:
        quantize_int8(fp32_onnx(model, ctx), path, calibration(ctx))

    return cached(model, ctx, "int8", make)


def fp16_onnx(model: BenchModel, ctx: BenchContext) -> Path:
    """The FP16 twin dmlcsr-export writes (TensorRT >= 11 builds fp16 engines from it)."""
    from dmlcsr.export.fp16 import convert_fp16

    return cached(model, ctx, "fp16", lambda path: convert_fp16(fp32_onnx(model, ctx), path))


def openvino_fp32_ir(model: BenchModel, ctx: BenchContext) -> Path:
    """The FP32 OpenVINO IR dmlcsr-export --openvino writes from the FP32 ONNX file."""
    from dmlcsr.export.openvino_export import write_fp32_ir

    return cached(model, ctx, "ov-fp32", lambda path: write_fp32_ir(fp32_onnx(model, ctx), path), ".xml")


def openvino_int8_ir(model: BenchModel, ctx: BenchContext) -> Path:
    """The INT8 IR dmlcsr-export --openvino --int8 writes (NNCF, its default recipe),
    calibrated on the real face photos shipped with dmlcsr."""
    from dmlcsr.export.openvino_export import write_int8_ir

    def make(path: Path) -> None:
        write_int8_ir(fp32_onnx(model, ctx), path, calibration(ctx), log=lambda _message: None)

    return cached(model, ctx, "ov-int8", make, ".xml")


def calibration(ctx: BenchContext):
    """The shipped face photos preprocessed at the bench's input size, loaded once."""
    from dmlcsr.export.face_inputs import default_image_dir
    from dmlcsr.export.quantize import load_calibration_inputs

    if ctx.calibration is None:
        ctx.calibration = load_calibration_inputs(default_image_dir(), ctx.input_size)
    return ctx.calibration


def tensorrt_engine(model: BenchModel, batch: int, precision: str, ctx: BenchContext) -> Path:
    """A fixed-batch engine built by dmlcsr.export.tensorrt_build (timing cache shared in
    the work folder)."""
    from dmlcsr.export.tensorrt_build import BatchProfile, build_engine, build_plan

    def make(path: Path) -> None:
        source, strongly_typed = build_plan(OnnxSources(model, ctx), precision)
        build_engine(source, path, precision, BatchProfile(batch, batch, batch), strongly_typed,
                     timing_cache=ctx.work_dir / "tensorrt.timing-cache")

    return cached(model, ctx, f"trt-{precision}-b{batch}", make, ".engine")


class OnnxSources(Mapping):
    """The ONNX files of one model by precision, each made only when the engine builder
    asks for it (TensorRT 10 builds fp16 from the fp32 file, TensorRT 11 from the fp16 one)."""

    makers = {"fp32": fp32_onnx, "fp16": fp16_onnx, "int8-qdq": int8_onnx}

    def __init__(self, model: BenchModel, ctx: BenchContext) -> None:
        self.model, self.ctx = model, ctx

    def __getitem__(self, precision: str) -> Path:
        return self.makers[precision](self.model, self.ctx)

    def __contains__(self, precision: object) -> bool:  # without making the file
        return precision in self.makers

    def __iter__(self):
        return iter(self.makers)

    def __len__(self) -> int:
        return len(self.makers)
