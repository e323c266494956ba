"""Synchronized batch norm for multi-process training (what InPlaceABNSync gave the
official DDP runs): in training, every process normalizes with the statistics of the
GLOBAL batch, and gradients flow through them to every process's inputs.

``convert_sync_norms`` re-classes the model's InPlaceABN and BatchNorm1d layers in place
(same parameters, buffers and state-dict keys). Outside torch.distributed, or in eval
mode, the layers run their parent's forward unchanged, so the deploy math is untouched.
torch's own SyncBatchNorm is not used because it neither knows InPlaceABN's
|weight| + eps scale nor runs on CPU.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F
from torch import nn

from dmlcsr.networks.abn import InPlaceABN


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _global_batch_norm(x: torch.Tensor, norm: nn.Module, scale: torch.Tensor | None,
                       bias: torch.Tensor | None) -> torch.Tensor:
    """Normalize ``x`` (N x C x ...) with mean/variance over all processes' batches."""
    dims = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)
    xf = x.float()
    local_count = xf.new_tensor([x.numel() / x.shape[1]])
    sums = dist_fn.all_reduce(torch.cat([xf.sum(dims), local_count]))
    count = sums[-1]
    mean = sums[:-1] / count
    centred = xf - mean.view(shape)
    var = dist_fn.all_reduce((centred * centred).sum(dims)) / count
    if getattr(norm, "running_mean", None) is not None:
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)
            momentum = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
            unbiased = var * (count / (count - 1).clamp(min=1))
            norm.running_mean.mul_(1 - momentum).add_(mean.detach().to(norm.running_mean.dtype), alpha=momentum)
            norm.running_var.mul_(1 - momentum).add_(unbiased.detach().to(norm.running_var.dtype), alpha=momentum)
    y = centred * torch.rsqrt(var + norm.eps).view(shape)
    if scale is not None:
        y = y * scale.float().view(shape) + bias.float().view(shape)
    return y.to(x.dtype)


class SyncInPlaceABN(InPlaceABN):
    """InPlaceABN whose training statistics span all processes (InPlaceABNSync)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _distributed()):
            return super().forward(x)
        scale = self.weight.abs() + self.eps if self.affine else None
        y = _global_batch_norm(x, self, scale, self.bias)
        if self.activation == "leaky_relu":
            return F.leaky_relu(y, self.activation_param)
        if self.activation == "elu":
            return F.elu(y, self.activation_param)
        return y


class SyncBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d (the DDGCN's) whose training statistics span all processes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _distributed()):
            return super().forward(x)
        return _global_batch_norm(x, self, self.weight if self.affine else None, self.bias)


def convert_sync_norms(model: nn.Module) -> nn.Module:
    """Make every InPlaceABN / BatchNorm1d of ``model`` synchronized, in place; returns it."""
    for module in model.modules():
        if type(module) is InPlaceABN:
            module.__class__ = SyncInPlaceABN
        elif type(module) is nn.BatchNorm1d:
            module.__class__ = SyncBatchNorm1d
    return model
