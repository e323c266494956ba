"""Targets that run exported artefacts through the runtime's backend registry, as users run
them: ONNX Runtime (CPU fp32, CPU INT8 QDQ, CUDA EP), OpenVINO (CPU fp32, NNCF INT8, bf16)
and TensorRT engines. The files come from artefacts.py (made once, reused by later runs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dmlcsr.benchmarks.artefacts import fp32_onnx, int8_onnx, openvino_fp32_ir, openvino_int8_ir, tensorrt_engine
from dmlcsr.benchmarks.models import BenchModel
from dmlcsr.benchmarks.targets import BenchContext, Prepared, Target, missing_module, no_gpu_reason
from dmlcsr.core.cpu import bf16_note, int8_note
from dmlcsr.runtime.backends import Backend, open_backend
from dmlcsr.runtime.backends.registry import entry_for

INPUT = "input"
Artefact = Callable[[BenchModel, BenchContext], Path]


class RuntimeCpu(Target):
    """An exported artefact on the CPU through dmlcsr.runtime's backend registry (what
    FaceParser runs), timed on one fixed batch. ``artefact`` makes (or reuses) the file;
    ``cpu_note`` says what this CPU means for the figures (INT8: VNNI or not; bf16: native)."""

    def __init__(self, name: str, description: str, engine: str = "onnxruntime", artefact: Artefact = fp32_onnx,
                 cpu_note: Callable[[dict], str] | None = None, inference_precision: str = "f32") -> None:
        super().__init__(name, description)
        self.engine, self.artefact, self.cpu_note = engine, artefact, cpu_note
        self.inference_precision = inference_precision

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


class NativeBf16Cpu(RuntimeCpu):
    """A CPU runtime target that only runs where the CPU computes bf16 natively."""

    def skip_reason(self, ctx: BenchContext) -> str | None:
        if not ctx.cpu["native_bf16"]:
            return "this CPU has neither AMX nor AVX512-BF16: OpenVINO refuses bf16 compute here"
        return super().skip_reason(ctx)


class OrtCudaFp32(Target):
    """The FP32 ONNX on ONNX Runtime's CUDA EP, input and logits bound on the GPU."""

    def skip_reason(self, ctx: BenchContext) -> str | None:
        reason = missing_module("onnxruntime", "pip install 'dmlcsr[gpu]'")
        if reason:
            return reason
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return "this onnxruntime has no CUDAExecutionProvider (pip install 'dmlcsr[gpu]' on a GPU machine)"
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


class TensorRt(Target):
    """A fixed-batch engine in ``precision``, run by the runtime's TensorRT backend."""

    def __init__(self, name: str, description: str, precision: str) -> None:
        super().__init__(name, description, "cuda")
        self.precision = precision

    def skip_reason(self, ctx: BenchContext) -> str | None:
        return (missing_module("tensorrt", "pip install 'dmlcsr[trt]' on a machine with an NVIDIA GPU")
                or no_gpu_reason())

    def prepare(self, model: BenchModel, batch: int, ctx: BenchContext) -> Prepared:
        backend = open_backend(tensorrt_engine(model, batch, self.precision, ctx), "cuda", engine="tensorrt")
        feeds = {backend.inputs[0].name: ctx.example_batch(batch)}
        return Prepared(lambda: backend.run(feeds), note="includes host<->GPU copies of input and logits")


def exported_targets() -> list[Target]:
    """The exported-artefact rows in table order."""
    return [
        RuntimeCpu("ort-cpu-fp32", "ONNX Runtime, CPU EP, float32 ONNX from dmlcsr.export"),
        RuntimeCpu("ort-cpu-int8", "ONNX Runtime, CPU EP, INT8 QDQ ONNX (the TensorRT source; static quantisation "
                   "on real faces)", artefact=int8_onnx, cpu_note=int8_note),
        RuntimeCpu("ov-cpu-fp32", "OpenVINO, CPU, FP32 IR (inference precision f32, set explicitly)",
                   engine="openvino", artefact=openvino_fp32_ir),
        RuntimeCpu("ov-cpu-int8", "OpenVINO, CPU, INT8 IR quantized by NNCF on real faces (dmlcsr-export --openvino "
                   "--int8)", engine="openvino", artefact=openvino_int8_ir, cpu_note=int8_note),
        NativeBf16Cpu("ov-cpu-bf16", "OpenVINO, CPU, FP32 IR computed in bf16 (AMX or AVX512-BF16 CPUs)",
                      engine="openvino", artefact=openvino_fp32_ir, cpu_note=bf16_note, inference_precision="bf16"),
        OrtCudaFp32("ort-cuda-fp32", "ONNX Runtime, CUDA EP, float32, I/O bound on the GPU", "cuda"),
        TensorRt("tensorrt-fp16", "TensorRT engine, FP16", "fp16"),
        TensorRt("tensorrt-int8", "TensorRT engine from the INT8 QDQ ONNX", "int8"),
    ]
