"""TensorRT backend: a serialized engine run with TensorRT 10's Python API on a CUDA stream.

An engine only runs under the TensorRT version and on the GPU architecture (compute
capability) it was built for; deserialising it anywhere else fails deep inside TensorRT or,
worse, crashes. So the JSON sidecar that dmlcsr-export writes beside the engine is read
and checked first, in plain Python (``check_engine_compatible``), and only then is the
engine deserialised. The sidecar also carries the model metadata (labels, preprocessing):
an engine file holds none of it.

Execution: named I/O tensors (engine.get_tensor_name/mode/shape), device buffers
allocated once at the optimisation profile's largest shapes through cuda-python, pinned
host staging buffers, ``context.set_input_shape`` per batch, then
``execute_async_v3`` on a private stream. An execution context is not thread-safe, so
``run`` holds a lock.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dmlcsr.core.metadata import ModelMetadata
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.backends.base import (
    DEFAULT_OPTIONS,
    Backend,
    BackendOptions,
    TensorSpec,
)

REBUILD_HINT = "rebuild the engine on this GPU with dmlcsr-export (or run the .onnx model instead)"


def sidecar_path(engine_path: str | Path) -> Path:
    """The JSON beside an engine: ``model.engine.json``, else ``model.json``."""
    engine_path = Path(engine_path)
    beside = engine_path.with_name(engine_path.name + ".json")
    if beside.exists():
        return beside
    by_stem = engine_path.with_suffix(".json")
    return by_stem if by_stem.exists() else beside


def read_sidecar(engine_path: str | Path) -> tuple[ModelMetadata, dict[str, Any]]:
    """The engine's ModelMetadata and its ``extra["tensorrt"]`` build record."""
    engine_path = Path(engine_path)
    side = sidecar_path(engine_path)
    if not side.is_file():
        raise DmlcsrError(f"{engine_path} has no JSON sidecar ({side.name}): TensorRT engines need the one "
                          "dmlcsr-export writes beside them; copy it along or re-export the engine")
    try:
        text = side.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DmlcsrError(f"cannot read the engine sidecar {side} ({exc}); re-export the engine") from None
    meta = ModelMetadata.from_json(text)
    build = meta.extra.get("tensorrt")
    if not isinstance(build, dict) or not {"version", "compute_capability"} <= build.keys():
        raise DmlcsrError(f"engine sidecar {side} lacks the TensorRT build record (extra.tensorrt with version "
                          "and compute_capability); re-export the engine with dmlcsr-export")
    return meta, build


def normalise_compute_capability(value: object) -> str:
    """'8.6', [8, 6], (8, 6), 8.6 or 'sm_86' -> '8.6'."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        value = ".".join(str(part) for part in value)
    text = str(value).strip().lower().removeprefix("sm_").removeprefix("sm")
    if "." not in text and text.isdigit() and len(text) >= 2:
        text = f"{text[:-1]}.{text[-1]}"
    major, _, minor = text.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise DmlcsrError(f"engine sidecar has an unreadable compute capability {value!r}; re-export the engine")
    return f"{int(major)}.{int(minor)}"


def _release(version: str) -> tuple[str, ...]:
    """TensorRT engines are tied to major.minor.patch; build numbers beyond do not matter."""
    return tuple(str(version).strip().split(".")[:3])


def check_engine_compatible(engine_path: str | Path, running_version: str, running_capability: object,
                            running_gpu: str = "") -> ModelMetadata:
    """Refuse an engine whose sidecar names another TensorRT release or GPU architecture.

    Pure Python, run before the engine is deserialised; the running versions are passed
    in so this is testable without TensorRT or a GPU. Returns the engine's metadata.
    """
    meta, build = read_sidecar(engine_path)
    built_cc = normalise_compute_capability(build["compute_capability"])
    here_cc = normalise_compute_capability(running_capability)
    built_on = f"TensorRT {build['version']} on compute capability {built_cc} ({build.get('gpu_name', '?')})"
    here = f"TensorRT {running_version} on {here_cc} ({running_gpu or '?'})"
    if _release(build["version"]) != _release(running_version) or built_cc != here_cc:
        raise DmlcsrError(f"{Path(engine_path).name} was built for {built_on} but this machine runs {here}; "
                          f"{REBUILD_HINT}")
    return meta


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise DmlcsrError("TensorRT engines need the tensorrt package; pip install 'dmlcsr[trt]' on a machine "
                          "with an NVIDIA GPU, or run the .onnx model") from None
    return tensorrt


def import_cudart():
    """cuda-python's runtime bindings (cuda.bindings.runtime since 12.6, cuda.cudart before)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise DmlcsrError("TensorRT engines need cuda-python for GPU buffers; pip install 'dmlcsr[trt]'") \
                from None
    return cudart


