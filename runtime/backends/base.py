"""The one interface every inference backend implements (cf. Polygraphy's runners).

A backend loads one model file, describes its named inputs and outputs, and runs a batch
of already-preprocessed arrays. It knows nothing of images, faces or labels: those live
in the pre/post-processing around it, so adding a backend is one new file plus one line
in ``registry.py`` and cannot change the pixels.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dmlcsr.core.metadata import ModelMetadata
from dmlcsr.errors import DmlcsrError

DEVICES = ("auto", "cpu", "cuda")
#: what a backend computes its float layers in; "f32" unless the caller asks for bf16
INFERENCE_PRECISIONS = ("f32", "bf16")


#: more threads than any machine has cores (engines take an int32, and spawn each one)
MAX_THREADS = 1024

@dataclass(frozen=True)
class TensorSpec:
    """A named I/O tensor: shape with None (or a name) for dynamic dimensions, numpy dtype."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: np.dtype


@dataclass(frozen=True)
class BackendOptions:
    """How to run a model, whatever the backend. A backend refuses the options it cannot honour
    rather than ignoring them, so a user never believes a setting took effect when it did not.

    - ``device``: "auto", "cpu" or "cuda";
    - ``threads``: cap on CPU threads (None: the library's default);
    - ``inference_precision``: "f32" (exact FP32; OpenVINO would otherwise pick bf16 on AMX
      CPUs) or "bf16" (OpenVINO on CPUs with bf16 instructions);
    - ``throughput``: many requests in flight (folders, videos) rather than the lowest latency;
    - ``as_written``: run the graph without fusions (ONNX Runtime; a QDQ model's exact arithmetic).
    """

    device: str = "auto"
    threads: int | None = None
    inference_precision: str = "f32"
    throughput: bool = False
    as_written: bool = False

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise DmlcsrError(f"unknown device {self.device!r}; use one of {', '.join(DEVICES)}")
        if self.threads is not None and (not isinstance(self.threads, int) or isinstance(self.threads, bool)
                                         or not 1 <= self.threads <= MAX_THREADS):
            raise DmlcsrError(f"threads must be a whole number from 1 to {MAX_THREADS}, not {self.threads!r}")
        if self.inference_precision not in INFERENCE_PRECISIONS:
            raise DmlcsrError(f"unknown inference precision {self.inference_precision!r}; use one of "
                              f"{', '.join(INFERENCE_PRECISIONS)}")


DEFAULT_OPTIONS = BackendOptions()


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run on this machine, and if not, why and how to fix it."""

    available: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.available


def module_availability(module: str, install_hint: str) -> Availability:
    """Available when ``module`` can be imported (checked without importing it)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    return Availability(True) if found else Availability(False, f"{module} is not installed; {install_hint}")


class Backend(ABC):
    """A loaded model that maps named numpy arrays to named numpy arrays."""

    #: the registry's name for this kind of backend ("onnxruntime", "openvino", "tensorrt")
    engine: str = "backend"
    #: short name shown in tables, errors and dmlcsr-parse's first line: engine, device, precision
    name: str = "backend"
    #: the dmlcsr metadata stored with the model; None for foreign models (e.g. a detector)
    metadata: ModelMetadata | None = None
    #: where the model runs: "cpu" or "cuda"
    device: str = "cpu"
    #: how the backend was asked to run the model (set by each backend when it loads one)
    options: BackendOptions = DEFAULT_OPTIONS
    #: requests the engine runs side by side (OpenVINO THROUGHPUT streams); callers then send
    #: one image per request through ``run_many`` instead of one large batch
    requests_in_flight: int = 1
    path: Path
    #: I/O specs, read from the model once when a backend loads it
    _inputs: list[TensorSpec]
    _outputs: list[TensorSpec]

    #: the library a backend needs, and how to install it (what is_available checks and says)
    library: str = ""
    install_hint: str = ""

    @classmethod
    def is_available(cls) -> Availability:
        """Whether this backend's library is importable here (cheap: nothing is loaded)."""
        return module_availability(cls.library, cls.install_hint)

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's inputs, in order."""
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorSpec]:
        """The model's outputs, in order."""
        return list(self._outputs)

    @property
    def inference_precision(self) -> str:
        """What the float layers compute in: "f32", or "bf16" where asked of an engine that has it."""
        return self.options.inference_precision

    @property
    def precision(self) -> str:
        """The artefact's precision as its metadata records it ("fp32", "int8-qdq", ...)."""
        return self.metadata.precision if self.metadata is not None else "unknown"

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; returns every output by name as a host numpy array.

        Must be safe to call from several threads at once: a backend whose library is not
        (a TensorRT execution context) serialises calls with a lock.
        """

    def run_many(self, batches: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Run several batches, results in order. One after the other here; a backend with
        an asynchronous request queue (OpenVINO) keeps several in flight instead."""
        return [self.run(feeds) for feeds in batches]

    @property
    def batch_limits(self) -> tuple[int, int | None]:
        """Smallest and largest batch the model accepts (None: no fixed upper limit).

        Read from the first input's batch dimension: a fixed size fixes both limits.
        """
        batch = self.inputs[0].shape[0] if self.inputs and self.inputs[0].shape else None
        return (batch, batch) if isinstance(batch, int) and batch > 0 else (1, None)

    def run_single(self, batch: np.ndarray) -> np.ndarray:
        """Convenience for one-input, first-output models such as DML-CSR."""
        return self.run({self.inputs[0].name: batch})[self.outputs[0].name]


def first_line(exc: BaseException, limit: int = 200) -> str:
    """A library error's first line, for one-line DmlcsrErrors (their own are multi-line)."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]
