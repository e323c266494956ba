"""Training end to end on a synthetic face-like dataset: a small parser must fit it, the
real DML-CSR must train, self-regulate, resume and leave a best.pth the deploy build
loads strictly, and dmlcsr-eval must score checkpoints and ONNX files alike."""

import json
import warnings

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from support.training import TinyParser, write_synthetic_faces

from dmlcsr.checkpoint import load_dml_csr
from dmlcsr.networks.dml_csr import DML_CSR
from dmlcsr.training.augment import AugmentConfig
from dmlcsr.training.cli import eval_main, train_main
from dmlcsr.training.datasets import open_index
from dmlcsr.training.evaluate import evaluate, torch_network
from dmlcsr.training.loop import TrainConfig, train

FIT_SIZE = (81, 81)
# An untrained parser scores mIoU ~0.05-0.2 here; getting background, skin and hair right
# but missing the small parts caps it near 0.5. 0.75 needs the eyes (told apart only by
# side) and the mouth found too; the run reaches ~0.85-0.9 (see docs/training.md).
FIT_MIOU = 0.75


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """TinyParser trained on 8 synthetic faces: 24 epochs x 2 steps, cycles from epoch 18."""
    root = write_synthetic_faces(tmp_path_factory.mktemp("faces"), {"train": 8}, size=80)
    config = TrainConfig(data=str(root), out=str(tmp_path_factory.mktemp("run")), val_split="train",
                         input_size=FIT_SIZE, batch_size=4, epochs=24, csr_start=18, cycle_epochs=3, lr=0.05,
                         augmentation=AugmentConfig(enabled=False), workers=0, eval_every=24, progress=False)
    index = open_index(root, "train")
    torch.manual_seed(config.seed)  # the loop builds its model after this same seeding
    before = evaluate(torch_network(TinyParser(6)), index, FIT_SIZE, 4, progress=False)
    result = train(config, TinyParser)
    return root, index, before, result


def test_short_run_reduces_the_loss_and_fits(fitted):
    _, index, before, result = fitted
    losses = [r["loss"]["total"] for r in result.history]
    assert losses[-1] < 0.5 * losses[0]
    best = TinyParser(6)
    missing, unexpected = best.load_state_dict(torch.load(result.out / "best.pth"), strict=False)
    assert not unexpected and missing and all(k.startswith("edge_layer.") for k in missing)
    after = evaluate(torch_network(best), index, FIT_SIZE, 4, progress=False)
    assert before.mean_iou < 0.3 and after.mean_iou >= FIT_MIOU


def test_cycles_ran_with_ensembling_and_distillation(fitted):
    _, _, _, result = fitted
    assert [r["aggregate"] for r in result.history if "aggregate" in r] == [1, 2, 3]  # after epochs 18, 21, 24
    assert [r["cycle"] for r in result.history][17:20] == [0, 1, 1]  # epoch 19 on learns from aggregate 1
    assert all(np.isfinite(r["loss"]["total"]) for r in result.history)
    assert result.best_source in ("model", "aggregate 1", "aggregate 2", "aggregate 3")


def test_eval_cli_scores_onnx_like_the_torch_model(fitted, tmp_path):
    root, index, _, result = fitted
    model = TinyParser(6)
    model.load_state_dict(torch.load(result.out / "best.pth"), strict=False)
    model.eval()

    class Parsing(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)[0]

    onnx_path = tmp_path / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Parsing(model), torch.zeros(1, 3, *FIT_SIZE), onnx_path, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}},
                          dynamo=False)
    out_json = tmp_path / "scores.json"
    run = CliRunner().invoke(eval_main, [str(onnx_path), str(root), "--split", "train", "--input-size", "81",
                                         "--workers", "0", "--quiet", "--json", str(out_json)])
    assert run.exit_code == 0, run.output
    assert "mIoU" in run.output and "exact float centres" in run.output
    reference = evaluate(torch_network(model), index, FIT_SIZE, 4, progress=False)
    scores = json.loads(out_json.read_text())
    assert scores["images"] == 8
    assert scores["mean_iou"] == pytest.approx(reference.mean_iou, abs=2e-3)  # ORT vs torch: rare argmax ties