def _cuda(cudart, result: tuple) -> Any:
    """Unpack a cuda-python (error, value...) tuple, raising on a CUDA error."""
    err, *values = result
    if err != cudart.cudaError_t.cudaSuccess:
        raise DmlcsrError(f"CUDA error {getattr(err, 'name', err)}; check the GPU driver and free GPU memory")
    return values[0] if len(values) == 1 else tuple(values)


def native_handle(obj: Any) -> int:
    """A cuda-python object's raw handle (get_cuda_native_handle where present; int() is deprecated there)."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle

        return get_cuda_native_handle(obj)
    except (ImportError, TypeError):  # older cuda-python, or a type it has no getter for
        return int(obj)


def current_gpu(cudart) -> tuple[str, str]:
    """(compute capability 'major.minor', name) of the current CUDA device."""
    try:
        device = _cuda(cudart, cudart.cudaGetDevice())
        props = _cuda(cudart, cudart.cudaGetDeviceProperties(device))
    except DmlcsrError:
        raise DmlcsrError("no usable CUDA GPU found (needed for TensorRT engines); run the .onnx model with "
                          "device='cpu'") from None
    name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
    return f"{props.major}.{props.minor}", name


class TensorRTBackend(Backend):
    """One deserialised engine with its execution context, stream and buffers."""

    engine = "tensorrt"
    library = "tensorrt"
    install_hint = "pip install 'dmlcsr[trt]' on a machine with an NVIDIA GPU, or run the .onnx model"
    device = "cuda"

    def __init__(self, path: str | Path, options: BackendOptions = DEFAULT_OPTIONS) -> None:
        self.path, self.options = Path(path), options
        if options.device == "cpu":
            raise DmlcsrError(f"{self.path.name} is a TensorRT engine and runs on a CUDA GPU only; pass the "
                              ".onnx model for device='cpu'")
        if options.inference_precision != "f32" or options.as_written:
            raise DmlcsrError(f"{self.path.name} is a TensorRT engine: its precision was fixed when it was built; "
                              "drop the inference precision / as-written options")
        if not self.path.is_file():
            raise DmlcsrError(f"model file not found: {self.path}")
        read_sidecar(self.path)  # a missing/broken sidecar is reported before TensorRT is even imported
        trt = import_tensorrt()
        self._cudart = cudart = import_cudart()
        capability, gpu = current_gpu(cudart)
        self.metadata = check_engine_compatible(self.path, trt.__version__, capability, gpu)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        try:
            self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        except Exception:  # some TensorRT builds raise instead of returning None
            self._engine = None
        if self._engine is None:
            raise DmlcsrError(f"TensorRT could not deserialise {self.path} (truncated, or not an engine); "
                              f"{REBUILD_HINT}")
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise DmlcsrError(f"TensorRT could not create an execution context for {self.path.name} (GPU memory "
                              "full?); free GPU memory and retry")
        self.name = f"tensorrt[{trt.__version__}, {gpu}, {self.precision}]"
        self._lock = threading.Lock()
        self._device: dict[str, int] = {}
        self._host: dict[str, np.ndarray] = {}
        self._profile: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._stream = _cuda(cudart, cudart.cudaStreamCreate())
        self._inputs, self._outputs = self._describe_io(trt)
        self._allocate()

    def _describe_io(self, trt) -> tuple[list[TensorSpec], list[TensorSpec]]:
        inputs, outputs = [], []
        for index in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(index)
            shape = tuple(self._engine.get_tensor_shape(name))
            spec = TensorSpec(name, tuple(d if d >= 0 else None for d in shape),
                              np.dtype(trt.nptype(self._engine.get_tensor_dtype(name))))
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                inputs.append(spec)
                if -1 in shape:
                    low, _opt, high = self._engine.get_tensor_profile_shape(name, 0)
                    self._profile[name] = (tuple(low), tuple(high))
                else:
                    self._profile[name] = (shape, shape)
            else:
                outputs.append(spec)
        return inputs, outputs

    def _allocate(self) -> None:
        """Device and pinned host buffers at the profile's largest shapes, bound once."""
        for spec in self._inputs:
            self._context.set_input_shape(spec.name, self._profile[spec.name][1])
        largest = {spec.name: self._profile[spec.name][1] for spec in self._inputs}
        largest.update({spec.name: tuple(self._context.get_tensor_shape(spec.name)) for spec in self._outputs})
        for spec in self._inputs + self._outputs:
            nbytes = int(np.prod(largest[spec.name])) * spec.dtype.itemsize
            self._device[spec.name] = _cuda(self._cudart, self._cudart.cudaMalloc(nbytes))
            pinned = _cuda(self._cudart, self._cudart.cudaMallocHost(nbytes))
            self._host[spec.name] = np.frombuffer((ctypes.c_byte * nbytes).from_address(int(pinned)), spec.dtype)
            self._context.set_tensor_address(spec.name, int(self._device[spec.name]))

    @property
    def batch_limits(self) -> tuple[int, int | None]:
        low, high = self._profile[self._inputs[0].name]
        return int(low[0]), int(high[0])

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart = self._cudart
        with self._lock:
            for spec in self._inputs:
                array = np.ascontiguousarray(feeds[spec.name], dtype=spec.dtype)
                low, high = self._profile[spec.name]
                if len(array.shape) != len(low) or any(not lo <= d <= hi for d, lo, hi in zip(array.shape, low, high,
                                                                                              strict=True)):
                    raise DmlcsrError(f"input {spec.name} of shape {array.shape} is outside the engine's profile "
                                      f"{low}..{high}; rebuild the engine with a wider --batch range")
                if not self._context.set_input_shape(spec.name, array.shape):
                    raise DmlcsrError(f"TensorRT refused input shape {array.shape} for {spec.name}; rebuild the "
                                      "engine for this shape")
                staging = self._host[spec.name][:array.size]
                staging[:] = array.ravel()
                _cuda(cudart, cudart.cudaMemcpyAsync(self._device[spec.name], staging.ctypes.data, array.nbytes,
                                                     cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self._stream))
            if not self._context.execute_async_v3(native_handle(self._stream)):
                raise DmlcsrError(f"TensorRT failed to run {self.path.name}; see the TensorRT log above")
            shapes = {spec.name: tuple(self._context.get_tensor_shape(spec.name)) for spec in self._outputs}
            for spec in self._outputs:
                size = int(np.prod(shapes[spec.name]))
                staging = self._host[spec.name][:size]
                _cuda(cudart, cudart.cudaMemcpyAsync(staging.ctypes.data, self._device[spec.name],
                                                     size * spec.dtype.itemsize,
                                                     cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self._stream))
            _cuda(cudart, cudart.cudaStreamSynchronize(self._stream))
            return {spec.name: self._host[spec.name][:int(np.prod(shapes[spec.name]))].reshape(shapes[spec.name])
                    .copy() for spec in self._outputs}

    def close(self) -> None:
        """Free the GPU and pinned buffers and the stream (also done when collected)."""
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        for pointer in getattr(self, "_device", {}).values():
            cudart.cudaFree(pointer)
        for array in getattr(self, "_host", {}).values():
            cudart.cudaFreeHost(array.ctypes.data)
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
        self._device, self._host, self._stream, self._cudart = {}, {}, None, None

    def __del__(self) -> None:
        self.close()
