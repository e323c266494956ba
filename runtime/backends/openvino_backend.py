"""OpenVINO backend: Intel's CPU inference engine, for IR files (.xml + .bin) and, when asked
for, .onnx files.

Why it is here: OpenVINO runs NNCF's INT8 IR with VNNI/AMX int8 kernels, the fastest
accurate CPU path this toolkit has. Its FP32 is explicit: without INFERENCE_PRECISION_HINT
the CPU plugin computes in bf16 on CPUs with AMX, which would silently change the labels;
bf16 is offered as a choice of its own (``inference_precision="bf16"``).

Metadata: dmlcsr-export stores the metadata JSON in the IR's rt_info under ``dmlcsr``; an
.onnx read through OpenVINO carries it as rt_info ``framework/dmlcsr`` (OpenVINO's ONNX
reader keeps metadata_props there).

Requests: a compiled model serves several infer requests at once. ``run`` takes one from a
pool (thread-safe without a global lock); ``run_many`` keeps several in flight through an
AsyncInferQueue, which with ``throughput=True`` (PERFORMANCE_HINT THROUGHPUT: several CPU
streams) is how folders and videos are parsed fastest.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dmlcsr.core.metadata import METADATA_KEY, ModelMetadata
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.backends.base import (
    DEFAULT_OPTIONS,
    Backend,
    BackendOptions,
    TensorSpec,
    first_line,
)

INSTALL_HINT = "pip install 'dmlcsr[openvino]'"
OV_TYPES = {"f32": np.float32, "f16": np.float16, "i64": np.int64, "i32": np.int32, "u8": np.uint8, "i8": np.int8}
_core = None
_core_lock = threading.Lock()


def ov_core():
    """One openvino.Core per process (creating one loads the plugins: ~0.1 s)."""
    global _core
    with _core_lock:
        if _core is None:
            import openvino

            _core = openvino.Core()
        return _core


def read_rt_metadata(model) -> ModelMetadata | None:
    """The dmlcsr metadata in an OpenVINO model's rt_info (IR: ``dmlcsr``; ONNX: ``framework/dmlcsr``)."""
    for key in ([METADATA_KEY], ["framework", METADATA_KEY]):
        if model.has_rt_info(key):
            return ModelMetadata.from_json(model.get_rt_info(key).astype(str))
    return None


