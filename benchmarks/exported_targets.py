"""Targets that run exported artefacts through the runtime's backend registry, as users run
them: ONNX Runtime (CPU fp32, CPU INT8 QDQ, CUDA EP), OpenVINO (CPU fp32, NNCF INT8, bf16)
and TensorRT engines. The artefacts are written by dmlcsr.export, exactly as users make
them, into the bench's work folder and reused by later runs with the same weights and size."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path

from dmlcsr.benchmarks.models import BenchModel
from dmlcsr.benchmarks.targets import BenchContext, Prepared, Target
from dmlcsr.core.cpu import bf16_note, int8_note
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.backends import Backend, open_backend
from dmlcsr.runtime.backends.registry import entry_for

INPUT = "input"


def artefact_path(model: BenchModel, ctx: BenchContext, kind: str, suffix: str = ".onnx") -> Path:
    slug = model.name.lower().replace("-", "")
    return ctx.work_dir / f"{slug}-{model.num_classes}c-{ctx.input_size}px-{kind}{suffix}"


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


def missing_module(name: str, hint: str) -> str | None:
    """A skip reason when ``name`` cannot be imported."""
    try:
        found = importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        found = False
    return None if found else f"{name} is not importable ({hint})"


class RuntimeCpu(Target):
    """An exported artefact on the CPU through dmlcsr.runtime's backend registry (what
    FaceParser runs), timed on one fixed batch."""

    device = "cpu"
    engine = "onnxruntime"
    inference_precision = "f32"
    #: the file this target runs, made (or reused) in the work folder
    artefact: Callable[[BenchModel, BenchContext], Path] = staticmethod(fp32_onnx)
    #: what to say of this CPU next to the figures (INT8: VNNI or not; bf16: native or not)
    cpu_note: Callable[[dict], str] | None = None

    def skip_reason(self, ctx: BenchContext) -> str | None:
        availability = entry_for(self.engine).is_available()
        return None if availability else availability.reason

    def open(self, model: BenchModel, ctx: BenchContext) -> Backend:
        return open_backend(self.artefact(model, ctx), "cpu", ctx.threads, engine=self.engine,
                            inference_precision=self.inference_precision)

    def prepare(self, model: BenchModel, batch: int, ctx: BenchContext) -> Prepared:
        backend = self.open(model, ctx)
        feeds = {backend.inputs[0].name: ctx.example_batch(batch)}
        return Prepared(lambda: backend.run(feeds), note=self.cpu_note(ctx.cpu) if self.cpu_note else "")


class OrtCpuFp32(RuntimeCpu):
    name = "ort-cpu-fp32"
    description = "ONNX Runtime, CPU EP, float32 ONNX from dmlcsr.export"


class OrtCpuInt8(RuntimeCpu):
    name = "ort-cpu-int8"
    description = "ONNX Runtime, CPU EP, INT8 QDQ ONNX (the TensorRT source; static quantisation on real faces)"
    artefact = staticmethod(int8_onnx)
    cpu_note = staticmethod(int8_note)


class OvCpuFp32(RuntimeCpu):
    name = "ov-cpu-fp32"
    description = "OpenVINO, CPU, FP32 IR (inference precision f32, set explicitly)"
    engine = "openvino"
    artefact = staticmethod(openvino_fp32_ir)


class OvCpuInt8(RuntimeCpu):
    name = "ov-cpu-int8"
    description = "OpenVINO, CPU, INT8 IR quantized by NNCF on real faces (dmlcsr-export --openvino --int8)"
    engine = "openvino"
    artefact = staticmethod(openvino_int8_ir)
    cpu_note = staticmethod(int8_note)


class OvCpuBf16(RuntimeCpu):
    name = "ov-cpu-bf16"
    description = "OpenVINO, CPU, FP32 IR computed in bf16 (AMX or AVX512-BF16 CPUs)"
    engine = "openvino"
    inference_precision = "bf16"
    artefact = staticmethod(openvino_fp32_ir)

    cpu_note = staticmethod(bf16_note)

    def skip_reason(self, ctx: BenchContext) -> str | None:
        if not ctx.cpu["native_bf16"]:
            return "this CPU has neither AMX nor AVX512-BF16: OpenVINO refuses bf16 compute here"
        return super().skip_reason(ctx)


class OrtCudaFp32(Target):
    name, device = "ort-cuda-fp32", "cuda"
    description = "ONNX Runtime, CUDA EP, float32, I/O bound on the GPU"

    def skip_reason(self, ctx: BenchContext) -> str | None:
        reason = missing_module("onnxruntime", "pip install 'dmlcsr[gpu]'")
        if reason:
            return reason
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return "this onnxruntime has no CUDAExecutionProvider (pip install 'dmlcsr[gpu]' on a GPU machine)"
        from dmlcsr.benchmarks.torch_targets import no_gpu_reason

        return no_gpu_reason()

    def prepare(self, model: BenchModel, batch: int, ctx: BenchContext) -> Prepared:
        import onnxruntime as ort

        session = open_backend(fp32_onnx(model, ctx), "cuda", ctx.threads, engine="onnxruntime").session
        binding = session.io_binding()
        binding.bind_ortvalue_input(INPUT, ort.OrtValue.ortvalue_from_numpy(ctx.example_batch(batch), "cuda", 0))
        for output in session.get_outputs():
            binding.bind_output(output.name, "cuda")
        # run_with_iobinding returns once the GPU is done (ORT synchronises the EP), so
        # the host clock is right; input and logits stay on the GPU, as with torch-cuda
        return Prepared(lambda: session.run_with_iobinding(binding), note="no host copies (I/O binding)")


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


class TensorRt(Target):
    """A fixed-batch engine built by dmlcsr.export.tensorrt_build (timing cache shared in
    the work folder), run by the runtime's TensorRT backend."""

    device = "cuda"
    precision = "fp16"

    def skip_reason(self, ctx: BenchContext) -> str | None:
        from dmlcsr.benchmarks.torch_targets import no_gpu_reason

        return (missing_module("tensorrt", "pip install 'dmlcsr[trt]' on a machine with an NVIDIA GPU")
                or no_gpu_reason())

    def engine(self, model: BenchModel, batch: int, ctx: BenchContext) -> Path:
        from dmlcsr.export.tensorrt_build import BatchProfile, build_engine, build_plan

        def make(path: Path) -> None:
            source, strongly_typed = build_plan(OnnxSources(model, ctx), self.precision)
            build_engine(source, path, self.precision, BatchProfile(batch, batch, batch), strongly_typed,
                         timing_cache=ctx.work_dir / "tensorrt.timing-cache")

        return cached(model, ctx, f"trt-{self.precision}-b{batch}", make, ".engine")

    def prepare(self, model: BenchModel, batch: int, ctx: BenchContext) -> Prepared:
        backend = open_backend(self.engine(model, batch, ctx), "cuda", engine="tensorrt")
        feeds = {backend.inputs[0].name: ctx.example_batch(batch)}
        return Prepared(lambda: backend.run(feeds), note="includes host<->GPU copies of input and logits")


class TensorRtFp16(TensorRt):
    name = "tensorrt-fp16"
    description = "TensorRT engine, FP16"


class TensorRtInt8(TensorRt):
    name = "tensorrt-int8"
    description = "TensorRT engine from the INT8 QDQ ONNX"
    precision = "int8"


EXPORTED_TARGETS = (OrtCpuFp32, OrtCpuInt8, OvCpuFp32, OvCpuInt8, OvCpuBf16, OrtCudaFp32, TensorRtFp16, TensorRtInt8)
