"""Torch-free runtime: image in, label map out, over ONNX Runtime or TensorRT.

    from dmlcsr.runtime import FaceParser
    parser = FaceParser("dmlcsr.onnx")           # or an engine: "dmlcsr.engine"
    labels = parser.parse("face.jpg")            # H x W uint8 at the image's own size
    names = parser.label_names                   # labels[y, x] indexes these

Imports numpy and OpenCV only; the backend's library loads when a model is opened.
"""

from dmlcsr.runtime.backends import open_backend
from dmlcsr.runtime.images import load_image
from dmlcsr.runtime.parser import FaceParser

__all__ = ["FaceParser", "load_image", "open_backend"]
