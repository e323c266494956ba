"""``dmlcsr-demo``: the toolkit's main job end to end on a built-in default.

checkpoint -> FP32 ONNX -> INT8 QDQ ONNX -> parity against PyTorch -> parse the example
photos with the torch-free runtime -> overlays. With no ``--ckpt`` it makes the demo
checkpoint (dmlcsr.demo_model: seeded weights fitted to the example photos, labels that
vary in space but mean nothing), so it runs on a fresh machine with no download.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import torch

from dmlcsr.checkpoint import load_dml_csr
from dmlcsr.demo_model import EXAMPLE_FACES, make_demo_model
from dmlcsr.errors import DmlcsrError
from dmlcsr.export.compare import format_report
from dmlcsr.export.face_inputs import list_images
from dmlcsr.export.onnx_export import DEFAULT_INPUT_SIZE, check_writable_dir, deploy_metadata, export_onnx
from dmlcsr.export.quantize import MIN_CALIBRATION_IMAGES, load_calibration_inputs, quantize_int8
from dmlcsr.export.verify import verify_artefacts
from dmlcsr.runtime.faces.detector import CenterFace
from dmlcsr.runtime.jobs import collect_jobs
from dmlcsr.runtime.labellers import EveryFace
from dmlcsr.runtime.output_files import atomic_target, write_atomic
from dmlcsr.runtime.parse_files import parse_jobs
from dmlcsr.runtime.parser import FaceParser

UNTRAINED_NOTE = (
    "note: the built-in demo checkpoint is seeded, not trained on faces (only its head is fitted to the photos), "
    "so its reduced-precision agreement says little about a trained model and does not fail this demo. "
    "Run dmlcsr-demo --ckpt best.pth (or dmlcsr-verify) on your checkpoint.")


def _step(title: str) -> float:
    click.secho(f"\n== {title}", bold=True)
    return time.perf_counter()


def _done(start: float, what: str) -> None:
    click.echo(f"   {what} ({time.perf_counter() - start:.1f} s)")


def make_checkpoint(out: Path) -> Path:
    """Build and save the demo checkpoint (deploy build, 19 classes), fitted at the size the
    demo exports and verifies at."""
    path = out / "demo-checkpoint.pth"
    with atomic_target(path) as partial:
        torch.save(make_demo_model(19, seed=0, input_size=DEFAULT_INPUT_SIZE).state_dict(), partial)
    return path


def parse_examples(model_path: Path, images: list[Path], out: Path) -> list[str]:
    """Parse each photo face by face, as ``dmlcsr-parse MODEL IMAGES --overlay`` does."""
    parser = FaceParser(model_path, device="cpu")
    labeller = EveryFace(parser, "auto", CenterFace.open(device="cpu"))
    return parse_jobs(labeller, collect_jobs(images).jobs, out, with_overlay=True).skips.messages


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--ckpt", type=click.Path(path_type=Path), default=None,
              help="Your DML-CSR checkpoint (best.pth). Default: make the demo checkpoint (labels meaningless).")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("dmlcsr-demo"), show_default=True,
              help="Folder for everything the demo writes.")
@click.option("--images", type=click.Path(path_type=Path), default=EXAMPLE_FACES, show_default=True,
              help="Face photos to calibrate INT8 on, verify with and parse.")
@click.option("--int8/--no-int8", default=True, show_default=True, help="Also make and verify the INT8 QDQ model.")
def main(ckpt: Path | None, out: Path, images: Path, int8: bool) -> None:
    """Run the toolkit's main job end to end: checkpoint -> ONNX (FP32, INT8) -> parity
    against PyTorch -> parse the example photos -> overlays.

    \b
    Examples:
      dmlcsr-demo                          # built-in demo checkpoint, example photos
      dmlcsr-demo --ckpt best.pth --out demo
    """
    try:
        check_writable_dir(out)
        photos = list_images(images)
        built_in = ckpt is None
        if built_in:
            start = _step("making the demo checkpoint (seeded DML-CSR, head fitted to the example photos, ~5 min)")
            ckpt = make_checkpoint(out)
            _done(start, f"wrote {ckpt}")
        start = _step(f"exporting {ckpt} to ONNX")
        model, report = load_dml_csr(ckpt)
        artefacts = [export_onnx(model, out / "dmlcsr-fp32.onnx", deploy_metadata(report.num_classes, report.sha256))]
        _done(start, f"wrote {artefacts[0]} ({artefacts[0].stat().st_size / 2**20:.0f} MiB)")
        if int8:
            start = _step(f"INT8 QDQ, calibrated on {len(photos)} photos")
            inputs = load_calibration_inputs(images, DEFAULT_INPUT_SIZE,
                                             min_images=min(len(photos), MIN_CALIBRATION_IMAGES))
            artefacts.append(quantize_int8(artefacts[0], out / "dmlcsr-int8.onnx", inputs))
            _done(start, f"wrote {artefacts[1]} ({artefacts[1].stat().st_size / 2**20:.0f} MiB)")
        start = _step("verifying against PyTorch on the same inputs")
        reports = verify_artefacts(ckpt, artefacts, photos, progress=True)
        for parity in reports:
            click.echo(format_report(parity))
        write_atomic(out / "parity.json", json.dumps([r.to_dict() for r in reports], indent=2))
        _done(start, f"wrote {out / 'parity.json'}")
        start = _step("parsing the photos with the torch-free runtime (faces found by CenterFace)")
        skipped = parse_examples(artefacts[0], photos, out / "parsed")
        _done(start, f"label maps, face boxes and overlays in {out / 'parsed'}")
    except DmlcsrError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.secho(f"\ndone: everything is in {out}/ (open parsed/*_overlay.jpg to look)", bold=True)
    failed = [r for r in reports if not r.passed and r.gates]
    if built_in and all(r.precision != "fp32" for r in failed):
        if failed:
            click.echo(UNTRAINED_NOTE)
        failed = []
    if skipped or failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
