"""DDGCN, DML-CSR's context module: a spatial graph over a pooled grid plus a
channel-interaction graph, fused by a 1x1 conv (official names kept for checkpoints)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dmlcsr.networks.abn import InPlaceABN

AbnFactory = Callable[..., nn.Module]


class SpatialGCN(nn.Module):
    """Graph reasoning over spatial positions (non-local style), gated by ``gamma``."""

    def __init__(self, plane: int, abn: AbnFactory = InPlaceABN) -> None:
        super().__init__()
        inter_plane = plane // 2
        self.node_k = nn.Conv2d(plane, inter_plane, kernel_size=1)
        self.node_v = nn.Conv2d(plane, inter_plane, kernel_size=1)
        self.node_q = nn.Conv2d(plane, inter_plane, kernel_size=1)
        self.conv_wg = nn.Conv1d(inter_plane, inter_plane, kernel_size=1, bias=False)
        self.bn_wg = nn.BatchNorm1d(inter_plane)
        self.softmax = nn.Softmax(dim=2)
        self.out = nn.Sequential(nn.Conv2d(inter_plane, plane, kernel_size=1), abn(plane))
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        node_k = self.node_k(x)
        b, c, h, w = node_k.shape
        node_k = node_k.flatten(2).transpose(1, 2)          # b, hw, c
        node_v = self.node_v(x).flatten(2).transpose(1, 2)  # b, hw, c
        node_q = self.node_q(x).flatten(2)                  # b, c, hw
        affinity = self.softmax(torch.bmm(node_q, node_v))  # b, c, c
        av = torch.bmm(node_k, affinity).transpose(1, 2)    # b, c, hw
        avw = self.bn_wg(self.conv_wg(av)).view(b, c, h, w)
        return self.gamma * self.out(avw) + x


class DDualGCN(nn.Module):
    """Spatial GCN on a 1/8 local grid plus a projected channel graph (Laplacian step)."""

    def __init__(self, planes: int, abn: AbnFactory = InPlaceABN, ratio: int = 4) -> None:
        super().__init__()
        nodes, inter = planes // ratio, planes // ratio * 2
        self.phi = nn.Conv2d(planes, inter, kernel_size=1, bias=False)
        self.bn_phi = abn(inter)
        self.theta = nn.Conv2d(planes, nodes, kernel_size=1, bias=False)
        self.bn_theta = abn(nodes)
        self.conv_adj = nn.Conv1d(nodes, nodes, kernel_size=1, bias=False)
        self.bn_adj = nn.BatchNorm1d(nodes)
        self.conv_wg = nn.Conv1d(inter, inter, kernel_size=1, bias=False)
        self.bn_wg = nn.BatchNorm1d(inter)
        self.conv3 = nn.Conv2d(inter, planes, kernel_size=1, bias=False)
        self.bn3 = abn(planes)
        self.local = nn.Sequential(*[
            m for _ in range(3) for m in (
                nn.Conv2d(planes, planes, 3, groups=planes, stride=2, padding=1, bias=False),
                abn(planes))
        ])
        self.gcn_local_attention = SpatialGCN(planes, abn)
        self.final = nn.Sequential(nn.Conv2d(planes * 2, planes, kernel_size=1, bias=False), abn(planes))
        self.gamma1 = nn.Parameter(torch.zeros(1))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        n, _, h, w = feat.shape
        local = self.gcn_local_attention(self.local(feat))
        local = F.interpolate(local, size=(h, w), mode="bilinear", align_corners=True)
        spatial_local_feat = feat * local + feat

        x_sqz = self.bn_phi(self.phi(feat)).flatten(2)       # n, 2k, hw
        b = self.bn_theta(self.theta(feat)).flatten(2)       # n, k, hw
        z_idt = torch.matmul(x_sqz, b.transpose(1, 2))       # n, 2k, k
        z = self.bn_adj(self.conv_adj(z_idt.transpose(1, 2))).transpose(1, 2)
        z = self.bn_wg(self.conv_wg(z + z_idt))
        y = self.bn3(self.conv3(torch.matmul(z, b).view(n, -1, h, w)))
        g_out = self.gamma1 * y + feat
        return self.final(torch.cat((spatial_local_feat, g_out), 1))


class DDualGCNHead(nn.Module):
    """conva -> DDualGCN -> convb, concatenated with the input and fused (``bottleneck``)."""

    def __init__(self, inplanes: int, interplanes: int, abn: AbnFactory = InPlaceABN) -> None:
        super().__init__()
        self.conva = nn.Sequential(nn.Conv2d(inplanes, interplanes, 3, padding=1, bias=False),
                                   abn(interplanes))
        self.dualgcn = DDualGCN(interplanes, abn)
        self.convb = nn.Sequential(nn.Conv2d(interplanes, interplanes, 3, padding=1, bias=False),
                                   abn(interplanes))
        self.bottleneck = nn.Sequential(
            nn.Conv2d(inplanes + interplanes, interplanes, kernel_size=3, padding=1, bias=False),
            abn(interplanes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.convb(self.dualgcn(self.conva(x)))
        return self.bottleneck(torch.cat([x, out], 1))