@pytest.fixture(scope="module")
def dml_run(tmp_path_factory):
    """The real DML-CSR through dmlcsr-train: 4 images at 65 px, batch 2, one epoch that
    ends in a cycle (ensemble + batch-norm re-estimation), default losses and augmentation."""
    root = write_synthetic_faces(tmp_path_factory.mktemp("faces"), {"train": 4, "test": 2}, size=64, seed=1)
    out = tmp_path_factory.mktemp("dml")

    def args(epochs: int) -> list[str]:
        return [str(root), "--out", str(out), "--input-size", "65", "--batch-size", "2", "--epochs", str(epochs),
                "--csr-start", "1", "--cycle-epochs", "1", "--workers", "0", "--quiet"]

    run = CliRunner().invoke(train_main, args(1))
    assert run.exit_code == 0, run.output
    return root, out, args


def test_dml_csr_best_pth_is_a_strict_deploy_state_dict(dml_run):
    _, out, _ = dml_run
    state = torch.load(out / "best.pth")
    deploy = DML_CSR(6, trained=False)
    deploy.load_state_dict(state, strict=True)  # what the official test.py does
    assert set(state) == set(deploy.state_dict())
    model, report = load_dml_csr(out / "best.pth")
    assert report.num_classes == 6 and not report.dropped_keys
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["aggregate"] == 1 and np.isfinite(log[0]["loss"]["total"])
    assert {"scores", "aggregate_scores"} <= set(log[0])


def test_dml_csr_resumes_from_last_pth_and_self_distils(dml_run):
    root, out, args = dml_run
    before = torch.load(out / "last.pth")
    run = CliRunner().invoke(train_main, args(2) + ["--resume", str(out / "last.pth")])
    assert run.exit_code == 0, run.output
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and log[1]["cycle"] == 1 and log[1]["aggregate"] == 2
    assert np.isfinite(log[1]["loss"]["total"])  # taught by aggregate 1 (KL terms)
    after = torch.load(out / "last.pth")
    assert after["epoch"] == 2 and after["cycle"] == 2
    changed = [k for k, v in after["model"].items() if v.is_floating_point() and not torch.equal(v, before["model"][k])]
    assert changed  # the third epoch trained on from the saved weights


def test_eval_cli_on_a_checkpoint_and_its_errors(dml_run, tmp_path):
    root, out, _ = dml_run
    run = CliRunner().invoke(eval_main, [str(out / "best.pth"), str(root), "--input-size", "65", "--workers", "0",
                                         "--batch-size", "1", "--quiet", "--json", str(tmp_path / "s.json")])
    assert run.exit_code == 0, run.output
    model, _ = load_dml_csr(out / "best.pth")
    reference = evaluate(torch_network(model), open_index(root, "test"), (65, 65), progress=False)
    assert json.loads((tmp_path / "s.json").read_text())["mean_iou"] == pytest.approx(reference.mean_iou)
    lapa = tmp_path / "lapa"
    (lapa / "test" / "images").mkdir(parents=True)
    (lapa / "test" / "labels").mkdir(parents=True)
    cv2.imwrite(str(lapa / "test" / "images" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(lapa / "test" / "labels" / "a.png"), np.zeros((8, 8), np.uint8))
    run = CliRunner().invoke(eval_main, [str(out / "best.pth"), str(lapa)])
    assert run.exit_code == 2 and "error:" in run.output and "6 classes, not 11" in run.output
    run = CliRunner().invoke(train_main, [str(root), "--out", str(tmp_path / "x"), "--batch-size", "8", "--quiet"])
    assert run.exit_code == 2 and "make no batch of 8" in run.output


def test_help_teaches_with_examples():
    for command in (train_main, eval_main):
        run = CliRunner().invoke(command, ["--help"])
        assert run.exit_code == 0 and "Examples:" in run.output