def cpu_has_bf16() -> bool:
    return "BF16" in ov_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoBackend(Backend):
    """One model compiled for OpenVINO's CPU plugin, with a pool of infer requests."""

    engine = "openvino"
    library = "openvino"
    install_hint = INSTALL_HINT

    def __init__(self, path: str | Path, options: BackendOptions = DEFAULT_OPTIONS) -> None:
        self.path = path = Path(path)
        if options.device == "cuda":
            raise DmlcsrError(f"OpenVINO runs {path.name} on the CPU only here; use device='cpu', or an .onnx with "
                              "ONNX Runtime / a TensorRT engine for CUDA")
        if options.as_written:
            raise DmlcsrError("running a graph as written (unfused QDQ) is an ONNX Runtime option; open the .onnx "
                              "with engine='onnxruntime'")
        try:
            import openvino  # noqa: F401 - the import error is the message users need
        except ImportError:
            raise DmlcsrError(f"{path.name} needs OpenVINO, which is not installed; {INSTALL_HINT}") from None
        if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
            raise DmlcsrError(f"OpenVINO IR {path.name} has no weights file {path.with_suffix('.bin').name} beside "
                              "it; copy the .bin along or re-export with dmlcsr-export --openvino")
        core = ov_core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # OpenVINO raises RuntimeError with multi-line C++ context
            kind = "OpenVINO IR" if path.suffix.lower() == ".xml" else "ONNX model"
            raise DmlcsrError(f"{path} is not a loadable {kind} ({first_line(exc)}); re-export it with "
                              "dmlcsr-export --openvino") from None
        self.metadata = read_rt_metadata(model)
        if options.inference_precision == "bf16" and not cpu_has_bf16():
            raise DmlcsrError("inference_precision='bf16' needs a CPU with bf16 instructions (AMX or AVX512-BF16) "
                              "and this one has neither; run in f32")
        self.options = options
        config = {"INFERENCE_PRECISION_HINT": options.inference_precision,
                  "PERFORMANCE_HINT": "THROUGHPUT" if options.throughput else "LATENCY"}
        if options.threads:
            config["INFERENCE_NUM_THREADS"] = options.threads
        try:
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:
            raise DmlcsrError(f"OpenVINO could not compile {path.name} for the CPU ({first_line(exc)}); re-export "
                              "it with dmlcsr-export --openvino") from None
        self.streams = int(self.compiled.get_property("NUM_STREAMS"))
        if options.throughput:
            self.requests_in_flight = max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.name = f"openvino[CPU, {self.precision}, {options.inference_precision} compute" \
                    f"{f', {self.streams} streams' if options.throughput else ''}]"
        self._inputs = [self._spec(port) for port in model.inputs]
        self._outputs = [self._spec(port) for port in model.outputs]
        self._pool: queue.SimpleQueue = queue.SimpleQueue()

    @staticmethod
    def _spec(port) -> TensorSpec:
        shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
        return TensorSpec(port.any_name, shape, np.dtype(OV_TYPES.get(port.get_element_type().get_type_name(),
                                                                      np.float32)))

    def _request(self):
        """An idle infer request from the pool, or a new one (the pool grows to the number of
        threads calling at once, as ONNX Runtime's sessions allow concurrent calls)."""
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return self.compiled.create_infer_request()

    def _feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        specs = {s.name: s for s in self._inputs}
        unknown = set(feeds) - set(specs)
        if unknown:
            raise DmlcsrError(f"{self.path.name} has no input(s) {sorted(unknown)}; its inputs are {sorted(specs)}")
        return {name: np.ascontiguousarray(array, dtype=specs[name].dtype) for name, array in feeds.items()}

    def _results(self, request) -> dict[str, np.ndarray]:
        return {spec.name: request.get_output_tensor(index).data.copy() for index, spec in enumerate(self._outputs)}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = self._feeds(feeds)
        request = self._request()
        try:
            request.infer(inputs)
            return self._results(request)
        except Exception as exc:  # shape mismatches surface as RuntimeError deep in the plugin
            raise DmlcsrError(f"OpenVINO failed to run {self.path.name} ({first_line(exc, 300)}); check the input "
                              "shapes against the model's inputs") from None
        finally:
            self._pool.put(request)

    def run_many(self, batches: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """All ``batches`` through an AsyncInferQueue of the compiled model's optimal size,
        results in order (each copied out in the callback, before its request is reused)."""
        if len(batches) <= 1 or self.requests_in_flight == 1:
            return super().run_many(batches)
        from openvino import AsyncInferQueue

        results: list[dict[str, np.ndarray] | None] = [None] * len(batches)

        def collect(request, index: int) -> None:
            results[index] = self._results(request)

        jobs = AsyncInferQueue(self.compiled, min(self.requests_in_flight, len(batches)))
        jobs.set_callback(collect)
        inputs = [self._feeds(feeds) for feeds in batches]
        try:
            for index, feeds in enumerate(inputs):
                jobs.start_async(feeds, index)
            jobs.wait_all()
        except Exception as exc:  # as in run: the plugin's multi-line RuntimeError
            raise DmlcsrError(f"OpenVINO failed to run {self.path.name} ({first_line(exc, 300)}); check the input "
                              "shapes against the model's inputs") from None
        if any(result is None for result in results):
            raise DmlcsrError(f"OpenVINO returned no result for some requests on {self.path.name}; retry with "
                              "throughput=False")
        return results  # type: ignore[return-value]
