"""FP32 ONNX -> FP16 ONNX for GPU runtimes (ONNX Runtime CUDA, TensorRT strongly typed).

Weights and activations become float16; the input and output stay float32
(``keep_io_types``) so every client feeds and reads the same arrays for any precision and
the runtime's pre/post-processing never changes. ONNX Runtime's converter appends the
I/O casts at the end of the node list, so the graph is re-sorted topologically before
the checker sees it.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import onnx
import onnx_ir

from dmlcsr.errors import DmlcsrError
from dmlcsr.export.onnx_export import read_metadata, set_metadata
from dmlcsr.runtime.output_files import atomic_target


def convert_fp16(fp32_onnx: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Write the FP16 twin of ``fp32_onnx`` (float32 I/O, float16 inside) to ``output``."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    meta = read_metadata(fp32_onnx)
    if meta.precision != "fp32":
        raise DmlcsrError(f"{fp32_onnx} is already {meta.precision}; convert the FP32 export")
    model = convert_float_to_float16(onnx.load(str(fp32_onnx)), keep_io_types=True)
    ir_model = onnx_ir.from_proto(model)
    ir_model.graph.sort()
    model = onnx_ir.to_proto(ir_model)
    set_metadata(model, replace(meta, precision="fp16"))
    output = Path(output)
    with atomic_target(output) as partial:
        onnx.save(model, str(partial))
        onnx.checker.check_model(str(partial), full_check=True)
    return output
