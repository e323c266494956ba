"""The training-only edge branch: binary and category (semantic) edges from C2, C3, C4."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dmlcsr.networks.abn import InPlaceABN
from dmlcsr.networks.parsing import conv1x1_abn


class Edges(nn.Module):
    """Shared ``conv4`` edge classifier on three levels, fused by ``conv5``/``conv5_b``."""

    def __init__(self, abn: Callable[..., nn.Module] = InPlaceABN,
                 in_fea: tuple[int, int, int] = (256, 512, 1024), mid_fea: int = 256,
                 out_fea: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(*conv1x1_abn(in_fea[0], mid_fea, abn))
        self.conv2 = nn.Sequential(*conv1x1_abn(in_fea[1], mid_fea, abn))
        self.conv3 = nn.Sequential(*conv1x1_abn(in_fea[2], mid_fea, abn))
        self.conv4 = nn.Conv2d(mid_fea, out_fea, kernel_size=3, padding=1, bias=True)
        self.conv5_b = nn.Conv2d(out_fea * 3, 2, kernel_size=1, bias=True)
        self.conv5 = nn.Conv2d(out_fea * 3, out_fea, kernel_size=1, bias=True)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = x1.shape[2:]

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, size=size, mode="bilinear", align_corners=True)

        feats = [self.conv1(x1), self.conv2(x2), self.conv3(x3)]
        edges = [self.conv4(f) for f in feats]
        edge = torch.cat([edges[0], up(edges[1]), up(edges[2])], dim=1)
        edge_fea = torch.cat([feats[0], up(feats[1]), up(feats[2])], dim=1)
        return self.conv5_b(edge), self.conv5(edge), edge_fea
