"""EAGRNet, the latency baseline: official keys and shapes, output shapes, the edge module in
the inference path, the graph module's math, and checkpoint loading."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dmlcsr.checkpoint import load_eagrnet
from dmlcsr.errors import DmlcsrError
from dmlcsr.networks import DML_CSR
from dmlcsr.networks.eagrnet import EAGRNet
from dmlcsr.networks.eagrnet_graph import EAGRModule
from dmlcsr.size_report import count_parameters


def listing(model: torch.nn.Module) -> list[str]:
    return [f"{k} {tuple(v.shape)}" for k, v in model.state_dict().items()]


def abn_entries(prefix: str, channels: int) -> list[str]:
    """What one InPlaceABN(Sync) holds under inplace_abn 1.1 (see ../shared/README.md)."""
    return [f"{prefix}.{name} ({channels},)" for name in ("weight", "bias", "running_mean", "running_var")] \
        + [f"{prefix}.num_batches_tracked ()"]


def conv_abn_entries(prefix: str, cout: int, cin: int, k: int = 1) -> list[str]:
    """nn.Sequential(Conv2d(bias=False), abn): entries .0.weight and .1.*"""
    return [f"{prefix}.0.weight ({cout}, {cin}, {k}, {k})", *abn_entries(f"{prefix}.1", cout)]


def eagr_module_entries(prefix: str, num_in: int, num_s: int, num_n: int = 16) -> list[str]:
    return [f"{prefix}.conv_state.weight ({num_s}, {num_in}, 1, 1)", f"{prefix}.conv_state.bias ({num_s},)",
            f"{prefix}.conv_proj.weight ({num_s}, {num_in}, 1, 1)", f"{prefix}.conv_proj.bias ({num_s},)",
            f"{prefix}.gcn.conv1.weight ({num_n}, {num_n}, 1)", f"{prefix}.gcn.conv1.bias ({num_n},)",
            f"{prefix}.gcn.conv2.weight ({num_s}, {num_s}, 1)",
            f"{prefix}.conv_extend.weight ({num_in}, {num_s}, 1, 1)",
            *abn_entries(f"{prefix}.blocker", num_in)]


def official_eagrnet_listing(dmlcsr_listing: list[str]) -> list[str]:
    """The state-dict listing EAGRNet(num_classes, InPlaceABN) of tegusi/EAGRNet
    (networks/EAGR.py, as evaluate.py builds it) has, derived by reading that code.

    No listing measured on the official code is available, so it is put together from:
    - the backbone (conv1/bn1..bn3, layer1..layer4) and the decoder (layer6): EAGR.py builds
      both exactly as DML-CSR's official code does (same Bottleneck, deep stem, strides
      1,2,1,1, dilations 1,1,1,2, multi_grid 1; Decoder_Module(512, 256, C) == DML-CSR's
      Parsing layer for layer), so those lines are taken from the listing measured on the
      official DML-CSR code with the real inplace_abn;
    - registration order in EAGRNet.__init__: layer1..4, layer5, edge_layer, block1,
      block2, layer6;
    - layer5 = PSPModule(2048, 512): stages[i] = Sequential(AdaptiveAvgPool2d, Conv2d(2048,
      512, 1, bias=False), abn(512)) for sizes 1,2,3,6 -> stages.i.1 / stages.i.2;
      bottleneck = Sequential(Conv2d(2048 + 4 * 512, 512, 3, bias=False), abn(512));
    - edge_layer = Edge_Module(abn): conv1..conv3 = Sequential(Conv2d(256|512|1024, 256, 1,
      bias=False), abn(256)); conv4 = Conv2d(256, 2, 3, bias=True); conv5 = Conv2d(6, 2, 1,
      bias=True) (no conv5_b, unlike DML-CSR's edge branch);
    - block1 = EAGRModule(512, 128, 4), block2 = EAGRModule(256, 64, 4): conv_state and
      conv_proj are Conv2d(num_in, num_s, 1) with bias; gcn = GCN(num_s, 16) with conv1 =
      Conv1d(16, 16, 1) (bias) and conv2 = Conv1d(num_s, num_s, 1, bias=False);
      conv_extend = Conv2d(num_s, num_in, 1, bias=False); blocker = abn(num_in);
      AdaptiveAvgPool2d and ReLU hold nothing.
    """
    backbone = [line for line in dmlcsr_listing if not line.startswith(("context.", "layer6."))]
    decoder = [line for line in dmlcsr_listing if line.startswith("layer6.")]
    psp = [line for i in range(4) for line in
           [f"layer5.stages.{i}.1.weight (512, 2048, 1, 1)", *abn_entries(f"layer5.stages.{i}.2", 512)]]
    psp += conv_abn_entries("layer5.bottleneck", 512, 4096, 3)
    edges = [*conv_abn_entries("edge_layer.conv1", 256, 256), *conv_abn_entries("edge_layer.conv2", 256, 512),
             *conv_abn_entries("edge_layer.conv3", 256, 1024),
             "edge_layer.conv4.weight (2, 256, 3, 3)", "edge_layer.conv4.bias (2,)",
             "edge_layer.conv5.weight (2, 6, 1, 1)", "edge_layer.conv5.bias (2,)"]
    graphs = eagr_module_entries("block1", 512, 128) + eagr_module_entries("block2", 256, 64)
    return backbone + psp + edges + graphs + decoder


@pytest.mark.parametrize("num_classes", [11, 19])
def test_state_dict_matches_listing_derived_from_official_code(num_classes, reference_listing):
    expected = official_eagrnet_listing(reference_listing(num_classes, False))
    assert len(expected) == 740
    assert listing(EAGRNet(num_classes)) == expected


def test_parameter_count_is_the_papers():
    # Te et al. report 66.72 M parameters (the 11-class Helen/LaPa model)
    assert round(count_parameters(EAGRNet(11)) / 1e6, 2) == 66.72


@pytest.fixture(scope="module")
def seeded_eagrnet() -> EAGRNet:
    """11 classes, non-trivial running statistics so every norm matters."""
    torch.manual_seed(0)
    model = EAGRNet(11)
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "running_var"):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_forward_shapes_small_input(seeded_eagrnet):
    with torch.no_grad():
        seg, edge = seeded_eagrnet(torch.randn(2, 3, 129, 129))
    assert seg.shape == (2, 11, 33, 33) and edge.shape == (2, 2, 33, 33)


def test_forward_shapes_at_473():
    with torch.no_grad():
        seg, edge = EAGRNet(19).eval()(torch.randn(1, 3, 473, 473))
    assert seg.shape == (1, 19, 119, 119) and edge.shape == (1, 2, 119, 119)


def test_edge_module_feeds_both_graph_modules(seeded_eagrnet):
    """The edge logits the network returns are the ones block1 and block2 pool along, and
    block1/block2 feed the decoder: the edge module is part of inference (which is why the
    paper timed EAGRNet with it)."""
    seen = {}
    hooks = [getattr(seeded_eagrnet, name).register_forward_hook(
        lambda module, args, out, name=name: seen.__setitem__(name, (args, out)))
        for name in ("edge_layer", "layer5", "block1", "block2", "layer6")]
    try:
        with torch.no_grad():
            _, edge = seeded_eagrnet(torch.randn(1, 3, 97, 97))
    finally:
        for hook in hooks:
            hook.remove()
    assert seen["edge_layer"][1][0] is edge
    assert seen["block1"][0][1] is edge and seen["block2"][0][1] is edge
    assert seen["block1"][0][0] is seen["layer5"][1]
    assert seen["layer6"][0][0] is seen["block1"][1] and seen["layer6"][0][1] is seen["block2"][1]


def test_graph_module_follows_the_official_math():
    """EAGRModule against the official forward written out step by step (EAGR.py)."""
    torch.manual_seed(3)
    module = EAGRModule(8, 4, 2).eval()
    with torch.no_grad():
        module.blocker.running_mean.uniform_(-0.5, 0.5)
        module.blocker.weight.uniform_(-1.0, 1.0)  # negative weights: the |w| + eps scale counts
    x, edge = torch.randn(2, 8, 11, 13), torch.randn(2, 2, 23, 27)
    with torch.no_grad():
        p_edge = F.softmax(F.interpolate(edge, (11, 13), mode="nearest"), dim=1)[:, 1:2]
        state = module.conv_state(x).reshape(2, 4, -1)
        proj = module.conv_proj(x)
        anchor = F.adaptive_avg_pool2d(proj * p_edge, 4)[:, :, 1:3, 1:3].reshape(2, 4, 4)
        assign = F.softmax(torch.einsum("bsn,bsp->bnp", anchor, proj.reshape(2, 4, -1)), dim=1)
        nodes = torch.einsum("bsp,bnp->bsn", state, assign)
        mixed = torch.einsum("mn,bsn->bsm", module.gcn.conv1.weight[:, :, 0], nodes) \
            + module.gcn.conv1.bias[None, None, :] - nodes
        relu = F.relu(torch.einsum("ts,bsn->btn", module.gcn.conv2.weight[:, :, 0], mixed))
        back = torch.einsum("bsn,bnp->bsp", relu, assign).reshape(2, 4, 11, 13)
        y = F.conv2d(back, module.conv_extend.weight)
        bn = module.blocker
        y = (y - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + 1e-5) \
            * (bn.weight.abs() + 1e-5)[:, None, None] + bn.bias[:, None, None]
        expected = x + F.leaky_relu(y, 0.01)
        torch.testing.assert_close(module(x, edge), expected, rtol=1e-5, atol=1e-5)


def save(tmp_path, obj, name="eagrnet.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("form", ["module+state_dict", "inplace_abn 1.0"])
def test_checkpoint_forms_load(tmp_path, seeded_eagrnet, form):
    state = seeded_eagrnet.state_dict()
    if form == "inplace_abn 1.0":  # EAGRNet was trained in 2020, before num_batches_tracked
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if "module" in form:  # train.py's DistributedDataParallel, if saved without .module
        state = {f"module.{k}": v for k, v in state.items()}
    if "state_dict" in form:
        state = {"state_dict": state, "epoch": 99}
    model, report = load_eagrnet(save(tmp_path, state))
    assert isinstance(model, EAGRNet) and not model.training and report.num_classes == 11
    for key, value in seeded_eagrnet.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(model.state_dict()[key], value), key


def test_checkpoint_errors_are_one_line_and_name_the_fix(tmp_path, seeded_eagrnet):
    state = seeded_eagrnet.state_dict()
    dmlcsr_ckpt = save(tmp_path, DML_CSR(11, trained=True).state_dict(), "dmlcsr.pth")
    cases = {
        "DML-CSR checkpoint": lambda: load_eagrnet(dmlcsr_ckpt),
        "trained for 11 classes, not 19": lambda: load_eagrnet(save(tmp_path, state), num_classes=19),
        "missing keys": lambda: load_eagrnet(save(tmp_path, {k: v for k, v in state.items()
                                                             if not k.startswith("layer5.")}, "partial.pth")),
        "not found": lambda: load_eagrnet(tmp_path / "nope.pth"),
    }
    for expected, call in cases.items():
        with pytest.raises(DmlcsrError) as info:
            call()
        message = str(info.value)
        assert expected in message and "\n" not in message, message
    with pytest.raises(DmlcsrError, match="load_dml_csr"):
        load_eagrnet(dmlcsr_ckpt)
