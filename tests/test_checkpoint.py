"""Checkpoint loading: the forms users have, and a clear one-line error for each bad one."""

from __future__ import annotations

import pytest
import torch

from dmlcsr.checkpoint import infer_num_classes, load_dml_csr, read_state_dict
from dmlcsr.errors import DmlcsrError
from dmlcsr.networks import DML_CSR


@pytest.fixture(scope="module")
def trained_state():
    torch.manual_seed(0)
    return DML_CSR(11, trained=True).state_dict()


def save(tmp_path, obj, name="ckpt.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def assert_same_deploy_weights(model, state):
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_training_checkpoint_loads_into_deploy_build_dropping_edges(tmp_path, trained_state):
    model, report = load_dml_csr(save(tmp_path, trained_state))
    assert report.num_classes == 11 and not model.is_trained
    assert len(report.dropped_keys) == 24 and all(k.startswith("edge_layer.") for k in report.dropped_keys)
    assert_same_deploy_weights(model, trained_state)
    assert len(report.sha256) == 64


@pytest.mark.parametrize("wrap", ["module", "state_dict", "model", "module+state_dict"])
def test_wrapped_and_prefixed_checkpoints_load(tmp_path, trained_state, wrap):
    state = trained_state
    if "module" in wrap:
        state = {f"module.{k}": v for k, v in state.items()}
    if "state_dict" in wrap:
        state = {"state_dict": state, "epoch": 3}
    if wrap == "model":
        state = {"model": state}
    model, _ = load_dml_csr(save(tmp_path, state))
    assert_same_deploy_weights(model, trained_state)


def test_inplace_abn_10_checkpoint_without_num_batches_tracked_loads(tmp_path, trained_state):
    state = {k: v for k, v in trained_state.items() if not k.endswith("num_batches_tracked")}
    model, _ = load_dml_csr(save(tmp_path, state), trained=True)
    torch.testing.assert_close(model.layer1[0].bn1.running_var, trained_state["layer1.0.bn1.running_var"])


def test_training_build_loads_training_checkpoint(tmp_path, trained_state):
    model, report = load_dml_csr(save(tmp_path, trained_state), trained=True)
    assert model.is_trained and report.dropped_keys == []


def test_errors_are_one_line_and_name_the_fix(tmp_path, trained_state):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00garbage" * 10)
    cases = {
        "not found": lambda: load_dml_csr(tmp_path / "nope.pth"),
        "not a readable PyTorch checkpoint": lambda: load_dml_csr(junk),
        "holds no state_dict": lambda: load_dml_csr(save(tmp_path, [1, 2, 3], "list.pth")),
        "trained for 11 classes, not 19": lambda: load_dml_csr(save(tmp_path, trained_state), num_classes=19),
        "EAGRNet": lambda: load_dml_csr(save(tmp_path, {"layer5.conv.weight": torch.zeros(1),
                                                        "edge_layer.conv1.weight": torch.zeros(1)}, "e.pth")),
        "missing keys": lambda: load_dml_csr(save(tmp_path, {k: v for k, v in trained_state.items()
                                                             if not k.startswith("layer2.")}, "partial.pth")),
    }
    for expected, call in cases.items():
        with pytest.raises(DmlcsrError) as info:
            call()
        message = str(info.value)
        assert expected in message and "\n" not in message, message


def test_empty_file_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(DmlcsrError, match="not a readable PyTorch checkpoint"):
        read_state_dict(path)


def test_infer_num_classes_reads_the_classifier(trained_state):
    assert infer_num_classes(trained_state) == 11
