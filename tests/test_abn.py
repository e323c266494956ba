"""InPlaceABN's exact math: |weight| + eps scale, leaky ReLU 0.01, BatchNorm-style updates."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dmlcsr.networks.abn import InPlaceABN


def make_layer() -> InPlaceABN:
    layer = InPlaceABN(3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([2.0, -0.5, -3.0]))
        layer.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        layer.running_mean.copy_(torch.tensor([1.0, -1.0, 0.5]))
        layer.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
    return layer.eval()


def test_eval_matches_hand_computed_values_with_negative_weights():
    layer = make_layer()
    x = torch.tensor([3.0, -2.0, -1.0]).view(1, 3, 1, 1)
    eps = 1e-5
    # channel 0: (3-1)/sqrt(4+eps)*(2+eps)+0.1 ; channel 1 uses |-0.5|, channel 2 |-3|
    expected = []
    for xv, m, v, w, b in [(3.0, 1.0, 4.0, 2.0, 0.1), (-2.0, -1.0, 0.25, -0.5, -0.2), (-1.0, 0.5, 1.0, -3.0, 0.3)]:
        y = (xv - m) / (v + eps) ** 0.5 * (abs(w) + eps) + b
        expected.append(y if y >= 0 else 0.01 * y)
    out = layer(x).detach().flatten()
    torch.testing.assert_close(out, torch.tensor(expected), rtol=0, atol=1e-6)
    # channel 1 and 2 differ from plain BatchNorm, which would use the signed weight
    weight, bias = layer.weight.detach(), layer.bias.detach()
    plain = F.leaky_relu(F.batch_norm(x, layer.running_mean, layer.running_var, weight, bias, False, 0.0, eps), 0.01)
    plain = plain.flatten()
    assert abs(float(plain[2] - out[2])) > 1.0


def test_training_uses_batch_statistics_and_updates_running_ones():
    layer = make_layer().train()
    x = torch.randn(4, 3, 5, 5) * 3 + 2
    out = layer(x)
    mean = x.mean(dim=(0, 2, 3))
    var = x.var(dim=(0, 2, 3), unbiased=False)
    expected = (x - mean.view(1, 3, 1, 1)) / (var.view(1, 3, 1, 1) + 1e-5).sqrt()
    expected = expected * (layer.weight.detach().abs() + 1e-5).view(1, 3, 1, 1) + layer.bias.detach().view(1, 3, 1, 1)
    torch.testing.assert_close(out, F.leaky_relu(expected, 0.01), rtol=1e-5, atol=1e-5)
    n = x.numel() / 3
    torch.testing.assert_close(layer.running_mean, 0.9 * torch.tensor([1.0, -1.0, 0.5]) + 0.1 * mean)
    torch.testing.assert_close(layer.running_var,
                               0.9 * torch.tensor([4.0, 0.25, 1.0]) + 0.1 * var * n / (n - 1))
    assert int(layer.num_batches_tracked) == 1


def test_gradient_flows_through_abs_weight():
    layer = make_layer().train()
    layer(torch.randn(2, 3, 4, 4)).sum().backward()
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()


def test_loads_state_without_num_batches_tracked():
    source = make_layer()
    state = {k: v for k, v in source.state_dict().items() if k != "num_batches_tracked"}
    target = InPlaceABN(3)
    target.load_state_dict(state, strict=True)
    torch.testing.assert_close(target.weight, source.weight)
    assert int(target.num_batches_tracked) == 0
