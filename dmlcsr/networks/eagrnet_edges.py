"""EAGRNet's edge module (``edge_layer``): a binary edge map that EAGRNet needs at inference,
since its graph modules pool features along the predicted edges."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dmlcsr.networks.abn import InPlaceABN
from dmlcsr.networks.parsing import conv1x1_abn


class EdgeModule(nn.Module):
    """CE2P's edge head: the shared 3x3 ``conv4`` classifies edges on C2, C3 and C4; ``conv5``
    fuses the three maps. Unlike DML-CSR's training-only ``Edges`` there is no ``conv5_b``:
    the one output is the 2-class (non-edge, edge) map at C2's resolution."""

    def __init__(self, abn: Callable[..., nn.Module] = InPlaceABN,
                 in_fea: tuple[int, int, int] = (256, 512, 1024), mid_fea: int = 256, out_fea: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(*conv1x1_abn(in_fea[0], mid_fea, abn))
        self.conv2 = nn.Sequential(*conv1x1_abn(in_fea[1], mid_fea, abn))
        self.conv3 = nn.Sequential(*conv1x1_abn(in_fea[2], mid_fea, abn))
        self.conv4 = nn.Conv2d(mid_fea, out_fea, kernel_size=3, padding=1, bias=True)
        self.conv5 = nn.Conv2d(out_fea * 3, out_fea, kernel_size=1, bias=True)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Edge logits (N x 2 x H2 x W2) and the concatenated 3 x ``mid_fea`` edge features."""
        size = x1.shape[2:]

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, size=size, mode="bilinear", align_corners=True)

        feats = [self.conv1(x1), self.conv2(x2), self.conv3(x3)]
        edges = [self.conv4(f) for f in feats]
        edge = self.conv5(torch.cat([edges[0], up(edges[1]), up(edges[2])], dim=1))
        return edge, torch.cat([feats[0], up(feats[1]), up(feats[2])], dim=1)
