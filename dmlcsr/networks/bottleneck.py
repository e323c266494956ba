"""The ResNet bottleneck block as DML-CSR builds it (every norm is an InPlaceABN)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dmlcsr.networks.abn import InPlaceABN


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (dilated) -> 1x1 with a residual, official names and activations.

    Each InPlaceABN carries its own leaky ReLU, the one before the residual addition and
    the one in the downsample branch included; the plain ReLUs after bn1/bn2 and after the
    addition follow the official code.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 abn: Callable[..., nn.Module] = InPlaceABN, dilation: int = 1,
                 downsample: nn.Module | None = None, multi_grid: int = 1) -> None:
        super().__init__()
        rate = dilation * multi_grid
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = abn(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=rate,
                               dilation=rate, bias=False)
        self.bn2 = abn(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = abn(planes * self.expansion)
        self.relu = nn.ReLU(inplace=False)
        self.relu_inplace = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu_inplace(out + residual)
