"""The parsing head: context features upsampled onto C2 (119x119) and classified."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dmlcsr.networks.abn import InPlaceABN


def conv1x1_abn(cin: int, cout: int, abn: Callable[..., nn.Module]) -> list[nn.Module]:
    """A bias-free 1x1 conv and its norm, the pair every head here is built from."""
    return [nn.Conv2d(cin, cout, kernel_size=1, bias=False), abn(cout)]


class Parsing(nn.Module):
    """Fuses the context output (``xt``) with low-level C2 (``xl``) into class logits."""

    def __init__(self, in_plane1: int, in_plane2: int, num_classes: int,
                 abn: Callable[..., nn.Module] = InPlaceABN) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(*conv1x1_abn(in_plane1, 256, abn))
        self.conv2 = nn.Sequential(*conv1x1_abn(in_plane2, 48, abn))
        self.conv3 = nn.Sequential(*conv1x1_abn(304, 256, abn), *conv1x1_abn(256, 256, abn))
        self.conv4 = nn.Conv2d(256, num_classes, kernel_size=1, bias=True)

    def forward(self, xt: torch.Tensor, xl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv3(torch.cat([self.upsampled_context(xt, xl.shape[2:]), self.conv2(xl)], dim=1))
        return self.conv4(x), x

    def upsampled_context(self, xt: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """conv1 of the context features, bilinearly upsampled onto C2's grid; the rest of the
        head works per pixel (1x1 convs), which lets callers run it on sampled pixels."""
        return F.interpolate(self.conv1(xt), size=size, mode="bilinear", align_corners=True)
