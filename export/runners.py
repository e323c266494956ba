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
from dmlcsr.runtime.backends import Backend, open_backend


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
    """An exported artefact through a dmlcsr.runtime backend: exactly what the runtime will
    compute, with the artefact's metadata."""

    def __init__(self, path: Path, backend: Backend) -> None:
        if backend.metadata is None:
            raise DmlcsrError(f"{path} carries no dmlcsr metadata, so its preprocessing and classes are "
                              "unknown; verify artefacts written by dmlcsr-export")
        self.path = path
        self.backend = backend
        self.metadata: ModelMetadata = backend.metadata
        self.name = f"{path.name} [{backend.name}]"
        #: the verify thresholds that apply: the artefact's precision, or bf16 when computed in bf16
        self.precision = "bf16" if backend.inference_precision == "bf16" else backend.metadata.precision

    @property
    def input_size(self) -> tuple[int, int]:
        height, width = self.metadata.preprocessing.input_size
        return int(height), int(width)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """N x 3 x H x W float32 -> N x C x h x w float32 logits."""
        return np.asarray(self.backend.run_single(batch), dtype=np.float32)


def open_artefact(path: str | os.PathLike, device: str = "auto", engine: str = "auto",
                  inference_precision: str = "f32", as_written: bool = False) -> BackendRunner:
    """An artefact through the runtime's backend registry (.onnx: ONNX Runtime unless
    ``engine`` says otherwise, .xml: OpenVINO, .engine/.plan: TensorRT). ``as_written``
    runs a QDQ model's own arithmetic, unfused (what TensorRT's int8 kernels compute; ONNX
    Runtime's fused int8 CPU kernels can differ: without VNNI they multiply u8 x s8 pairs
    into saturating int16 sums)."""
    path = Path(path)
    if not path.is_file():
        raise DmlcsrError(f"artefact not found: {path} (pass files written by dmlcsr-export)")
    backend = open_backend(path, device, engine=engine, inference_precision=inference_precision,
                           as_written=as_written)
    return BackendRunner(path, backend)
