"""Shared fixtures: the reference listings, real face photos and a demo model whose
labels vary in space (built once per test session, see dmlcsr.demo_model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.sizes import DEMO_CALIBRATION_SIZE, DEMO_FIT_STEPS

from dmlcsr.core.geometry import INPUT_SIZE

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def reference_listing():
    """Official state-dict listings: (num_classes, trained) -> list of 'key shape' lines."""

    def read(num_classes: int, trained: bool) -> list[str]:
        kind = "train-state-dict" if trained else "state-dict"
        return (DATA / f"official-dmlcsr-{kind}-{num_classes}.txt").read_text().splitlines()

    return read


@pytest.fixture(scope="session")
def face_paths() -> list[Path]:
    from dmlcsr.demo_model import example_face_paths

    return example_face_paths()


@pytest.fixture(scope="session")
def demo_model():
    """Deploy-build DML-CSR, 19 classes, seeded and fitted to the example photos at 225 px."""
    from dmlcsr.demo_model import make_demo_model

    return make_demo_model(19, seed=0, input_size=DEMO_CALIBRATION_SIZE, fit_steps=DEMO_FIT_STEPS)


@pytest.fixture(scope="session")
def demo_checkpoint(demo_model, tmp_path_factory) -> Path:
    """The demo model saved as a raw state_dict, as training would save best.pth."""
    import torch

    path = tmp_path_factory.mktemp("ckpt") / "demo.pth"
    torch.save(demo_model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def demo_training_checkpoint(demo_model, tmp_path_factory) -> Path:
    """The demo weights saved from the TRAINING build: plus a seeded edge_layer (779 keys),
    as DML-CSR training saves best.pth; exporters must strip the edge branch."""
    import torch

    from dmlcsr.networks.dml_csr import DML_CSR

    torch.manual_seed(1)
    trained = DML_CSR(demo_model.num_classes, trained=True)
    state = {**trained.state_dict(), **demo_model.state_dict()}
    path = tmp_path_factory.mktemp("ckpt") / "demo-train.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="session")
def demo_onnx(demo_training_checkpoint, tmp_path_factory) -> Path:
    """FP32 ONNX of the demo model (same weights as ``demo_model``), 473x473 input, dynamic
    batch, exported from the training checkpoint through load_dml_csr (edge keys dropped)."""
    from dmlcsr.checkpoint import load_dml_csr
    from dmlcsr.export.onnx_export import deploy_metadata, export_onnx

    model, report = load_dml_csr(demo_training_checkpoint)
    path = tmp_path_factory.mktemp("onnx") / "demo-fp32.onnx"
    return export_onnx(model, path, deploy_metadata(report.num_classes, report.sha256), input_size=INPUT_SIZE)


@pytest.fixture(scope="session")
def demo_small_exported(demo_checkpoint, face_paths, tmp_path_factory) -> dict:
    """dmlcsr-export run once on ``demo_checkpoint`` at the size the model was fitted at
    (DEMO_CALIBRATION_SIZE): FP32, FP16 and INT8 QDQ ONNX calibrated on the example photos,
    and a Triton repository. The export, precision, verify and C++ tests all read these
    files, so the suite exports, converts and calibrates once. Returns the paths by
    precision, the Triton folder and the command's output."""
    from click.testing import CliRunner

    from dmlcsr.demo_model import EXAMPLE_FACES
    from dmlcsr.export.cli import export_main

    out = tmp_path_factory.mktemp("exported-small")
    size = ",".join(str(side) for side in DEMO_CALIBRATION_SIZE)
    args = ["--ckpt", str(demo_checkpoint), "--out", str(out / "artefacts"), "--input-size", size, "--fp16",
            "--int8", "--calib", str(EXAMPLE_FACES), "--triton", str(out / "triton"), "--batch", "1:4:8"]
    result = CliRunner().invoke(export_main, args)
    assert result.exit_code == 0, result.output
    return {"output": result.output, "triton": out / "triton",
            **{p: out / "artefacts" / f"{demo_checkpoint.stem}-{p}.onnx" for p in ("fp32", "fp16", "int8")}}


@pytest.fixture(scope="session")
def demo_small_onnx(demo_small_exported) -> Path:
    """The FP32 ONNX of ``demo_small_exported``: the demo model at the size it was fitted
    at, stamped with the sha256 of ``demo_checkpoint``."""
    return demo_small_exported["fp32"]


@pytest.fixture(scope="session")
def toy(tmp_path_factory) -> Path:
    """The small parsing ONNX (tests/support/toy_onnx.py): milliseconds per image, for the
    tests about plumbing rather than numbers. Tests write beside it only in folders of their own."""
    from support.toy_onnx import toy_parsing_onnx

    return toy_parsing_onnx(tmp_path_factory.mktemp("toy") / "toy.onnx")
