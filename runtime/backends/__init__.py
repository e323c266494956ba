"""Inference backends, one file each, behind one small interface.

``open_backend`` picks the backend from the file's suffix; each backend imports its
library (onnxruntime, tensorrt) only when a model is opened, so importing the runtime
stays light and works without either installed.
"""

from __future__ import annotations

from pathlib import Path

from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.backends.base import Backend, TensorSpec

ONNX_SUFFIXES = (".onnx",)
TENSORRT_SUFFIXES = (".engine", ".plan")
DEVICES = ("auto", "cpu", "cuda")

__all__ = ["Backend", "TensorSpec", "open_backend", "DEVICES"]


def open_backend(path: str | Path, device: str = "auto", threads: int | None = None) -> Backend:
    """Load ``path`` with the backend its suffix names: .onnx -> ONNX Runtime (best provider
    present for ``device``), .engine/.plan -> TensorRT. ``threads`` caps CPU threads (ONNX
    Runtime only). Raises DmlcsrError for missing files, unknown suffixes and bad devices."""
    path = Path(path)
    if device not in DEVICES:
        raise DmlcsrError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if not path.is_file():
        raise DmlcsrError(f"model file not found: {path}" if not path.exists() else f"{path} is not a file")
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        from dmlcsr.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, device=device, threads=threads)
    if suffix in TENSORRT_SUFFIXES:
        from dmlcsr.runtime.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(path, device=device)
    hint = "; export checkpoints with dmlcsr-export first" if suffix in (".pth", ".pt", ".ckpt", ".tar") else ""
    raise DmlcsrError(f"{path} has an unknown model type {suffix or '(no suffix)'!r}: pass an .onnx file or a "
                      f"TensorRT .engine/.plan{hint}")
