"""The runtime stays light: importing it loads neither torch, Ray nor a backend library."""

from __future__ import annotations

import subprocess
import sys

RUNTIME_MODULES = ("dmlcsr.runtime", "dmlcsr.runtime.cli", "dmlcsr.runtime.visualize", "dmlcsr.core.pipeline",
                   "dmlcsr.runtime.backends.onnxruntime_backend", "dmlcsr.runtime.backends.tensorrt_backend",
                   "dmlcsr.runtime.distributed")
HEAVY = ("torch", "onnxruntime", "tensorrt", "onnx", "ray", "pyarrow")


def test_runtime_imports_no_torch_ray_or_backend_library_until_a_model_is_opened():
    code = ("import sys\n"
            f"for name in {RUNTIME_MODULES!r}: __import__(name)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
