"""ONNX -> serialized TensorRT engine, with the JSON sidecar a C++ program can read.

Written against TensorRT 10's Python API (``tensorrt`` is an optional extra). Two ways to
get reduced precision, chosen by what the installed builder supports:
- weakly typed (TensorRT 10): build from the FP32 ONNX with the FP16 flag, or from the
  QDQ ONNX with INT8 (+FP16 for the layers left in float); TensorRT picks per layer;
- strongly typed (TensorRT >= 11 drops the FP16/INT8 flags and calibrators): the network
  is built with NetworkDefinitionCreationFlag.STRONGLY_TYPED from the file whose types
  say the precision: the FP16 ONNX for fp16, the QDQ ONNX for int8.
INT8 is always explicit (Q/DQ from dmlcsr.export.quantize): implicit calibration is
deprecated in TensorRT 10 and gone in 11.

The engine only runs under the same TensorRT release on the same GPU architecture, so
the sidecar records both (dmlcsr.runtime.backends.tensorrt_backend checks them before
deserialising) along with the I/O tensors, the batch profile and the model metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from dmlcsr.core.metadata import ModelMetadata
from dmlcsr.errors import DmlcsrError
from dmlcsr.export.onnx_export import INPUT_NAME, read_metadata
from dmlcsr.runtime.output_files import write_atomic

ENGINE_PRECISIONS = ("fp32", "fp16", "int8")
SOURCE_PRECISION = {"fp32": "fp32", "fp16": "fp16", "int8": "int8-qdq"}


@dataclass(frozen=True)
class BatchProfile:
    """The optimisation profile's batch sizes: min <= opt <= max."""

    min: int
    opt: int
    max: int

    @classmethod
    def parse(cls, text: str) -> BatchProfile:
        """'8' (fixed) or 'MIN:OPT:MAX', e.g. '1:4:8'."""
        parts = str(text).split(":")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(values) == 1:
            values *= 3
        if len(values) != 3 or not 1 <= values[0] <= values[1] <= values[2]:
            raise DmlcsrError(f"--batch {text!r} is not N or MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX; "
                              "e.g. --batch 1 or --batch 1:4:8")
        return cls(*values)


def import_tensorrt():
    """The tensorrt module, or a one-line error naming the extra to install."""
    try:
        import tensorrt
    except ImportError:
        raise DmlcsrError("building TensorRT engines needs the tensorrt package: pip install 'dmlcsr[trt]' on a "
                          "machine with an NVIDIA GPU (the ONNX files work without it)") from None
    return tensorrt


def builds_weakly_typed(trt) -> bool:
    """True while the builder still takes FP16/INT8 precision flags (TensorRT < 11)."""
    return int(trt.__version__.split(".")[0]) < 11 and hasattr(trt.BuilderFlag, "FP16")


def build_plan(onnx_by_precision: dict[str, Path], precision: str) -> tuple[Path, bool]:
    """Which ONNX file to build ``precision`` from, and whether to build strongly typed."""
    trt = import_tensorrt()
    weak = builds_weakly_typed(trt)
    source = "fp32" if weak and precision == "fp16" else SOURCE_PRECISION[precision]
    if source not in onnx_by_precision:
        flag = {"fp16": "--fp16", "int8-qdq": "--int8 --calib DIR"}.get(source, "")
        raise DmlcsrError(f"a {precision} engine needs the {source} ONNX model; export it too ({flag})")
    return Path(onnx_by_precision[source]), not weak


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, precision: str,
                 batch: BatchProfile, strongly_typed: bool, workspace_mib: int = 4096,
                 timing_cache: str | os.PathLike | None = None) -> Path:
    """Build and write the engine and its sidecar (``<engine>.json``); returns the engine path."""
    if precision not in ENGINE_PRECISIONS:
        raise DmlcsrError(f"engine precision must be one of {', '.join(ENGINE_PRECISIONS)}, not {precision!r}")
    trt = import_tensorrt()
    from dmlcsr.runtime.backends.tensorrt_backend import current_gpu, import_cudart

    capability, gpu_name = current_gpu(import_cudart())
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    meta = read_metadata(onnx_path)
    height, width = meta.preprocessing.input_size
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise DmlcsrError(f"TensorRT {trt.__version__} cannot parse {onnx_path} ({errors[:300]}); re-export it "
                          "with a lower --opset or report the failing node")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # TF32 rounds to 10 mantissa bits: not an fp32 engine
    if not strongly_typed:
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, *[(b, 3, height, width) for b in (batch.min, batch.opt, batch.max)])
    config.add_optimization_profile(profile)
    cache_path = Path(timing_cache) if timing_cache else None
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path and cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise DmlcsrError(f"TensorRT failed to build an engine from {onnx_path} (see its log above); try a larger "
                          "--workspace-mib or a smaller --batch maximum")
    write_atomic(engine_path, bytes(serialized))
    if cache_path:
        write_atomic(cache_path, bytes(config.get_timing_cache().serialize()))
    engine = trt.Runtime(logger).deserialize_cuda_engine(bytes(serialized))
    record = {
        "version": trt.__version__, "gpu_name": gpu_name, "compute_capability": capability,
        "precision": precision, "strongly_typed": strongly_typed, "built_from": onnx_path.name,
        "io": describe_io(trt, engine), "profile": {"min": batch.min, "opt": batch.opt, "max": batch.max},
        "workspace_mib": workspace_mib,
    }
    write_sidecar(engine_path, meta, record)
    return engine_path


def describe_io(trt, engine) -> list[dict]:
    """Name, mode, shape (-1 = dynamic) and dtype of every I/O tensor of an engine."""
    io = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        mode = "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
        io.append({"name": name, "mode": mode, "shape": [int(d) for d in engine.get_tensor_shape(name)],
                   "dtype": str(engine.get_tensor_dtype(name)).rsplit(".", 1)[-1].lower()})
    return io


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    """``model.engine`` -> ``model.engine.json`` (what the runtime looks for first)."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def write_sidecar(engine_path: str | os.PathLike, meta: ModelMetadata, record: dict) -> Path:
    """The model metadata with ``extra["tensorrt"] = record``, as JSON beside the engine."""
    side = sidecar_path(engine_path)
    write_atomic(side, replace(meta, precision=SOURCE_PRECISION[record["precision"]],
                               extra={**meta.extra, "tensorrt": record}).to_json())
    return side
