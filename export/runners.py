"""Things that turn a preprocessed batch into logits: PyTorch, or an exported artefact
opened through the runtime's own backends (so verification tests what users will run).

Every runner takes N x 3 x S x S float32 and returns N x C x h x w float32 logits.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from dmlcsr.core.metadata import ModelMetadata
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.backends.base import Backend

ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


class Runner(Protocol):
    """A model behind one call: preprocessed batch in, float32 logits out."""

    name: str

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


class TorchRunner:
    """The PyTorch reference, in eval mode, float32, on CPU."""

    def __init__(self, model: nn.Module, name: str = "pytorch") -> None:
        self.model = model.eval().float()
        self.name = name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.from_numpy(np.ascontiguousarray(batch, np.float32))).numpy()


class ArtefactRunner(ABC):
    """An exported artefact with its dmlcsr metadata; subclasses say how it is run."""

    def __init__(self, path: Path, metadata: ModelMetadata | None, engine: str) -> None:
        if metadata is None:
            raise DmlcsrError(f"{path} carries no dmlcsr metadata, so its preprocessing and classes are "
                              "unknown; verify artefacts written by dmlcsr-export")
        self.path = path
        self.metadata: ModelMetadata = metadata
        self.name = f"{path.name} [{engine}]"

    @property
    def input_size(self) -> int:
        height, width = self.metadata.preprocessing.input_size
        if height != width:
            raise DmlcsrError(f"{self.path} expects a {height}x{width} input; dmlcsr-verify handles square inputs "
                              "only (as dmlcsr-export writes them)")
        return int(height)

    @abstractmethod
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """N x 3 x S x S float32 -> N x C x h x w float32 logits."""


class BackendRunner(ArtefactRunner):
    """The artefact through a dmlcsr.runtime backend: exactly what the runtime will compute."""

    def __init__(self, path: Path, backend: Backend) -> None:
        super().__init__(path, backend.metadata, backend.name)
        self.backend = backend

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.backend.run_single(batch), dtype=np.float32)


class QdqMathRunner(ArtefactRunner):
    """A QDQ model's own arithmetic: ONNX Runtime with graph optimisations off, so each
    DequantizeLinear -> float op -> QuantizeLinear runs as written, as TensorRT's exact
    int32-accumulating int8 kernels compute it. Its fused int8 CPU kernels can differ:
    on x86 CPUs without VNNI they multiply u8 x s8 pairs into saturating int16 sums."""

    def __init__(self, artefact: ArtefactRunner) -> None:
        import onnxruntime as ort

        super().__init__(artefact.path, artefact.metadata, "onnxruntime, QDQ math unfused")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.session = ort.InferenceSession(str(artefact.path), options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        inputs = {self.metadata.input_name: np.ascontiguousarray(batch, np.float32)}
        return np.asarray(self.session.run([self.metadata.output_name], inputs)[0], dtype=np.float32)


def open_artefact(path: str | os.PathLike, device: str = "auto") -> BackendRunner:
    """An .onnx file through ONNX Runtime, an .engine/.plan through TensorRT."""
    path = Path(path)
    if not path.is_file():
        raise DmlcsrError(f"artefact not found: {path} (pass files written by dmlcsr-export)")
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        from dmlcsr.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

        return BackendRunner(path, OnnxRuntimeBackend(path, device=device))
    if suffix in ENGINE_SUFFIXES:
        try:
            from dmlcsr.runtime.backends.tensorrt_backend import TensorRTBackend
        except ImportError as exc:
            raise DmlcsrError(f"cannot run {path}: this dmlcsr has no TensorRT backend ({exc}); "
                              "pip install 'dmlcsr[trt]' on a machine with an NVIDIA GPU") from None
        return BackendRunner(path, TensorRTBackend(path, device))
    raise DmlcsrError(f"{path}: unknown artefact type {suffix!r}; pass .onnx files or TensorRT engines "
                      f"({', '.join(ENGINE_SUFFIXES)})")
