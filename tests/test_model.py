"""The reference DML-CSR: official keys and shapes, output shapes, deploy == training."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from dmlcsr.networks import DML_CSR
from dmlcsr.size_report import count_flops, count_parameters


def listing(model: torch.nn.Module) -> list[str]:
    return [f"{k} {tuple(v.shape)}" for k, v in model.state_dict().items()]


@pytest.mark.parametrize("num_classes", [11, 19])
@pytest.mark.parametrize("trained", [False, True])
def test_state_dict_matches_official_listing(num_classes, trained, reference_listing):
    expected = reference_listing(num_classes, trained)
    assert len(expected) == (779 if trained else 755)
    assert listing(DML_CSR(num_classes, trained=trained)) == expected


@pytest.mark.parametrize("num_classes", [11, 19])
def test_forward_shapes_small_input(num_classes):
    torch.manual_seed(0)
    model = DML_CSR(num_classes, trained=True).eval()
    with torch.no_grad():
        seg, binary_edge, semantic_edge = model(torch.randn(2, 3, 129, 129))
    assert seg.shape == (2, num_classes, 33, 33)
    assert binary_edge.shape == (2, 2, 33, 33)
    assert semantic_edge.shape == (2, num_classes, 33, 33)


def test_forward_shape_and_size_at_473():
    model = DML_CSR(19, trained=False).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 473, 473)).shape == (1, 19, 119, 119)
    # figures measured on the official code with the real inplace_abn (../shared/reference)
    assert count_parameters(model) == 68_060_213
    assert count_flops(model, (473, 473)) == pytest.approx(505.7e9, rel=1e-3)


def test_training_build_in_eval_equals_deploy_build():
    torch.manual_seed(1)
    trained = DML_CSR(11, trained=True)
    with torch.no_grad():  # non-trivial statistics and gates so every path counts
        for module in trained.modules():
            if hasattr(module, "running_var"):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 2.0)
        trained.context.dualgcn.gamma1.fill_(0.3)
    deploy = DML_CSR(11, trained=False)
    state = {k: v for k, v in trained.state_dict().items() if not k.startswith("edge_layer.")}
    deploy.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 97, 97)
    with torch.no_grad():
        assert torch.equal(trained.eval()(x)[0], deploy.eval()(x))


def test_importing_dmlcsr_and_runtime_does_not_import_torch():
    code = "import sys, dmlcsr, dmlcsr.core.geometry, dmlcsr.runtime; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
