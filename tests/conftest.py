"""Shared fixtures: the reference listings, real face photos and a demo model whose
labels vary in space (built once per test session, see dmlcsr.demo_model)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
DEMO_CALIBRATION_SIZE = 225  # small, to keep CI fast; the model runs at any size after


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
    """Deploy-build DML-CSR, 19 classes, seeded and fitted to the example photos."""
    from dmlcsr.demo_model import make_demo_model

    return make_demo_model(19, seed=0, input_size=DEMO_CALIBRATION_SIZE)


@pytest.fixture(scope="session")
def demo_checkpoint(demo_model, tmp_path_factory) -> Path:
    """The demo model saved as a raw state_dict, as training would save best.pth."""
    import torch

    path = tmp_path_factory.mktemp("ckpt") / "demo.pth"
    torch.save(demo_model.state_dict(), path)
    return path
