"""ONNX Runtime backend: the best execution provider present, metadata from the file."""

from __future__ import annotations

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

ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
             "tensor(int32)": np.int32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}
PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
#: cuDNN tries every convolution algorithm once per shape and keeps the fastest (DML-CSR's
#: dilated 3x3 convs are where the heuristic choice is slowest)
PROVIDER_OPTIONS = {"CUDAExecutionProvider": {"cudnn_conv_algo_search": "EXHAUSTIVE"}}


def choose_providers(device: str, available: list[str]) -> list[str]:
    """Providers for ``device``: 'cpu', 'cuda' or 'auto' (best present first, CPU last)."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    wanted = [p for p in PROVIDER_PREFERENCE if p in available]
    if device == "cuda" and "CUDAExecutionProvider" not in wanted:
        raise DmlcsrError("device='cuda' but this onnxruntime has no CUDA provider; "
                          "pip install 'dmlcsr[gpu]' (onnxruntime-gpu) or use device='cpu'")
    return wanted


class OnnxRuntimeBackend(Backend):
    """An onnxruntime.InferenceSession over one .onnx file."""

    engine = "onnxruntime"
    library = "onnxruntime"
    install_hint = "pip install onnxruntime (or 'dmlcsr[gpu]' for CUDA)"

    def __init__(self, path: str | Path, options: BackendOptions = DEFAULT_OPTIONS) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise DmlcsrError("onnxruntime is not installed; pip install onnxruntime "
                              "(or 'dmlcsr[gpu]' for CUDA)") from None
        path = Path(path)
        if not path.is_file():
            raise DmlcsrError(f"model file not found: {path}")
        if options.inference_precision != "f32":
            raise DmlcsrError(f"inference precision {options.inference_precision} is an OpenVINO option; open "
                              f"{path.name} with engine='openvino' (--engine openvino) or drop it")
        session_options = ort.SessionOptions()
        if options.threads:
            session_options.intra_op_num_threads = options.threads
        if options.as_written:
            session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        providers = choose_providers(options.device, ort.get_available_providers())
        if options.as_written:
            providers = ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), session_options, providers=providers,
                                                provider_options=[PROVIDER_OPTIONS.get(p, {}) for p in providers])
        except Exception as exc:  # onnxruntime raises its own, untyped, errors
            raise DmlcsrError(f"{path} is not a loadable ONNX model ({first_line(exc)}); re-export it with "
                              "dmlcsr-export") from None
        self.path, self.options = path, options
        custom = self.session.get_modelmeta().custom_metadata_map
        self.metadata = ModelMetadata.from_json(custom[METADATA_KEY]) if METADATA_KEY in custom else None
        provider = self.session.get_providers()[0]
        self.device = "cpu" if provider == "CPUExecutionProvider" else "cuda"
        self.name = (f"onnxruntime[{provider}, {self.precision}"
                     f"{', unfused QDQ arithmetic' if options.as_written else ''}]")
        self._inputs = [self._spec(n) for n in self.session.get_inputs()]
        self._outputs = [self._spec(n) for n in self.session.get_outputs()]

    @staticmethod
    def _spec(node) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else None for d in node.shape)
        return TensorSpec(node.name, shape, np.dtype(ORT_TYPES.get(node.type, np.float32)))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """InferenceSession.run is thread-safe, so no lock is needed here."""
        specs = {s.name: s for s in self._inputs}
        cast = {k: np.ascontiguousarray(v, dtype=specs[k].dtype) if k in specs else v for k, v in feeds.items()}
        names = [o.name for o in self._outputs]
        try:
            results = self.session.run(names, cast)
        except Exception as exc:  # onnxruntime's errors are untyped and multi-line
            raise DmlcsrError(f"onnxruntime failed to run {self.path.name} ({first_line(exc, 300)}); check the "
                              "input shapes against the model's inputs") from None
        return dict(zip(names, results, strict=True))
