"""A benchmark target: one way of running a network (library, device, precision).

Each target says why it cannot run here (``skip_reason``) or prepares a model and a fixed
input batch into one zero-argument call plus the clock that times it. This module is the
base both target families (torch_targets, exported_targets) build on; it imports neither,
so the registry (registry.py) is the only module that knows them all.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dmlcsr.benchmarks.harness import Clock, host_clock
from dmlcsr.benchmarks.models import BenchModel


def example_batch(batch: int, input_size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A fixed float32 N x 3 x H x W batch, normalised-image-like (zero mean, unit std)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 3, *input_size), dtype=np.float32)


@dataclass
class BenchContext:
    """What every target may need: input size, a folder for exported artefacts (reused
    between runs), the CPU's description, a thread cap and the INT8 calibration inputs
    (3 x H x W arrays, loaded when first needed)."""

    input_size: tuple[int, int]
    work_dir: Path
    cpu: dict
    threads: int | None = None
    calibration: list[np.ndarray] | None = None
    artefacts: dict[tuple[str, str], Path] = field(default_factory=dict)

    def example_batch(self, batch: int) -> np.ndarray:
        return example_batch(batch, self.input_size)


@dataclass
class Prepared:
    """One inference of a fixed batch, ready to time with ``clock``."""

    run: Callable[[], object]
    clock: Clock = host_clock
    note: str = ""


class Target(ABC):
    """One row family of the table (e.g. "ort-cpu-int8"). Instances, not subclasses, tell
    the rows of one family apart, so a row is one line of its family's list."""

    def __init__(self, name: str, description: str, device: str = "cpu") -> None:
        self.name, self.description, self.device = name, description, device

    @abstractmethod
    def skip_reason(self, ctx: BenchContext) -> str | None:
        """None when this target can run here, else a one-line reason and what would fix it."""

    @abstractmethod
    def prepare(self, model: BenchModel, batch: int, ctx: BenchContext) -> Prepared:
        """Ready ``model`` at ``batch`` images per call."""

    def release(self) -> None:  # noqa: B027 - most targets keep no copies
        """Drop per-target copies of the models (GPU memory, converted layouts)."""


def no_gpu_reason() -> str | None:
    """The skip reason of every CUDA target on a machine where torch sees no GPU."""
    import torch

    if torch.cuda.is_available():
        return None
    return f"no CUDA GPU visible to torch (this torch build: {torch.__version__})"


def missing_module(name: str, hint: str) -> str | None:
    """A skip reason when ``name`` cannot be imported."""
    try:
        found = importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        found = False
    return None if found else f"{name} is not importable ({hint})"
