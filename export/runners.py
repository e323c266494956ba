"""Things that turn a preprocessed batch into logits: PyTorch, or an exported artefact
opened through the runtime's own backends (so verification tests what users will run).

Every runner takes N x 3 x S x S float32 and returns N x C x h x w float32 logits.
"""

from __future__ import annotations

import os
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


class BackendRunner:
    """An exported artefact run through a dmlcsr.runtime backend; knows its own metadata."""

    def __init__(self, path: Path, backend: Backend) -> None:
        if backend.metadata is None:
            raise DmlcsrError(f"{path} carries no dmlcsr metadata, so its preprocessing and classes are "
                              "unknown; verify artefacts written by dmlcsr-export")
        self.path = path
        self.backend = backend
        self.metadata: ModelMetadata = backend.metadata
        self.name = f"{path.name} [{backend.name}]"

    @property
    def input_size(self) -> int:
        height, width = self.metadata.preprocessing.input_size
        if height != width:
            raise DmlcsrError(f"{self.path} expects a {height}x{width} input; dmlcsr-verify handles square inputs "
                              "only (as dmlcsr-export writes them)")
        return int(height)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.backend.run_single(batch), dtype=np.float32)


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
