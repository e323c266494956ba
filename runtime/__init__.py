"""Torch-free runtime: image in, label map out, over ONNX Runtime or TensorRT."""
