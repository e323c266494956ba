"""The CE2P backbone DML-CSR and EAGRNet share: ResNet-101 with a three-conv deep stem and
output stride 8 (layer4 dilated by 2). Both official codes build it identically, under the
same top-level names (conv1..bn3, layer1..layer4), so one class serves both checkpoints."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dmlcsr.networks.abn import InPlaceABN
from dmlcsr.networks.bottleneck import Bottleneck

LAYERS = (3, 4, 23, 3)
STRIDES = (1, 2, 1, 1)
DILATIONS = (1, 1, 1, 2)


class DeepStemResNet101(nn.Module):
    """Stem and the four ResNet stages; subclasses add their heads after ``super().__init__``
    so that the state-dict order (stem, layers, heads) matches the official one."""

    def __init__(self, abn: Callable[..., nn.Module] = InPlaceABN) -> None:
        super().__init__()
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

    def backbone(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """C2 (1/4), C3, C4 and C5 (all 1/8; C5 dilated): 119 and 60 pixels at 473."""
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.maxpool(self.relu3(self.bn3(self.conv3(x))))
        x2 = self.layer1(x)
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        return x2, x3, x4, self.layer4(x4)
