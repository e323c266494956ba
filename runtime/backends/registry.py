"""The one table of inference engines: which file suffixes each opens, on which devices,
and where its code lives. Everything that opens a model (the runtime, dmlcsr-verify,
dmlcsr-eval, the bench) goes through ``open_backend``; adding an engine is one backend file
plus one line in ``REGISTRY`` (cf. mmdeploy's BaseBackendManager.is_available/build_wrapper).

Order matters: for a suffix several engines open, the first available one that supports
the device is the default. ONNX Runtime comes before OpenVINO for ``.onnx`` because it is
the faster FP32 engine on the CPUs measured (OpenVINO FP32 0.84-0.93x of it); OpenVINO's
advantage is INT8, which it runs from its own IR (``.xml``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.backends.base import Availability, Backend, BackendOptions

ENGINES_AUTO = "auto"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".tar")


@dataclass(frozen=True)
class BackendEntry:
    """One engine: its name, the ``module:Class`` implementing Backend, what it opens."""

    engine: str
    target: str
    suffixes: tuple[str, ...]
    devices: tuple[str, ...]

    def load(self) -> type[Backend]:
        """The backend class (its module imports no engine library until a model is opened)."""
        module, _, cls = self.target.partition(":")
        return getattr(importlib.import_module(module), cls)

    def is_available(self) -> Availability:
        return self.load().is_available()

    def supports(self, suffix: str, device: str) -> bool:
        return suffix in self.suffixes and device in self.devices


REGISTRY: tuple[BackendEntry, ...] = (
    BackendEntry("onnxruntime", "dmlcsr.runtime.backends.onnxruntime_backend:OnnxRuntimeBackend", (".onnx",),
                 ("auto", "cpu", "cuda")),
    BackendEntry("openvino", "dmlcsr.runtime.backends.openvino_backend:OpenVinoBackend", (".xml", ".onnx"),
                 ("auto", "cpu")),
    BackendEntry("tensorrt", "dmlcsr.runtime.backends.tensorrt_backend:TensorRTBackend", (".engine", ".plan", ".trt"),
                 ("auto", "cuda")),
)
ENGINES = tuple(entry.engine for entry in REGISTRY)
MODEL_SUFFIXES = tuple(dict.fromkeys(s for entry in REGISTRY for s in entry.suffixes))


def entry_for(engine: str) -> BackendEntry:
    for entry in REGISTRY:
        if entry.engine == engine:
            return entry
    raise DmlcsrError(f"unknown engine {engine!r}; use one of {', '.join((ENGINES_AUTO, *ENGINES))}")


def _unknown_suffix(path: Path) -> DmlcsrError:
    suffix = path.suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES:
        hint = "; export checkpoints with dmlcsr-export first"
    elif suffix == ".bin":
        hint = f"; pass the OpenVINO IR's .xml ({path.with_suffix('.xml').name}), which names this .bin"
    else:
        hint = ""
    known = ", ".join(f"{s} ({', '.join(e.engine for e in REGISTRY if s in e.suffixes)})" for s in MODEL_SUFFIXES)
    return DmlcsrError(f"{path} has an unknown model type {suffix or '(no suffix)'!r}: pass one of {known}{hint}")


def choose_engine(path: Path, engine: str = ENGINES_AUTO, device: str = "auto") -> BackendEntry:
    """The engine that opens ``path``: the one asked for, or the first available for its
    suffix and ``device``. Every refusal says what to install or pass instead."""
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise _unknown_suffix(path)
    if engine != ENGINES_AUTO:
        entry = entry_for(engine)
        if suffix not in entry.suffixes:
            raise DmlcsrError(f"engine {engine} does not open {suffix} files (it opens {', '.join(entry.suffixes)}); "
                              "drop --engine or pass another model file")
        if device not in entry.devices:
            raise DmlcsrError(f"engine {engine} runs on {', '.join(d for d in entry.devices if d != 'auto')} only, "
                              f"not device={device!r}; pick another device or engine")
        availability = entry.is_available()
        if not availability:
            raise DmlcsrError(f"cannot open {path.name} with {engine}: {availability.reason}")
        return entry
    candidates = [entry for entry in REGISTRY if entry.supports(suffix, device)]
    if not candidates:
        opens = [e for e in REGISTRY if suffix in e.suffixes]
        where = sorted({d for e in opens for d in e.devices} - {"auto"})
        instead = {"cpu": "the .onnx model or an OpenVINO .xml", "cuda": "the .onnx model or a TensorRT engine"}
        raise DmlcsrError(f"{path.name} runs on {' or '.join(where)} only ({', '.join(e.engine for e in opens)}), "
                          f"not device={device!r}; pass {instead.get(device, 'another model file')} for {device}")
    reasons = []
    for entry in candidates:
        availability = entry.is_available()
        if availability:
            return entry
        reasons.append(availability.reason)
    raise DmlcsrError(f"cannot open {path.name}: {'; or '.join(reasons)}")


def open_backend(path: str | Path, device: str = "auto", threads: int | None = None, *,
                 engine: str = ENGINES_AUTO, inference_precision: str = "f32", throughput: bool = False,
                 as_written: bool = False) -> Backend:
    """Load ``path`` with the engine its suffix (or ``engine``) names; see BackendOptions for
    the rest. Raises DmlcsrError for missing files, unknown suffixes, missing engines and
    options the engine cannot honour."""
    path = Path(path)
    options = BackendOptions(device, threads, inference_precision, throughput, as_written)
    if not path.is_file():
        raise DmlcsrError(f"model file not found: {path}" if not path.exists() else f"{path} is not a file")
    entry = choose_engine(path, engine, device)
    return entry.load()(path, options)
