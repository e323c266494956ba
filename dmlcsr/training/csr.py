"""Cyclical self-regulation (paper Sec. 3.4): when a cycle ends, the current weights are
averaged into an aggregated model (Eq. 6), its batch-norm statistics are re-estimated on
the training data, and it then teaches the next cycle (Eq. 7, in losses.py). The
learning rate is the official one: polynomial decay before the cycles, then a cosine
from lr / 2 down to lr / 100 within every cycle.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from dmlcsr.errors import DmlcsrError
from dmlcsr.networks.abn import InPlaceABN


@dataclass(frozen=True)
class CsrSchedule:
    """Epoch plan and learning rate; the paper's 150 epochs + 5 cycles x 10 by default.

    The official code aggregates at the end of epoch ``csr_start`` and of every
    ``cycle_epochs`` after it (150, 160, ..., 200), so self-distillation runs from epoch
    ``csr_start`` on, taught by the latest aggregate.
    """

    epochs: int = 200
    csr_start: int = 150
    cycle_epochs: int = 10
    lr: float = 1e-3
    power: float = 0.9

    def __post_init__(self) -> None:
        if self.cycle_epochs < 1 or self.csr_start < 1 or self.epochs < 1:
            raise DmlcsrError("--epochs, --csr-start and --cycle-epochs must each be at least 1")

    def learning_rate(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """lr for ``step`` of ``epoch`` (both 0-based)."""
        if epoch < self.csr_start:
            progress = (epoch * steps_per_epoch + step) / (self.epochs * steps_per_epoch)
            return self.lr * (1.0 - progress) ** self.power
        within = ((epoch - self.csr_start) % self.cycle_epochs * steps_per_epoch + step) / (
            self.cycle_epochs * steps_per_epoch)
        low, high = self.lr / 100.0, self.lr / 2.0
        return low + (high - low) * (1.0 + math.cos(math.pi * within)) / 2.0

    def aggregates_after(self, epoch: int) -> bool:
        """Whether a cycle ends with ``epoch`` (0-based), i.e. the weights get ensembled."""
        done = epoch + 1
        return done >= self.csr_start and (done - self.csr_start) % self.cycle_epochs == 0


@torch.no_grad()
def ensemble_into(aggregate: nn.Module, model: nn.Module, models_averaged: int) -> None:
    """Eq. 6: theta_agg <- m / (m + 1) * theta_agg + 1 / (m + 1) * theta, with m the number
    of models already averaged (0 copies ``model``). Parameters only: the batch-norm
    statistics of an average of weights are not the average of statistics, they are
    re-estimated next (``reestimate_batch_norm``)."""
    alpha = 1.0 / (models_averaged + 1.0)
    current = dict(model.named_parameters())
    for name, param in aggregate.named_parameters():
        param.mul_(1.0 - alpha).add_(current[name].detach(), alpha=alpha)


def _norm_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (InPlaceABN, _BatchNorm)) and m.running_mean is not None]


@torch.no_grad()
def reestimate_batch_norm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Running statistics := the exact average of the batch statistics over ``batches``
    (momentum b / (n + b), as the official schp.bn_re_estimate); returns images seen.

    Under torch.distributed with synchronized norms every process sees the global batch
    statistics and ends with the same running statistics.
    """
    norms = _norm_layers(model)
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
    model.train()
    seen = 0
    for images in batches:
        count = images.shape[0]
        for norm in norms:
            norm.momentum = count / (seen + count)
        model(images)
        seen += count
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.eval()
    return seen
