"""EAGRNet (Te et al., ECCV 2020), DML-CSR's latency baseline, with the official names so
its released checkpoints load as they are (repository tegusi/EAGRNet, networks/EAGR.py).

Same CE2P backbone as DML-CSR; PSP context (``layer5``) instead of DDGCN; an edge module
(``edge_layer``) that runs at inference because the two edge-aware graph modules
(``block1`` on the context, ``block2`` on C2) pool along its edges; the same decoder
(``layer6``, DML-CSR's ``Parsing``). Every norm is an InPlaceABN with the library's
default leaky ReLU 0.01, as the official code builds it (it passes no activation).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dmlcsr.networks.abn import InPlaceABN
from dmlcsr.networks.eagrnet_edges import EdgeModule
from dmlcsr.networks.eagrnet_graph import EAGRModule
from dmlcsr.networks.eagrnet_psp import PSPModule
from dmlcsr.networks.parsing import Parsing
from dmlcsr.networks.resnet import DeepStemResNet101


class EAGRNet(DeepStemResNet101):
    """The EAGRNet face parser; forward returns (seg logits, edge logits), both at C2's
    resolution (N x C x H/4 x W/4 and N x 2 x H/4 x W/4; 119 x 119 at 473 x 473)."""

    def __init__(self, num_classes: int, abn: Callable[..., nn.Module] = InPlaceABN) -> None:
        super().__init__(abn)
        self.num_classes = num_classes
        self.layer5 = PSPModule(2048, 512, abn)
        self.edge_layer = EdgeModule(abn)
        self.block1 = EAGRModule(512, 128, 4, abn)
        self.block2 = EAGRModule(256, 64, 4, abn)
        self.layer6 = Parsing(512, 256, num_classes, abn)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x2, x3, x4, x5 = self.backbone(x)
        edge, _ = self.edge_layer(x2, x3, x4)
        context = self.block1(self.layer5(x5), edge)
        seg, _ = self.layer6(context, self.block2(x2, edge))
        return seg, edge
