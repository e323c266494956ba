"""DML-CSR: ResNet-101 (deep stem, output stride 8) + DDGCN context + parsing head, and
the edge branch when built for training. Attribute names follow the official code."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dmlcsr.networks.abn import InPlaceABN
from dmlcsr.networks.bottleneck import Bottleneck
from dmlcsr.networks.ddgcn import DDualGCNHead
from dmlcsr.networks.edges import Edges
from dmlcsr.networks.parsing import Parsing

LAYERS = (3, 4, 23, 3)
STRIDES = (1, 2, 1, 1)
DILATIONS = (1, 1, 1, 2)


class DML_CSR(nn.Module):  # noqa: N801 - the official class name
    """The DML-CSR face parser.

    ``trained=True`` adds ``edge_layer`` and makes forward return
    (seg, binary_edge, semantic_edge); ``trained=False`` is the deploy build the official
    test script uses, returning seg logits (N x C x H/4 x W/4, 119x119 at 473x473).
    """

    def __init__(self, num_classes: int, abn: Callable[..., nn.Module] = InPlaceABN,
                 trained: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.is_trained = trained
        self.abn = abn
        self.inplanes = 128
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = abn(64)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=1, padding=1, bias=False)
        self.bn2 = abn(64)
        self.relu2 = nn.ReLU(inplace=False)
        self.conv3 = nn.Conv2d(64, 128, 3, stride=1, padding=1, bias=False)
        self.bn3 = abn(128)
        self.relu3 = nn.ReLU(inplace=False)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, LAYERS[0], STRIDES[0], DILATIONS[0])
        self.layer2 = self._make_layer(128, LAYERS[1], STRIDES[1], DILATIONS[1])
        self.layer3 = self._make_layer(256, LAYERS[2], STRIDES[2], DILATIONS[2])
        self.layer4 = self._make_layer(512, LAYERS[3], STRIDES[3], DILATIONS[3])
        self.context = DDualGCNHead(2048, 512, abn)
        self.layer6 = Parsing(512, 256, num_classes, abn)
        if trained:
            self.edge_layer = Edges(abn, out_fea=num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
        out_planes = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out_planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, out_planes, kernel_size=1, stride=stride, bias=False),
                self.abn(out_planes))
        layers = [Bottleneck(self.inplanes, planes, stride, self.abn, dilation, downsample)]
        self.inplanes = out_planes
        layers += [Bottleneck(self.inplanes, planes, 1, self.abn, dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.maxpool(self.relu3(self.bn3(self.conv3(x))))
        x2 = self.layer1(x)   # C2: 1/4
        x3 = self.layer2(x2)  # C3: 1/8
        x4 = self.layer3(x3)  # C4: 1/8
        x5 = self.layer4(x4)  # C5: 1/8, dilated
        seg, _ = self.layer6(self.context(x5), x2)
        if self.is_trained:
            binary_edge, semantic_edge, _ = self.edge_layer(x2, x3, x4)
            return seg, binary_edge, semantic_edge
        return seg
