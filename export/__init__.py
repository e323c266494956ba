"""ONNX / INT8 QDQ / TensorRT / Triton export and verification against PyTorch (needs torch)."""
