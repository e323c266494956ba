"""EAGRNet's context module (``layer5``): CE2P's pyramid pooling over C5."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dmlcsr.networks.abn import InPlaceABN


class PSPModule(nn.Module):
    """Average-pool C5 to 1, 2, 3 and 6 cells, project each to ``out_features``, upsample,
    concatenate with C5 and fuse with a 3x3 conv (``bottleneck``). Official names."""

    def __init__(self, features: int, out_features: int = 512, abn: Callable[..., nn.Module] = InPlaceABN,
                 sizes: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.stages = nn.ModuleList([
            nn.Sequential(nn.AdaptiveAvgPool2d(output_size=(size, size)),
                          nn.Conv2d(features, out_features, kernel_size=1, bias=False),
                          abn(out_features))
            for size in sizes])
        self.bottleneck = nn.Sequential(
            nn.Conv2d(features + len(sizes) * out_features, out_features, kernel_size=3, padding=1, bias=False),
            abn(out_features))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        size = feats.shape[2:]
        priors = [F.interpolate(stage(feats), size=size, mode="bilinear", align_corners=True)
                  for stage in self.stages]
        return self.bottleneck(torch.cat([*priors, feats], 1))
