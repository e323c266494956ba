"""dmlcsr-export's work as one function: checkpoint -> FP32 / FP16 / INT8 ONNX, TensorRT
engines, a Triton repository. Every input is checked before the first long step, so a
missing checkpoint or an empty calibration folder fails in a second, not after the export.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import dmlcsr
from dmlcsr.cache import CachedFile, cached_file, place
from dmlcsr.checkpoint import load_dml_csr
from dmlcsr.core.geometry import INPUT_SIZE, size_text
from dmlcsr.errors import DmlcsrError
from dmlcsr.export.onnx_export import (
    DEFAULT_OPSET,
    check_input_size,
    check_writable_dir,
    deploy_metadata,
    export_onnx,
)
from dmlcsr.export.quantize import DEFAULT_PERCENTILE, load_calibration_inputs
from dmlcsr.export.tensorrt_build import ENGINE_PRECISIONS, BatchProfile, import_tensorrt

ONNX_PRECISIONS = {"fp32": "fp32", "fp16": "fp16", "int8": "int8-qdq"}
#: the logger torch.onnx.export's op registry warns through
EXPORTER_REGISTRY_LOGGER = "torch.onnx._internal.exporter._registration"


class _TorchvisionNotices(logging.Filter):
    """Drops the exporter's "torchvision is not installed. Skipping torchvision::nms" lines
    (one per torchvision op, every export): DML-CSR uses no torchvision op."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("torchvision is not installed")


def quiet_exporter_notices() -> None:
    """Silence the torchvision notices at the exporter's registry logger, and nothing else."""
    logger = logging.getLogger(EXPORTER_REGISTRY_LOGGER)
    if not any(isinstance(f, _TorchvisionNotices) for f in logger.filters):
        logger.addFilter(_TorchvisionNotices())


@dataclass
class ExportOptions:
    """What to export; mirrors dmlcsr-export's options."""

    checkpoint: Path | None
    out: Path = Path("exported")
    fp16: bool = False
    int8: bool = False
    calib: Path | None = None
    calib_method: str = "percentile"
    calib_percentile: float = DEFAULT_PERCENTILE
    int8_stem: bool = False
    calib_limit: int | None = None
    batch: BatchProfile = field(default_factory=lambda: BatchProfile(1, 4, 8))
    input_size: tuple[int, int] = INPUT_SIZE
    opset: int = DEFAULT_OPSET
    engines: tuple[str, ...] = ()
    workspace_mib: int = 4096
    timing_cache: Path | None = None
    triton: Path | None = None
    triton_model: str = "auto"
    openvino: bool = False
    int8_max_drop: float | None = None


@dataclass
class Artefact:
    """One written file: what it is, where, how long it took."""

    kind: str  # "checkpoint", "onnx", "openvino", "engine", "triton"
    precision: str
    path: Path
    seconds: float

    @property
    def megabytes(self) -> float:
        return self.path.stat().st_size / 1e6


def _check_options(options: ExportOptions) -> None:
    check_input_size(options.input_size)
    if options.int8 and options.calib is None:
        raise DmlcsrError("--int8 needs --calib DIR: a folder of face photos to calibrate on (e.g. "
                          "dmlcsr/data/faces for a try-out; a few hundred real photos for production)")
    if options.calib is not None and not options.int8:
        raise DmlcsrError("--calib only applies to INT8; add --int8")
    for precision in options.engines:
        if precision not in ENGINE_PRECISIONS:
            raise DmlcsrError(f"--engine {precision!r}: choose from {', '.join(ENGINE_PRECISIONS)}")
        if precision == "int8" and not options.int8:
            raise DmlcsrError("--engine int8 builds from the INT8 QDQ model; add --int8 --calib DIR")
    kind, _, precision = options.triton_model.partition("-")
    made = {"fp32": True, "fp16": options.fp16, "int8": options.int8} if kind == "onnx" else \
        {p: p in options.engines for p in ENGINE_PRECISIONS}
    if options.triton_model != "auto" and not made.get(precision):
        raise DmlcsrError(f"--triton-model {options.triton_model}: that artefact is not exported in this run; "
                          "add the option that makes it or pick another")
    if options.workspace_mib < 1:
        raise DmlcsrError(f"--workspace-mib must be positive, not {options.workspace_mib}")
    if options.engines:
        import_tensorrt()  # fail now, not after the ONNX work
    if options.int8_max_drop is not None and not (options.openvino and options.int8):
        raise DmlcsrError("--int8-max-drop tunes the OpenVINO INT8 IR; add --openvino --int8 --calib DIR")
    if options.openvino:
        from dmlcsr.export.openvino_export import import_nncf, import_openvino

        import_openvino()
        if options.int8:
            import_nncf()


def demo_checkpoint_cached(num_classes: int, input_size: tuple[int, int], progress: bool = False,
                           use_cache: bool = True) -> CachedFile:
    """The built-in demo model's checkpoint in the user cache (dmlcsr.cache), built there
    when missing. Its name holds what changes its weights: toolkit version, class count,
    input size and the recipe's fingerprint (demo_model.py, the network code, the photos,
    the torch version)."""
    from dmlcsr.demo_model import make_demo_model, recipe_fingerprint

    def build(partial: Path) -> None:
        model = make_demo_model(num_classes, seed=0, input_size=input_size, progress=progress)
        torch.save(model.state_dict(), partial)

    name = f"demo-dmlcsr-{dmlcsr.__version__}-{num_classes}c-{size_text(input_size)}px-{recipe_fingerprint()}.pth"
    return cached_file(name, build, enabled=use_cache)


