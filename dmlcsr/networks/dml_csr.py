"""DML-CSR: ResNet-101 (deep stem, output stride 8) + DDGCN context + parsing head, and
the edge branch when built for training. Attribute names follow the official code."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dmlcsr.networks.abn import InPlaceABN
from dmlcsr.networks.ddgcn import DDualGCNHead
from dmlcsr.networks.edges import Edges
from dmlcsr.networks.parsing import Parsing
from dmlcsr.networks.resnet import DeepStemResNet101


class DML_CSR(DeepStemResNet101):  # noqa: N801 - the official class name
    """The DML-CSR face parser.

    ``trained=True`` adds ``edge_layer`` and makes forward return
    (seg, binary_edge, semantic_edge); ``trained=False`` is the deploy build the official
    test script uses, returning seg logits (N x C x H/4 x W/4, 119x119 at 473x473).
    """

    def __init__(self, num_classes: int, abn: Callable[..., nn.Module] = InPlaceABN,
                 trained: bool = True) -> None:
        super().__init__(abn)
        self.num_classes = num_classes
        self.is_trained = trained
        self.context = DDualGCNHead(2048, 512, abn)
        self.layer6 = Parsing(512, 256, num_classes, abn)
        if trained:
            self.edge_layer = Edges(abn, out_fea=num_classes)

    def forward(self, x: torch.Tensor):
        x2, x3, x4, x5 = self.backbone(x)
        seg, _ = self.layer6(self.context(x5), x2)
        if self.is_trained:
            binary_edge, semantic_edge, _ = self.edge_layer(x2, x3, x4)
            return seg, binary_edge, semantic_edge
        return seg
