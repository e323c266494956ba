"""The two networks the paper compares, as the paper timed them: DML-CSR's deploy build
(edge branch stripped) and the full EAGRNet (its edge module runs at inference)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dmlcsr.benchmarks.paper import DMLCSR, EAGRNET
from dmlcsr.networks import DML_CSR, EAGRNet
from dmlcsr.size_report import count_flops, count_parameters


class LogitsOnly(nn.Module):
    """EAGRNet returns (seg, edge); exported artefacts carry the seg logits only, as the
    runtime reads them. The edge map is still computed: both graph modules consume it."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)[0]


@dataclass
class BenchModel:
    """One network ready to time: eval mode, float32, on the CPU."""

    name: str
    network: nn.Module
    num_classes: int
    weights: str
    params: int = 0
    gflops: float = 0.0

    def exportable(self) -> nn.Module:
        """The module dmlcsr.export writes: one input, the logits as the one output."""
        return LogitsOnly(self.network) if isinstance(self.network, EAGRNet) else self.network


def load_models(num_classes: int, input_size: tuple[int, int], dmlcsr_ckpt: Path | None = None,
                eagrnet_ckpt: Path | None = None, seed: int = 0) -> list[BenchModel]:
    """Both networks, from checkpoints when given, else seeded random weights (latency does
    not depend on the weights' values; pass the demo checkpoint as ``dmlcsr_ckpt`` where
    labels are compared); parameters and FLOPs counted at ``input_size``."""
    from dmlcsr.checkpoint import load_dml_csr, load_eagrnet

    models = []
    for name, ckpt in ((DMLCSR, dmlcsr_ckpt), (EAGRNET, eagrnet_ckpt)):
        if ckpt is not None:
            loader = load_dml_csr if name == DMLCSR else load_eagrnet
            network, report = loader(ckpt, num_classes=num_classes)
            weights = f"{Path(ckpt).name} (sha256 {report.sha256[:12]})"
        else:
            torch.manual_seed(seed)
            network = DML_CSR(num_classes, trained=False) if name == DMLCSR else EAGRNet(num_classes)
            weights = f"random (seed {seed})"
        network = network.eval().float()
        models.append(BenchModel(name, network, num_classes, weights, count_parameters(network),
                                 count_flops(network, input_size) / 1e9))
    return models
