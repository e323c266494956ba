"""What the runtime sections run on when the user names nothing: the seeded demo DML-CSR
exported for the run into a temporary folder (torch is needed only then), and the example
photos shipped with dmlcsr."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dmlcsr.core.geometry import INPUT_SIZE

#: the demo model is exported at the paper's input size (INPUT_SIZE), so its frames cost what
#: DML-CSR's do, but fitted at a smaller one: its weights need only labels that vary, 4x cheaper
DEMO_FIT_SIZE = (225, 225)


@dataclass
class RuntimeSettings:
    """What both runtime sections take (recorded in their JSON as is): the model (None: the
    demo model), timed runs per photo, the runtime's device and threads, the file tag."""

    model: Path | None = None
    repeats: int = 3
    device: str = "cpu"
    threads: int | None = None
    tag: str = ""


def demo_model_onnx(folder: Path, input_size: tuple[int, int] = INPUT_SIZE) -> Path:
    """The seeded demo DML-CSR exported with dmlcsr.export (torch needed only here)."""
    from dmlcsr.demo_model import make_demo_model
    from dmlcsr.export.onnx_export import deploy_metadata, export_onnx

    model = make_demo_model(19, seed=0, input_size=DEMO_FIT_SIZE)
    return export_onnx(model, folder / "demo-fp32.onnx", deploy_metadata(19, input_size=input_size),
                       input_size=input_size)


@contextmanager
def model_file(model: Path | None) -> Iterator[Path]:
    """``model`` as given, else the demo model in a folder removed when the section ends."""
    if model is not None:
        yield model
        return
    with tempfile.TemporaryDirectory() as scratch:
        yield demo_model_onnx(Path(scratch))


def example_photos() -> list[Path]:
    """The real photos shipped with dmlcsr, found without importing torch (the runtime
    sections must run, and be timed, where only the runtime is installed)."""
    from dmlcsr.export.face_inputs import default_image_dir, list_images

    return list_images(default_image_dir())


def example_photo(name: str) -> Path:
    """One of the shipped example photos, by file name (e.g. the six-person t1.jpg)."""
    return next(p for p in example_photos() if p.name == name)
