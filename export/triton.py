"""A Triton Inference Server model repository for one exported artefact.

Layout (what Triton expects)::

    DIR/<name>/config.pbtxt      platform, I/O, max_batch_size, dynamic batching
    DIR/<name>/1/model.onnx      (or model.plan for a TensorRT engine)
    DIR/<name>/dmlcsr.json       the model metadata: labels, preprocessing (Triton ignores it)

Triton's batch dimension is implicit (max_batch_size > 0), so dims leave it out. Clients
send the preprocessed float32 batch and get the logits, as with every other backend.
A TensorRT plan only loads in a Triton whose TensorRT release is the one it was built
with; the ONNX model loads anywhere.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import onnx

from dmlcsr.core.metadata import ModelMetadata
from dmlcsr.errors import DmlcsrError
from dmlcsr.export.onnx_export import check_writable_dir, read_metadata
from dmlcsr.export.tensorrt_build import BatchProfile
from dmlcsr.runtime.output_files import atomic_target, write_atomic

TRITON_TYPES = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16"}
ENGINE_TYPES = {"float": "TYPE_FP32", "half": "TYPE_FP16"}


def _onnx_io(path: Path) -> tuple[list[tuple[str, str, list[int]]], ModelMetadata]:
    model = onnx.load(str(path), load_external_data=False)
    io = []
    for value in (*model.graph.input, *model.graph.output):
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim][1:]  # drop the batch dim
        if not all(dims):
            raise DmlcsrError(f"{path}: tensor {value.name} has dynamic non-batch dims; Triton needs them fixed "
                              "(re-export with dmlcsr-export)")
        io.append((value.name, TRITON_TYPES[value.type.tensor_type.elem_type], dims))
    return io, read_metadata(model)


def _engine_io(path: Path) -> tuple[list[tuple[str, str, list[int]]], ModelMetadata]:
    from dmlcsr.runtime.backends.tensorrt_backend import read_sidecar

    meta, build = read_sidecar(path)
    io = sorted(build["io"], key=lambda t: t["mode"] != "input")
    return [(t["name"], ENGINE_TYPES[t["dtype"]], [int(d) for d in t["shape"][1:]]) for t in io], meta


def _dims(values: list[int]) -> str:
    return "[ " + ", ".join(str(v) for v in values) + " ]"


def config_text(name: str, platform: str, io: list[tuple[str, str, list[int]]], num_inputs: int,
                batch: BatchProfile, gpu: bool) -> str:
    """The config.pbtxt for one DML-CSR model (protobuf text format of inference.ModelConfig)."""
    def tensor(entry: tuple[str, str, list[int]], is_input: bool) -> str:
        tensor_name, dtype, dims = entry
        layout = "\n    format: FORMAT_NCHW" if is_input else ""
        return f'  {{\n    name: "{tensor_name}"\n    data_type: {dtype}{layout}\n    dims: {_dims(dims)}\n  }}'

    inputs = ",\n".join(tensor(e, True) for e in io[:num_inputs])
    outputs = ",\n".join(tensor(e, False) for e in io[num_inputs:])
    preferred = sorted({batch.opt, batch.max})
    return (f'name: "{name}"\nplatform: "{platform}"\nmax_batch_size: {batch.max}\n'
            f"input [\n{inputs}\n]\noutput [\n{outputs}\n]\n"
            f"dynamic_batching {{\n  preferred_batch_size: {_dims(preferred)}\n"
            "  max_queue_delay_microseconds: 2000\n}\n"
            f"instance_group [\n  {{\n    count: 1\n    kind: {'KIND_GPU' if gpu else 'KIND_AUTO'}\n  }}\n]\n")


def write_repository(artefact: str | os.PathLike, directory: str | os.PathLike, batch: BatchProfile,
                     name: str = "dmlcsr") -> Path:
    """Write DIR/<name>/ for ``artefact`` (.onnx or a TensorRT engine); returns config.pbtxt's path."""
    artefact = Path(artefact)
    if artefact.suffix == ".onnx":
        io, meta = _onnx_io(artefact)
        platform, filename, gpu = "onnxruntime_onnx", "model.onnx", False
    else:
        io, meta = _engine_io(artefact)
        platform, filename, gpu = "tensorrt_plan", "model.plan", True
        engine_max = meta.extra["tensorrt"]["profile"]["max"]
        if batch.max > engine_max:
            raise DmlcsrError(f"Triton max batch {batch.max} exceeds the engine's profile maximum {engine_max}; "
                              "rebuild the engine with a larger --batch")
    model_dir = check_writable_dir(Path(directory) / name)
    version_dir = check_writable_dir(model_dir / "1")
    with atomic_target(version_dir / filename) as partial:
        shutil.copyfile(artefact, partial)
    write_atomic(model_dir / "dmlcsr.json", meta.to_json())
    config = write_atomic(model_dir / "config.pbtxt", config_text(name, platform, io, 1, batch, gpu))
    return config


