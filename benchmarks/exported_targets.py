"""Targets that run exported artefacts: ONNX Runtime (CPU fp32, CPU INT8 QDQ, CUDA EP) and
TensorRT engines. The artefacts are written by dmlcsr.export, exactly as users make them,
into the bench's work folder and reused by later runs with the same weights and size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dmlcsr.benchmarks.environment import int8_note
from dmlcsr.benchmarks.models import BenchModel
from dmlcsr.benchmarks.targets import BenchContext, Prepared, Target
from dmlcsr.errors import DmlcsrError

INPUT = "input"


def artefact_path(model: BenchModel, ctx: BenchContext, kind: str, suffix: str = ".onnx") -> Path:
    slug = model.name.lower().replace("-", "")
    return ctx.work_dir / f"{slug}-{model.num_classes}c-{ctx.input_size}px-{kind}{suffix}"


def reusable(path: Path, model: BenchModel) -> bool:
    """An artefact from an earlier run counts only if it came from the same weights."""
    if not path.is_file():
        return False
    from dmlcsr.export.onnx_export import read_metadata

    try:
        extra = read_metadata(path).extra
    except DmlcsrError:
        return False
    return extra.get("network") == model.name and extra.get("weights") == model.weights


def fp32_onnx(model: BenchModel, ctx: BenchContext) -> Path:
    """The FP32 ONNX file dmlcsr-export writes for ``model`` (EAGRNet's logits output only)."""
    key = (model.name, "fp32")
    if key in ctx.artefacts:
        return ctx.artefacts[key]
    path = artefact_path(model, ctx, "fp32")
    if not reusable(path, model):
        from dmlcsr.export.onnx_export import deploy_metadata, export_onnx

        meta = deploy_metadata(model.num_classes, input_size=ctx.input_size, network=model.name,
                               weights=model.weights)
        export_onnx(model.exportable(), path, meta, input_size=ctx.input_size)
    ctx.artefacts[key] = path
    return path


def int8_onnx(model: BenchModel, ctx: BenchContext) -> Path:
    """The INT8 QDQ ONNX file dmlcsr-export makes from the FP32 one, calibrated (its default
    method) on the real face photos shipped with dmlcsr, preprocessed as the runtime does."""
    key = (model.name, "int8")
    if key in ctx.artefacts:
        return ctx.artefacts[key]
    path = artefact_path(model, ctx, "int8")
    if not reusable(path, model):
        from dmlcsr.export.face_inputs import default_image_dir
        from dmlcsr.export.quantize import load_calibration_inputs, quantize_int8

        if ctx.calibration is None:
            ctx.calibration = load_calibration_inputs(default_image_dir(), ctx.input_size)
        quantize_int8(fp32_onnx(model, ctx), path, ctx.calibration)
    ctx.artefacts[key] = path
    return path


def ort_session(path: Path, providers: list, threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=providers)


def missing_module(name: str, hint: str) -> str | None:
    """A skip reason when ``name`` cannot be imported."""
    try:
        found = importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        found = False
    return None if found else f"{name} is not importable ({hint})"


class OrtCpu(Target):
    device = "cpu"
    precision = "fp32"

    def skip_reason(self, ctx: BenchContext) -> str | None:
        return missing_module("onnxruntime", "pip install 'dmlcsr[export]'")

    def artefact(self, model: BenchModel, ctx: BenchContext) -> Path:
        return fp32_onnx(model, ctx)

    def prepare(self, model: BenchModel, batch: int, ctx: BenchContext) -> Prepared:
        session = ort_session(self.artefact(model, ctx), ["CPUExecutionProvider"], ctx.threads)
        feeds = {INPUT: ctx.example_batch(batch)}
        return Prepared(lambda: session.run(None, feeds), note=self.note(ctx))

    def note(self, ctx: BenchContext) -> str:
        return ""


class OrtCpuFp32(OrtCpu):
    name = "ort-cpu-fp32"
    description = "ONNX Runtime, CPU EP, float32 ONNX from dmlcsr.export"


class OrtCpuInt8(OrtCpu):
    name = "ort-cpu-int8"
    description = "ONNX Runtime, CPU EP, INT8 QDQ ONNX (static quantisation on real faces)"

    def skip_reason(self, ctx: BenchContext) -> str | None:
        return super().skip_reason(ctx) or missing_module(
            "dmlcsr.export.quantize", "this dmlcsr has no INT8 quantisation yet")

    def artefact(self, model: BenchModel, ctx: BenchContext) -> Path:
        return int8_onnx(model, ctx)

    def note(self, ctx: BenchContext) -> str:
        return int8_note(ctx.cpu)


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

        providers = [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "EXHAUSTIVE"}), "CPUExecutionProvider"]
        session = ort_session(fp32_onnx(model, ctx), providers, ctx.threads)
        binding = session.io_binding()
        binding.bind_ortvalue_input(INPUT, ort.OrtValue.ortvalue_from_numpy(ctx.example_batch(batch), "cuda", 0))
        for output in session.get_outputs():
            binding.bind_output(output.name, "cuda")
        # run_with_iobinding returns once the GPU is done (ORT synchronises the EP), so
        # the host clock is right; input and logits stay on the GPU, as with torch-cuda
        return Prepared(lambda: session.run_with_iobinding(binding), note="no host copies (I/O binding)")


class TensorRt(Target):
    """An engine built by dmlcsr.export's TensorRT builder, run by the runtime's backend."""

    device = "cuda"
    precision = "fp16"

    def skip_reason(self, ctx: BenchContext) -> str | None:
        from dmlcsr.benchmarks.torch_targets import no_gpu_reason

        return (missing_module("tensorrt", "pip install 'dmlcsr[trt]' on a machine with an NVIDIA GPU")
                or no_gpu_reason()
                or missing_module("dmlcsr.export.tensorrt", "this dmlcsr has no TensorRT builder yet"))

    def prepare(self, model: BenchModel, batch: int, ctx: BenchContext) -> Prepared:
        from dmlcsr.export.tensorrt import build_engine
        from dmlcsr.runtime.backends.tensorrt_backend import TensorRTBackend

        key = (model.name, f"trt-{self.precision}-b{batch}")
        if key not in ctx.artefacts:
            onnx_path = int8_onnx(model, ctx) if self.precision == "int8" else fp32_onnx(model, ctx)
            engine = artefact_path(model, ctx, f"{self.precision}-b{batch}", ".engine")
            ctx.artefacts[key] = build_engine(onnx_path, engine, precision=self.precision,
                                              batch=(batch, batch, batch))
        backend = TensorRTBackend(ctx.artefacts[key], device="cuda")
        feeds = {backend.inputs[0].name: ctx.example_batch(batch)}
        return Prepared(lambda: backend.run(feeds), note="includes host<->GPU copies of input and logits")


class TensorRtFp16(TensorRt):
    name = "tensorrt-fp16"
    description = "TensorRT engine, FP16"


class TensorRtInt8(TensorRt):
    name = "tensorrt-int8"
    description = "TensorRT engine from the INT8 QDQ ONNX"
    precision = "int8"


EXPORTED_TARGETS = (OrtCpuFp32, OrtCpuInt8, OrtCudaFp32, TensorRtFp16, TensorRtInt8)
