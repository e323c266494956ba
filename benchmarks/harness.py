"""Timing prepared inferences: warm-up, then timed repetitions until both a minimum count
and a minimum time are reached, summarised by percentiles (the median is the figure quoted;
p90/p99 show how noisy the machine was). Calls being compared are interleaved (A, B, A,
B...), so load from other processes that drifts during a run hits both alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: a clock times one call of a zero-argument function and returns milliseconds
Clock = Callable[[Callable[[], object]], float]


def host_clock(fn: Callable[[], object]) -> float:
    """Wall time of a synchronous call (CPU backends; GPU runners that synchronise inside)."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def cuda_event_clock(fn: Callable[[], object]) -> float:
    """GPU time between two CUDA events around an asynchronous launch (no host jitter)."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return float(start.elapsed_time(end))


@dataclass(frozen=True)
class Schedule:
    """How long to time: ``warmup`` untimed calls, then at least ``iterations`` timed calls
    and at least ``min_seconds`` of timed calls, never more than ``max_iterations``."""

    warmup: int = 2
    iterations: int = 10
    min_seconds: float = 0.0
    max_iterations: int = 1000


@dataclass
class Latency:
    """Per-call latency statistics in milliseconds."""

    median_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    iterations: int

    @classmethod
    def from_samples(cls, samples_ms: list[float]) -> Latency:
        values = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return cls(float(p50), float(p90), float(p99), float(values.mean()), float(values.min()), len(values))


def measure(fn: Callable[[], object], schedule: Schedule, clock: Clock = host_clock,
            on_sample: Callable[[], None] | None = None) -> Latency:
    """Warm ``fn`` up, then time it per ``schedule`` with ``clock``; ``on_sample`` is called
    after every call (progress bars)."""
    return measure_interleaved([fn], schedule, [clock], on_sample)[0]


def measure_interleaved(fns: list[Callable[[], object]], schedule: Schedule, clocks: list[Clock],
                        on_sample: Callable[[], None] | None = None) -> list[Latency]:
    """Time several calls in turn, one round at a time, per ``schedule`` (the count and
    time limits count rounds)."""
    for _ in range(schedule.warmup):
        for fn in fns:
            fn()
            if on_sample:
                on_sample()
    samples: list[list[float]] = [[] for _ in fns]
    started = time.perf_counter()
    rounds = 0
    while rounds < schedule.max_iterations and (
            rounds < schedule.iterations or time.perf_counter() - started < schedule.min_seconds):
        for fn, clock, series in zip(fns, clocks, samples, strict=True):
            series.append(clock(fn))
            if on_sample:
                on_sample()
        rounds += 1
    return [Latency.from_samples(series) for series in samples]
