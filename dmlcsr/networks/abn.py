"""InPlaceABN (mapillary/inplace_abn 1.1) re-done in plain PyTorch.

The official DML-CSR checkpoints were trained with InPlaceABN(Sync). Its math differs from
BatchNorm + activation in one way that matters for exact parity: the affine scale is
``|weight| + eps``, not ``weight``. Writing it with ``F.batch_norm`` keeps it exportable to
ONNX as plain ops (the scale folds into constants) and lets it run on any device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InPlaceABN(nn.Module):
    """Batch norm with the |weight| + eps scale, followed by an activation.

    eval:  y = act((x - running_mean) / sqrt(running_var + eps) * (|weight| + eps) + bias)
    train: the batch statistics replace the running ones, which are updated as BatchNorm
    does (unbiased variance, ``momentum``; cumulative average when momentum is None).
    The default activation, leaky ReLU with slope 0.01, is the library's default and the
    one the official test script builds every layer with.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        activation: str = "leaky_relu",
        activation_param: float = 0.01,
    ) -> None:
        super().__init__()
        if activation not in ("leaky_relu", "elu", "identity"):
            raise ValueError(f"InPlaceABN: unknown activation {activation!r}")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.activation = activation
        self.activation_param = activation_param
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def reset_running_stats(self) -> None:
        """Back to mean 0, variance 1, no batches seen (as BatchNorm's method)."""
        self.running_mean.zero_()
        self.running_var.fill_(1)
        self.num_batches_tracked.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        scale = self.weight.abs() + self.eps if self.affine else None
        y = F.batch_norm(
            x, self.running_mean, self.running_var, scale, self.bias,
            self.training, momentum, self.eps,
        )
        if self.activation == "leaky_relu":
            return F.leaky_relu(y, self.activation_param)
        if self.activation == "elu":
            return F.elu(y, self.activation_param)
        return y

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        # Checkpoints saved under inplace_abn 1.0.x carry no num_batches_tracked.
        state_dict.setdefault(prefix + "num_batches_tracked", torch.tensor(0, dtype=torch.long))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, activation={self.activation}({self.activation_param})")