def make_demo_checkpoint(out: Path, input_size: tuple[int, int], log: Callable[[str], None],
                         num_classes: int = 19) -> Path:
    """Save the built-in demo model (seeded, fitted to the example photos; its labels mean
    nothing) as a checkpoint, so every artefact traces back to a real file and its sha256.
    A checkpoint already in ``out`` is kept; else it comes from the user cache, built there
    the first time on this machine."""
    path = out / f"demo-dmlcsr-{num_classes}-{size_text(input_size)}.pth"
    if not path.is_file():
        log("demo model: seeded DML-CSR fitted to the example photos (labels mean nothing), from the user cache "
            "or built into it (minutes, once per machine)")
        place(demo_checkpoint_cached(num_classes, input_size).path, path)
    return path


def export_checkpoint(options: ExportOptions, log: Callable[[str], None] = print) -> list[Artefact]:
    """Run the export described by ``options``; returns what was written, in order."""
    _check_options(options)
    quiet_exporter_notices()
    out = check_writable_dir(options.out)
    written: list[Artefact] = []
    start = time.perf_counter()
    checkpoint = options.checkpoint or make_demo_checkpoint(out, options.input_size, log)
    if options.checkpoint is None:
        written.append(Artefact("checkpoint", "fp32", checkpoint, time.perf_counter() - start))
    model, report = load_dml_csr(checkpoint)
    log(report.summary())
    calibration: list[np.ndarray] = []
    if options.int8:
        calibration = load_calibration_inputs(options.calib, options.input_size, options.calib_limit)
    stem = Path(checkpoint).stem
    onnx_files: dict[str, Path] = {}

    def step(kind: str, precision: str, work: Callable[[], Path]) -> Path:
        log(f"{kind} {precision}: working...")
        began = time.perf_counter()
        path = work()
        artefact = Artefact(kind, precision, path, time.perf_counter() - began)
        written.append(artefact)
        log(f"{kind} {precision}: {path} ({artefact.megabytes:.1f} MB, {artefact.seconds:.1f} s)")
        return path

    meta = deploy_metadata(report.num_classes, report.sha256, input_size=options.input_size)
    onnx_files["fp32"] = step("onnx", "fp32", lambda: export_onnx(
        model, out / f"{stem}-fp32.onnx", meta, options.input_size, options.opset))
    if options.fp16:
        from dmlcsr.export.fp16 import convert_fp16

        onnx_files["fp16"] = step("onnx", "fp16", lambda: convert_fp16(onnx_files["fp32"], out / f"{stem}-fp16.onnx"))
    if options.int8:
        from dmlcsr.export.quantize import quantize_int8

        onnx_files["int8-qdq"] = step("onnx", "int8-qdq", lambda: quantize_int8(
            onnx_files["fp32"], out / f"{stem}-int8.onnx", calibration, options.calib_method,
            options.calib_percentile, options.int8_stem))
    if options.openvino:
        from dmlcsr.export.openvino_export import NncfRecipe, write_fp32_ir, write_int8_ir

        step("openvino", "fp32", lambda: write_fp32_ir(onnx_files["fp32"], out / f"{stem}-fp32.xml"))
        if options.int8:
            recipe = NncfRecipe(quantize_stem=options.int8_stem, max_drop=options.int8_max_drop)
            step("openvino", "int8-nncf", lambda: write_int8_ir(onnx_files["fp32"], out / f"{stem}-int8.xml",
                                                                 calibration, recipe, log=log))
    engines: dict[str, Path] = {}
    for precision in options.engines:
        from dmlcsr.export.tensorrt_build import build_engine, build_plan

        source, strongly_typed = build_plan(onnx_files, precision)
        engines[precision] = step("engine", precision, lambda p=precision, s=source, t=strongly_typed: build_engine(
            s, out / f"{stem}-{p}.engine", p, options.batch, t, options.workspace_mib,
            options.timing_cache or out / "tensorrt-timing.cache"))
    if options.triton is not None:
        from dmlcsr.export.triton import write_repository

        source = _triton_source(options.triton_model, onnx_files, engines)
        served = next(f"{kind} {p}" for kind, files in (("onnx", onnx_files), ("engine", engines))
                      for p, path in files.items() if path == source)
        step("triton", served, lambda: write_repository(source, options.triton, options.batch))
    return written


def _triton_source(choice: str, onnx_files: dict[str, Path], engines: dict[str, Path]) -> Path:
    """The artefact to serve: as asked, else the last engine built, else FP16, else FP32 ONNX."""
    if choice == "auto":
        if engines:
            return list(engines.values())[-1]
        return onnx_files.get("fp16", onnx_files["fp32"])
    kind, _, precision = choice.partition("-")
    return engines[precision] if kind == "engine" else onnx_files[ONNX_PRECISIONS[precision]]
