"""Run the PyTorch checkpoint and each exported artefact on the same preprocessed photos
and report their parity (dmlcsr-verify's work, callable from Python and tests)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dmlcsr.checkpoint import load_dml_csr
from dmlcsr.core.geometry import size_text
from dmlcsr.errors import DmlcsrError
from dmlcsr.export.compare import ParityAccumulator, ParityReport
from dmlcsr.export.face_inputs import batches
from dmlcsr.export.runners import BackendRunner, TorchRunner, open_artefact


def verify_artefacts(checkpoint: str | os.PathLike, artefacts: Sequence[str | os.PathLike],
                     images: Sequence[Path], batch_size: int = 2, device: str = "auto",
                     progress: bool = False, qdq_math: bool = True, engine: str = "auto",
                     bf16: bool = False) -> list[ParityReport]:
    """One ParityReport per artefact, each against the checkpoint run in PyTorch (fp32, CPU);
    with ``qdq_math``, INT8 QDQ ONNX files get a second report of their unfused QDQ
    arithmetic (open_artefact's ``as_written``), which tells quantization error from CPU
    kernel error; with ``bf16``, FP32 OpenVINO IRs get a second report computed in bf16.
    ``engine`` opens .onnx files with another engine than the default (e.g. openvino).

    All artefacts are opened before any work so a bad one fails fast; inputs and reference
    logits are computed once per input size and shared by the artefacts of that size.
    """
    if not images:
        raise DmlcsrError("no images to verify on; pass --images DIR with face photos")
    if batch_size < 1:
        raise DmlcsrError(f"--batch-size must be at least 1, not {batch_size}")
    model, load = load_dml_csr(checkpoint)
    runners: list[BackendRunner] = []
    for path in artefacts:
        runner = open_artefact(path, device, engine if Path(path).suffix.lower() == ".onnx" else "auto")
        runners.append(runner)
        if qdq_math and runner.metadata.precision == "int8-qdq" and runner.path.suffix == ".onnx":
            runners.append(open_artefact(path, "cpu", "onnxruntime", as_written=True))
        if bf16 and runner.metadata.precision == "fp32" and runner.backend.engine == "openvino":
            runners.append(open_artefact(path, "cpu", "openvino", inference_precision="bf16"))
    for runner in runners:
        if runner.metadata.num_classes != load.num_classes:
            raise DmlcsrError(f"{runner.path} predicts {runner.metadata.num_classes} classes but {checkpoint} "
                              f"{load.num_classes}: it was exported from another checkpoint")
    reference = TorchRunner(model)
    cache: dict[tuple[int, int], tuple[list[np.ndarray], list[np.ndarray]]] = {}
    reports = []
    for runner in runners:
        size = runner.input_size
        if size not in cache:
            inputs = list(batches(images, size, batch_size))
            logits = [reference(b) for b in tqdm(inputs, desc=f"pytorch {size_text(size)}px", unit="batch",
                                                 disable=not progress, leave=False)]
            cache[size] = (inputs, logits)
        inputs, logits = cache[size]
        accumulator = ParityAccumulator(load.num_classes, size)
        for batch, expected in tqdm(list(zip(inputs, logits, strict=True)), desc=runner.path.name, unit="batch",
                                    disable=not progress, leave=False):
            accumulator.update(expected, _run_checked(runner, batch, expected.shape))
        report = accumulator.report(runner.name, runner.precision, runner.metadata.label_names)
        if cpu_int8_kernels(runner):
            report.informational = True
            report.notes.append("ONNX Runtime's int8 CPU kernels, for information: the QDQ file is TensorRT's "
                                "source (judged by its QDQ arithmetic); on CPUs deploy the OpenVINO INT8 IR")
        if runner.metadata.checkpoint_sha256 and runner.metadata.checkpoint_sha256 != load.sha256:
            report.notes.append(f"exported from a different checkpoint file (sha256 "
                                f"{runner.metadata.checkpoint_sha256[:12]}..., this one {load.sha256[:12]}...)")
        reports.append(report)
    return reports


def cpu_int8_kernels(runner: BackendRunner) -> bool:
    """A QDQ model run by ONNX Runtime's fused int8 CPU kernels: slower than FP32 on the CPUs
    measured and below verify's bar without VNNI, so not a path this toolkit deploys."""
    backend = runner.backend
    return (runner.precision == "int8-qdq" and backend.engine == "onnxruntime" and backend.device == "cpu"
            and not backend.options.as_written)


def _run_checked(runner: BackendRunner, batch: np.ndarray, expected_shape: tuple[int, ...]) -> np.ndarray:
    out = runner(batch)
    if out.shape != expected_shape:
        raise DmlcsrError(f"{runner.path} returned logits of shape {out.shape}, PyTorch {expected_shape}; "
                          "re-export it from this checkpoint")
    return out
