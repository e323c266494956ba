"""PyTorch targets: eager CPU fp32 (the reference), CPU bf16 autocast with channels-last
(AMX on recent Xeons), and on a CUDA GPU: plain eager fp32 as research code runs, then
fp32 and fp16 with channels-last captured into CUDA graphs (no per-kernel launch cost)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from dmlcsr.benchmarks.harness import cuda_event_clock
from dmlcsr.benchmarks.models import BenchModel
from dmlcsr.benchmarks.targets import BenchContext, Prepared, Target, no_gpu_reason
from dmlcsr.core.cpu import bf16_note


class TorchCpuFp32(Target):
    """The reference: the network as built, eager, NCHW."""

    def skip_reason(self, ctx: BenchContext) -> str | None:
        return None

    def prepare(self, model: BenchModel, batch: int, ctx: BenchContext) -> Prepared:
        x = torch.from_numpy(ctx.example_batch(batch))

        def run():
            with torch.inference_mode():
                return model.network(x)

        return Prepared(run)


class TorchCpuBf16(Target):
    """bfloat16 autocast on a channels-last copy (fast only with native bf16: the note says)."""

    def __init__(self, name: str, description: str) -> None:
        super().__init__(name, description)
        self._converted: dict[str, nn.Module] = {}

    def skip_reason(self, ctx: BenchContext) -> str | None:
        return None

    def prepare(self, model: BenchModel, batch: int, ctx: BenchContext) -> Prepared:
        if model.name not in self._converted:
            self._converted[model.name] = copy.deepcopy(model.network).to(memory_format=torch.channels_last)
        network = self._converted[model.name]
        x = torch.from_numpy(ctx.example_batch(batch)).contiguous(memory_format=torch.channels_last)

        def run():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                return network(x)

        return Prepared(run, note=bf16_note(ctx.cpu))

    def release(self) -> None:
        self._converted.clear()


class TorchCuda(Target):
    """A CUDA copy of the network in ``dtype``, optionally channels-last and replayed from a
    captured CUDA graph, timed with CUDA events."""

    def __init__(self, name: str, description: str, dtype: torch.dtype = torch.float32,
                 channels_last: bool = False, graphs: bool = False) -> None:
        super().__init__(name, description, "cuda")
        self.dtype, self.channels_last, self.graphs = dtype, channels_last, graphs
        self._converted: dict[str, nn.Module] = {}

    def skip_reason(self, ctx: BenchContext) -> str | None:
        return no_gpu_reason()

    def network_for(self, model: BenchModel) -> nn.Module:
        if model.name not in self._converted:
            network = copy.deepcopy(model.network).to("cuda", self.dtype)
            if self.channels_last:
                network = network.to(memory_format=torch.channels_last)
            self._converted[model.name] = network
        return self._converted[model.name]

    def prepare(self, model: BenchModel, batch: int, ctx: BenchContext) -> Prepared:
        torch.backends.cudnn.benchmark = True
        network = self.network_for(model)
        x = torch.from_numpy(ctx.example_batch(batch)).to("cuda", self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if not self.graphs:
            def run():
                with torch.inference_mode():
                    return network(x)

            return Prepared(run, clock=cuda_event_clock)
        return Prepared(capture_graph(network, x), clock=cuda_event_clock, note="CUDA graph replay")

    def release(self) -> None:
        self._converted.clear()
        torch.cuda.empty_cache()


def capture_graph(network: nn.Module, x: torch.Tensor):
    """Warm up on a side stream (cuDNN picks its algorithms), capture one forward into a
    CUDA graph and return its replay; ``x`` and the outputs stay alive with the closure."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(3):
            network(x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        outputs = network(x)

    def replay():
        graph.replay()
        return outputs

    return replay


def torch_targets() -> list[Target]:
    """The PyTorch rows in table order (fresh instances: targets keep converted copies)."""
    return [
        TorchCpuFp32("torch-cpu-fp32", "PyTorch eager, CPU, float32 (NCHW)"),
        TorchCpuBf16("torch-cpu-bf16", "PyTorch eager, CPU, bfloat16 autocast, channels-last"),
        TorchCuda("torch-cuda-fp32", "PyTorch eager, CUDA, float32 (NCHW): the plain research-code setting"),
        TorchCuda("torch-cuda-fp32-graph", "PyTorch, CUDA, float32, channels-last, CUDA graph",
                  channels_last=True, graphs=True),
        TorchCuda("torch-cuda-fp16-graph", "PyTorch, CUDA, float16, channels-last, CUDA graph",
                  dtype=torch.float16, channels_last=True, graphs=True),
    ]
