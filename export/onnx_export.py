"""DML-CSR (deploy build) -> one clean FP32 ONNX file with its metadata inside.

The graph ends at the logits (N x C x H/4 x W/4): upsampling and argmax stay in the
runtime (numpy, the official align_corners=True math), so every backend shares them and
clients keep the class probabilities. torch's dynamo exporter is used because it folds
the InPlaceABN batch norms into the convolutions (128 Conv, no BatchNormalization/Abs
left) where the legacy TorchScript exporter leaves 121 BatchNormalization + Abs pairs and
~470 Identity nodes behind.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path

import onnx
import torch
from torch import nn

from dmlcsr.core import geometry
from dmlcsr.core.labels import default_label_set
from dmlcsr.core.metadata import METADATA_KEY, ModelMetadata, Preprocessing
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.output_files import atomic_target

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BATCH_DIM = "batch"
MIN_INPUT_SIZE = 64  # per side: below this the stride-8 backbone leaves too few pixels to parse
DEFAULT_OPSET = 18  # TensorRT 10 parses opsets 9-20; 18 is the oldest with every op here in its newest form
PRECISIONS = ("fp32", "fp16", "int8-qdq")


def deploy_metadata(num_classes: int, checkpoint_sha256: str = "", precision: str = "fp32",
                    input_size: tuple[int, int] = geometry.INPUT_SIZE, **extra) -> ModelMetadata:
    """The metadata every artefact of one checkpoint carries (labels, preprocessing, source)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    labels = default_label_set(num_classes)
    return ModelMetadata(
        num_classes=num_classes, label_names=list(labels.names), input_name=INPUT_NAME,
        output_name=OUTPUT_NAME, precision=precision, checkpoint_sha256=checkpoint_sha256,
        preprocessing=Preprocessing(input_size=(int(input_size[0]), int(input_size[1]))),
        extra={"label_set": labels.name, **extra})


def check_input_size(input_size: tuple[int, int]) -> tuple[int, int]:
    """(H, W) as ints, or a one-line error before any export or timing work: DML-CSR's
    stride-8 backbone leaves too few pixels below MIN_INPUT_SIZE a side."""
    height, width = (int(v) for v in input_size)
    if min(height, width) < MIN_INPUT_SIZE:
        raise DmlcsrError(f"--input-size {height},{width} is too small for DML-CSR's stride-8 backbone; use 473 "
                          f"(the official size) or at least {MIN_INPUT_SIZE} a side")
    return height, width


def set_metadata(model: onnx.ModelProto, meta: ModelMetadata) -> None:
    """Store ``meta`` as JSON in the model's metadata_props under METADATA_KEY (replacing any)."""
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=METADATA_KEY, value=meta.to_json())


def read_metadata(model: onnx.ModelProto | str | os.PathLike) -> ModelMetadata:
    """The dmlcsr metadata of an ONNX model (proto or path); error if it has none."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return ModelMetadata.from_json(prop.value)
    raise DmlcsrError("this ONNX file carries no dmlcsr metadata; export it with dmlcsr-export")


def check_writable_dir(directory: str | os.PathLike) -> Path:
    """Create ``directory`` if needed and make sure files can be written there."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DmlcsrError(f"cannot create output directory {directory} ({exc.strerror}); "
                          "pass a writable --out") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise DmlcsrError(f"output directory {directory} is not writable; pass a writable --out")
    return directory


def strip_debug_info(model: onnx.ModelProto) -> None:
    """Drop the exporter's per-node/per-value metadata (stack traces with local paths, FX
    node dumps): useless to runtimes, and it leaks the build machine's file layout."""
    graph = model.graph
    for item in (*graph.node, *graph.input, *graph.output, *graph.value_info, *graph.initializer):
        del item.metadata_props[:]
    for node in graph.node:
        node.doc_string = ""


def export_onnx(model: nn.Module, path: str | os.PathLike, meta: ModelMetadata,
                input_size: tuple[int, int] = geometry.INPUT_SIZE, opset: int = DEFAULT_OPSET) -> Path:
    """Export the deploy-build ``model`` to ``path``: input "input" (float32, batch x 3 x H x W
    for ``input_size`` = (H, W), dynamic batch), output "logits", ``meta`` inside; checked with
    the full ONNX checker (shape inference included). ``meta``'s input size is set to
    ``input_size``: the file must never claim another."""
    if hasattr(model, "edge_layer"):
        raise DmlcsrError("the model carries the training-only edge branch; load it with "
                          "dmlcsr.checkpoint.load_dml_csr(path) (deploy build) before exporting")
    height, width = check_input_size(input_size)
    path = Path(path)
    check_writable_dir(path.parent)
    model = model.eval()
    example = torch.zeros(2, 3, height, width)  # batch 2: keeps torch.export from specialising to 1
    batch = torch.export.Dim(BATCH_DIM, min=1)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=({0: batch},), opset_version=opset, dynamo=True,
                                    optimize=True, verbose=False)
    proto = program.model_proto
    strip_debug_info(proto)
    set_metadata(proto, replace(meta, preprocessing=replace(meta.preprocessing, input_size=(height, width))))
    with atomic_target(path) as partial:  # a failed save or check leaves no half-written model
        onnx.save(proto, str(partial))
        onnx.checker.check_model(str(partial), full_check=True)
    return Path(path)
