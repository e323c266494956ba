"""Inference backends, one file each, behind one small interface, opened through one table.

``open_backend`` picks the engine from the file's suffix (or the one asked for) in
``registry.REGISTRY``; each backend imports its library (onnxruntime, openvino, tensorrt)
only when a model is opened, so importing the runtime stays light and works without any.
"""

from __future__ import annotations

from dmlcsr.runtime.backends.base import DEVICES, Availability, Backend, BackendOptions, TensorSpec
from dmlcsr.runtime.backends.registry import ENGINES, MODEL_SUFFIXES, REGISTRY, choose_engine, open_backend

__all__ = ["Availability", "Backend", "BackendOptions", "TensorSpec", "open_backend", "choose_engine", "DEVICES",
           "ENGINES", "MODEL_SUFFIXES", "REGISTRY"]
