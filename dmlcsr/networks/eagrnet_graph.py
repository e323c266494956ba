"""EAGRNet's edge-aware graph reasoning (``block1`` on the context, ``block2`` on C2).

Features are projected onto a few graph nodes anchored on a coarse grid of edge-weighted
features, reasoned over with a one-layer GCN, and projected back as a residual.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dmlcsr.networks.abn import InPlaceABN


class GCN(nn.Module):
    """One graph convolution: node mixing (``conv1``, with bias) as a Laplacian-like step
    (result minus input), then a state update (``conv2``) and ReLU."""

    def __init__(self, num_state: int, num_node: int, bias: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(num_node, num_node, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv1d(num_state, num_state, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x states x nodes."""
        h = self.conv1(x.transpose(1, 2)).transpose(1, 2) - x
        return self.relu(self.conv2(h))


class EAGRModule(nn.Module):
    """Edge-aware graph reasoning over ``mids`` x ``mids`` nodes of ``plane_mid`` states.

    The node anchors are the edge-weighted projected features average-pooled to a
    (mids + 2)^2 grid with its border dropped; every pixel is assigned to the nodes by a
    softmax over its similarity to the anchors.
    """

    def __init__(self, num_in: int, plane_mid: int, mids: int, abn: Callable[..., nn.Module] = InPlaceABN,
                 normalize: bool = False) -> None:
        super().__init__()
        self.normalize = normalize
        self.num_s = int(plane_mid)
        self.num_n = mids * mids
        self.priors = nn.AdaptiveAvgPool2d(output_size=(mids + 2, mids + 2))
        self.conv_state = nn.Conv2d(num_in, self.num_s, kernel_size=1)
        self.conv_proj = nn.Conv2d(num_in, self.num_s, kernel_size=1)
        self.gcn = GCN(num_state=self.num_s, num_node=self.num_n)
        self.conv_extend = nn.Conv2d(self.num_s, num_in, kernel_size=1, bias=False)
        self.blocker = abn(num_in)

    def forward(self, x: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        """x: N x num_in x H x W; edge: the edge logits (N x 2 x h x w, any size)."""
        n, _, h, w = x.shape
        # the official F.upsample(edge, size): nearest, then P(edge) from a 2-way softmax
        edge = F.interpolate(edge, size=(h, w), mode="nearest")
        edge = torch.softmax(edge, dim=1)[:, 1:2]
        x_state = self.conv_state(x).view(n, self.num_s, -1)                       # N, S, HW
        x_proj = self.conv_proj(x)
        anchors = self.priors(x_proj * edge)[:, :, 1:-1, 1:-1].reshape(n, self.num_s, -1)  # N, S, nodes
        assignment = torch.softmax(torch.matmul(anchors.transpose(1, 2), x_proj.reshape(n, self.num_s, -1)),
                                   dim=1)                                           # N, nodes, HW
        nodes = torch.matmul(x_state, assignment.transpose(1, 2))                  # N, S, nodes
        if self.normalize:
            nodes = nodes * (1.0 / x_state.shape[2])
        x_back = torch.matmul(self.gcn(nodes), assignment).view(n, self.num_s, h, w)
        return x + self.blocker(self.conv_extend(x_back))
