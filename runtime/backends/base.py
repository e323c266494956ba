"""The one interface every inference backend implements (cf. Polygraphy's runners).

A backend loads one model file, describes its named inputs and outputs, and runs a batch
of already-preprocessed arrays. It knows nothing of images, faces or labels: those live
in the pre/post-processing around it, so adding a backend (OpenVINO, CoreML...) is one
new file and cannot change the pixels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from dmlcsr.core.metadata import ModelMetadata


@dataclass(frozen=True)
class TensorSpec:
    """A named I/O tensor: shape with None (or a name) for dynamic dimensions, numpy dtype."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: np.dtype


class Backend(ABC):
    """A loaded model that maps named numpy arrays to named numpy arrays."""

    #: short name shown in tables and errors, e.g. "onnxruntime[CPUExecutionProvider]"
    name: str = "backend"
    #: the dmlcsr metadata stored with the model; None for foreign models (e.g. a detector)
    metadata: ModelMetadata | None = None
    #: I/O specs, read from the model once when a backend loads it
    _inputs: list[TensorSpec]
    _outputs: list[TensorSpec]

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's inputs, in order."""
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorSpec]:
        """The model's outputs, in order."""
        return list(self._outputs)

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; returns every output by name as a host numpy array.

        Must be safe to call from several threads at once: a backend whose library is not
        (a TensorRT execution context) serialises calls with a lock.
        """

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
