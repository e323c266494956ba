"""The parity comparator and dmlcsr-verify: numbers on hand-made logits, then PyTorch vs
ONNX Runtime on the real faces through the function (at 473 px) and the CLI (at the demo
model's fitted size: the CLI's plumbing does not depend on the size)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dmlcsr.core.geometry import labels_from_logits
from dmlcsr.errors import DmlcsrError
from dmlcsr.export.cli import verify_main
from dmlcsr.export.compare import THRESHOLDS, ParityAccumulator, format_report
from dmlcsr.export.verify import verify_artefacts
from dmlcsr.networks.dml_csr import DML_CSR


def _logits(seed: int, classes: int = 3, size: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, (2, classes, size, size)).astype(np.float32)


def test_identical_logits_agree_fully():
    logits = _logits(0)
    acc = ParityAccumulator(3, (29, 29))
    acc.update(logits, logits.copy())
    report = acc.report("same", "fp32", ["a", "b", "c"])
    assert report.max_abs_diff == 0 and report.agreement_logits == 1 and report.agreement_labels == 1
    assert report.passed and report.images == 2


def test_flipped_pixels_are_counted_at_both_resolutions_and_per_class():
    reference = _logits(1)
    candidate = reference.copy()
    ref_labels = reference.argmax(1)
    # make class 2 win at 5 output pixels where the reference says something else
    where = np.argwhere(ref_labels != 2)[:5]
    for n, y, x in where:
        candidate[n, 2, y, x] = reference[n, :, y, x].max() + 5.0
    acc = ParityAccumulator(3, (29, 29))
    acc.update(reference, candidate)
    report = acc.report("flip", "int8-qdq", ["a", "b", "c"])
    assert report.agreement_logits == pytest.approx(1 - 5 / ref_labels.size)
    full_ref = labels_from_logits(reference, (29, 29))
    full_cand = labels_from_logits(candidate, (29, 29))
    assert report.agreement_labels == pytest.approx((full_ref == full_cand).mean())
    for c, item in enumerate(report.per_class):
        mask = full_ref == c
        assert item.reference_pixels == mask.sum()
        assert item.agreement == pytest.approx((full_cand[mask] == c).mean())
    assert report.per_class[2].agreement == 1.0  # class 2 only gained pixels
    assert report.max_abs_diff > 5
    assert report.agreement_labels < 0.99 and not report.passed  # INT8 needs 99 % of the labels
    assert report.failures == [f"label agreement {report.agreement_labels:.4%} (after the official upsample) "
                               "is under 99.00%"]


def test_thresholds_decide_pass_and_fail():
    reference = _logits(2)
    noisy = reference + np.float32(1e-3)  # no label changes, but far over the FP32 logit bound
    acc = ParityAccumulator(3, (29, 29))
    acc.update(reference, noisy)
    fp32 = acc.report("x", "fp32", ["a", "b", "c"])
    int8 = acc.report("x", "int8-qdq", ["a", "b", "c"])
    assert not fp32.passed and "max |diff|" in fp32.failures[0]
    assert int8.passed and "PASS" in format_report(int8) and "FAIL" in format_report(fp32)


def test_nan_output_fails():
    reference = _logits(3)
    broken = reference.copy()
    broken[0, 0, 0, 0] = np.nan
    acc = ParityAccumulator(3, (29, 29))
    acc.update(reference, broken)
    assert not acc.report("nan", "fp16", ["a", "b", "c"]).passed


def test_verify_fp32_onnx_on_real_faces(demo_training_checkpoint, demo_onnx, face_paths):
    (report,) = verify_artefacts(demo_training_checkpoint, [demo_onnx], face_paths[:3], batch_size=2, device="cpu")
    assert report.precision == "fp32" and report.images == 3
    assert report.passed, format_report(report)
    assert report.relative_diff <= THRESHOLDS["fp32"].max_relative_diff
    predicted = [c for c in report.per_class if c.agreement is not None]
    assert len(predicted) > 3 and sum(c.reference_pixels for c in predicted) == 3 * 473 * 473
    assert not report.notes  # same checkpoint file


@pytest.fixture(scope="module")
def other_checkpoints(tmp_path_factory):
    """A 19-class checkpoint with other weights, and an 11-class one."""
    folder = tmp_path_factory.mktemp("others")
    torch.manual_seed(3)
    torch.save(DML_CSR(19, trained=False).state_dict(), folder / "other19.pth")
    torch.save(DML_CSR(11, trained=False).state_dict(), folder / "eleven.pth")
    return folder / "other19.pth", folder / "eleven.pth"


def test_cli_passes_on_the_right_checkpoint_and_writes_json(demo_checkpoint, demo_small_onnx, tmp_path):
    out = tmp_path / "parity.json"
    result = CliRunner().invoke(verify_main, ["--ckpt", str(demo_checkpoint), str(demo_small_onnx),
                                              "--limit", "1", "--device", "cpu", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "1 of 1 artefact(s) within thresholds" in result.output
    (saved,) = json.loads(out.read_text())
    assert saved["passed"] and saved["precision"] == "fp32" and len(saved["per_class"]) == 19


def test_cli_fails_with_exit_1_against_other_weights(other_checkpoints, demo_small_onnx, face_paths):
    result = CliRunner().invoke(verify_main, ["--ckpt", str(other_checkpoints[0]), str(demo_small_onnx),
                                              "--limit", "1", "--device", "cpu"])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "different checkpoint file" in result.output


@pytest.mark.parametrize("case", ["wrong classes", "missing checkpoint", "missing artefact", "foreign file"])
def test_cli_bad_inputs_give_one_line_errors(case, other_checkpoints, demo_checkpoint, demo_small_onnx,
                                            tmp_path):
    ckpt, artefact, expected = demo_checkpoint, demo_small_onnx, ""
    if case == "wrong classes":
        ckpt, expected = other_checkpoints[1], "predicts 19 classes"
    elif case == "missing checkpoint":
        ckpt, expected = tmp_path / "nope.pth", "checkpoint not found"
    elif case == "missing artefact":
        artefact, expected = tmp_path / "nope.onnx", "artefact not found"
    else:
        artefact = tmp_path / "model.bin"
        artefact.write_bytes(b"\0" * 16)
        expected = "unknown model type '.bin'"
    result = CliRunner().invoke(verify_main, ["--ckpt", str(ckpt), str(artefact), "--device", "cpu"])
    assert result.exit_code == 2, result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and expected in error_lines[0] and "Traceback" not in result.output


def test_empty_image_list_is_an_error(demo_checkpoint, demo_small_onnx):
    with pytest.raises(DmlcsrError, match="no images"):
        verify_artefacts(demo_checkpoint, [demo_small_onnx], [])