def _config_message_class():
    """inference.ModelConfig, cut down to the fields written here, with Triton's own field
    numbers and types (triton-inference-server/common, protobuf/model_config.proto), so the
    protobuf text-format parser can check a config.pbtxt without tritonclient."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    optional, repeated = field.LABEL_OPTIONAL, field.LABEL_REPEATED

    def message(name, fields, enums=()):
        proto = descriptor_pb2.DescriptorProto(name=name)
        for fname, number, ftype, label, type_name in fields:
            proto.field.add(name=fname, number=number, type=ftype, label=label, type_name=type_name)
        for enum_name, values in enums:
            enum = proto.enum_type.add(name=enum_name)
            for value_name, value in values:
                enum.value.add(name=value_name, number=value)
        return proto

    file = descriptor_pb2.FileDescriptorProto(name="dmlcsr_triton_model_config.proto", package="inference",
                                              syntax="proto3")
    data_type = file.enum_type.add(name="DataType")
    for index, value in enumerate(("TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32",
                                   "TYPE_UINT64", "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64",
                                   "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_STRING", "TYPE_BF16")):
        data_type.value.add(name=value, number=index)
    enum, msg, string = field.TYPE_ENUM, field.TYPE_MESSAGE, field.TYPE_STRING
    int64, int32 = field.TYPE_INT64, field.TYPE_INT32
    file.message_type.extend([
        message("ModelInput", [("name", 1, string, optional, None),
                               ("data_type", 2, enum, optional, ".inference.DataType"),
                               ("format", 3, enum, optional, ".inference.ModelInput.Format"),
                               ("dims", 4, int64, repeated, None)],
                [("Format", [("FORMAT_NONE", 0), ("FORMAT_NHWC", 1), ("FORMAT_NCHW", 2)])]),
        message("ModelOutput", [("name", 1, string, optional, None),
                                ("data_type", 2, enum, optional, ".inference.DataType"),
                                ("dims", 3, int64, repeated, None)]),
        message("ModelDynamicBatching", [("preferred_batch_size", 1, int32, repeated, None),
                                         ("max_queue_delay_microseconds", 2, field.TYPE_UINT64, optional, None)]),
        message("ModelInstanceGroup", [("name", 1, string, optional, None), ("count", 2, int32, optional, None),
                                       ("kind", 4, enum, optional, ".inference.ModelInstanceGroup.Kind")],
                [("Kind", [("KIND_AUTO", 0), ("KIND_GPU", 1), ("KIND_CPU", 2), ("KIND_MODEL", 3)])]),
        message("ModelConfig", [("name", 1, string, optional, None), ("platform", 2, string, optional, None),
                                ("max_batch_size", 4, int32, optional, None),
                                ("input", 5, msg, repeated, ".inference.ModelInput"),
                                ("output", 6, msg, repeated, ".inference.ModelOutput"),
                                ("instance_group", 7, msg, repeated, ".inference.ModelInstanceGroup"),
                                ("dynamic_batching", 11, msg, optional, ".inference.ModelDynamicBatching"),
                                ("backend", 17, string, optional, None)]),
    ])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


def parse_config(text: str):
    """Parse config.pbtxt text into an inference.ModelConfig message (raises on bad syntax,
    unknown fields or wrong types, as Triton would)."""
    from google.protobuf import text_format

    return text_format.Parse(text, _config_message_class()())
