"""Cyclical self-regulation: Eq. 6 on toy weights, batch-norm re-estimation, the schedule."""

import math

import pytest
import torch
from torch import nn

from dmlcsr.errors import DmlcsrError
from dmlcsr.networks.abn import InPlaceABN
from dmlcsr.training.csr import CsrSchedule, ensemble_into, reestimate_batch_norm


def _linear(value: float) -> nn.Linear:
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.fill_(value)
        layer.bias.fill_(-value)
    return layer


def test_eq6_ensemble_is_the_running_mean_of_cycle_weights():
    aggregate = _linear(100.0)  # whatever it held before the first cycle is replaced
    expected = []
    for m, value in enumerate([3.0, 6.0, 9.0, 2.0]):
        ensemble_into(aggregate, _linear(value), models_averaged=m)
        expected.append(value)
        mean = sum(expected) / len(expected)  # m/(m+1) old + 1/(m+1) new == mean of all
        assert aggregate.weight.detach().flatten().tolist() == pytest.approx([mean, mean])
        assert aggregate.bias.detach().tolist() == pytest.approx([-mean])


def test_ensemble_leaves_batch_norm_statistics_alone():
    aggregate, model = InPlaceABN(3), InPlaceABN(3)
    model.running_mean.fill_(5.0)
    ensemble_into(aggregate, model, 1)
    assert torch.equal(aggregate.running_mean, torch.zeros(3))


class _Norms(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.abn = InPlaceABN(3, activation="identity")
        self.bn1d = nn.BatchNorm1d(3)

    def forward(self, x):
        return self.bn1d(self.abn(x).mean(dim=3))


def test_bn_reestimation_averages_batch_statistics_over_the_data():
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randn(n, 3, 4, 5, generator=generator) * 3 + 2 for n in (4, 4, 2)]
    model = _Norms()
    model.abn.running_mean.fill_(99.0)
    seen = reestimate_batch_norm(model, batches)
    assert seen == 10 and not model.training
    assert model.abn.momentum == 0.1 and model.bn1d.momentum == 0.1  # restored
    # momentum b / (n + b) makes the running value the image-weighted mean of batch values
    means = [b.mean(dim=(0, 2, 3)) for b in batches]
    variances = [b.transpose(0, 1).reshape(3, -1).var(dim=1, unbiased=True) for b in batches]
    weights = [len(b) / seen for b in batches]
    torch.testing.assert_close(model.abn.running_mean, sum(w * m for w, m in zip(weights, means, strict=True)))
    torch.testing.assert_close(model.abn.running_var, sum(w * v for w, v in zip(weights, variances, strict=True)))


def test_official_schedule():
    s = CsrSchedule()  # 200 epochs, cycles from 150, 10 epochs each, lr 1e-3
    assert s.learning_rate(0, 0, 100) == pytest.approx(1e-3)
    assert s.learning_rate(75, 0, 100) == pytest.approx(1e-3 * (1 - 75 / 200) ** 0.9)
    assert s.learning_rate(150, 0, 100) == pytest.approx(1e-3 / 2)  # each cycle restarts at lr / 2
    assert s.learning_rate(155, 0, 100) == pytest.approx((1e-3 / 2 + 1e-3 / 100) / 2)  # cosine midpoint
    assert s.learning_rate(160, 0, 100) == pytest.approx(1e-3 / 2)
    assert s.learning_rate(169, 99, 100) == pytest.approx(1e-5 + (5e-4 - 1e-5) * (1 + math.cos(math.pi * 0.999)) / 2)
    ends = [e + 1 for e in range(200) if s.aggregates_after(e)]
    assert ends == [150, 160, 170, 180, 190, 200]  # as the official train.py


def test_schedule_rejects_empty_cycles():
    with pytest.raises(DmlcsrError, match="at least 1"):
        CsrSchedule(cycle_epochs=0)
