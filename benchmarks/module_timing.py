"""Where the time goes: each network's parts timed on their own, on the inputs one real
forward gives them, with their FLOPs beside, so a latency ratio can be explained part by
part. The backbone is the same ResNet-101 in both networks and is timed once."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dmlcsr.benchmarks.harness import Schedule, cuda_event_clock, host_clock, measure
from dmlcsr.benchmarks.models import BenchModel
from dmlcsr.benchmarks.paper import DMLCSR, EAGRNET

BACKBONE = "backbone"
#: (attribute, what it is, attribute of the part it belongs to or None if top-level)
PARTS: dict[str, list[tuple[str, str, str | None]]] = {
    DMLCSR: [
        ("context", "DDGCN head: conva 3x3, DDualGCN, convb 3x3, bottleneck 3x3 (60x60)", None),
        ("context.dualgcn", "DDualGCN graph reasoning alone", "context"),
        ("layer6", "decoder (shared design)", None),
    ],
    EAGRNET: [
        ("layer5", "PSP context: 4 pooled branches + 3x3 bottleneck over 4096 channels (60x60)", None),
        ("edge_layer", "edge module: 1x1 convs on C2/C3/C4, shared 3x3 edge classifier (119x119)", None),
        ("block1", "edge-aware graph reasoning on the context (60x60)", None),
        ("block2", "edge-aware graph reasoning on C2 (119x119)", None),
        ("layer6", "decoder (shared design)", None),
    ],
}


@dataclass
class PartTiming:
    model: str
    part: str
    description: str
    part_of: str | None
    gflops: float
    median_ms: float
    p90_ms: float


def capture_inputs(network: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, tuple]:
    """The positional inputs each named submodule receives in one forward of ``x``."""
    seen: dict[str, tuple] = {}
    hooks = [network.get_submodule(name).register_forward_pre_hook(
        lambda module, args, name=name: seen.__setitem__(name, args)) for name in names]
    try:
        with torch.inference_mode():
            network(x)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def gflops_of(fn: Callable[[], object]) -> float:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def time_parts(models: list[BenchModel], x: torch.Tensor, schedule: Schedule, device: str = "cpu",
               on_sample: Callable[[], None] | None = None) -> list[PartTiming]:
    """Backbone (once, on the first model), then every part in PARTS, each called alone
    with its captured inputs, on ``device`` ("cpu" or "cuda", float32)."""
    clock = cuda_event_clock if device == "cuda" else host_clock
    x = x.to(device)
    rows: list[PartTiming] = []
    for index, model in enumerate(models):
        network = model.network if device == "cpu" else copy.deepcopy(model.network).to(device)
        inputs = capture_inputs(network, [name for name, _, _ in PARTS[model.name]], x)
        calls = [(BACKBONE, "ResNet-101, deep stem, output stride 8 (shared by both)", None,
                  partial(network.backbone, x))] if index == 0 else []
        calls += [(name, description, part_of, partial(network.get_submodule(name), *inputs[name]))
                  for name, description, part_of in PARTS[model.name]]
        for name, description, part_of, run in calls:
            def timed(run=run):
                with torch.inference_mode():
                    return run()

            latency = measure(timed, schedule, clock, on_sample)
            rows.append(PartTiming(BACKBONE if name == BACKBONE else model.name, name, description, part_of,
                                   gflops_of(run), latency.median_ms, latency.p90_ms))
        del network, inputs
    return rows


def summarize(rows: list[PartTiming], whole_ms: dict[str, float]) -> dict:
    """Per model: the top-level parts' sum (backbone included) against the whole forward,
    and the head-only totals whose ratio explains the network ratio."""
    backbone = next((r for r in rows if r.part == BACKBONE), None)
    summary = {"parts": [asdict(r) for r in rows], "models": {}}
    for model in (DMLCSR, EAGRNET):
        tops = [r for r in rows if r.model == model and r.part_of is None]
        if not tops or backbone is None:
            continue
        heads_ms = sum(r.median_ms for r in tops)
        heads_gflops = sum(r.gflops for r in tops)
        summary["models"][model] = {
            "heads_ms": heads_ms, "heads_gflops": heads_gflops,
            "backbone_ms": backbone.median_ms, "backbone_gflops": backbone.gflops,
            "sum_of_parts_ms": backbone.median_ms + heads_ms, "whole_ms": whole_ms.get(model),
        }
    models = summary["models"]
    if len(models) == 2 and models[DMLCSR]["heads_ms"] > 0:
        summary["heads_ratio"] = models[EAGRNET]["heads_ms"] / models[DMLCSR]["heads_ms"]
        summary["sum_of_parts_ratio"] = models[EAGRNET]["sum_of_parts_ms"] / models[DMLCSR]["sum_of_parts_ms"]
    return summary
