"""``dmlcsr-demo``: the toolkit's main job end to end on a built-in default.

checkpoint -> FP32 ONNX -> parse the example photos with the torch-free runtime ->
overlays -> INT8 QDQ ONNX -> parity of both against PyTorch. With no ``--ckpt`` it makes
the demo checkpoint (dmlcsr.demo_model: seeded weights fitted to the example photos at
473 px, labels that vary in space but mean nothing), so it runs on a fresh machine with
no download. The overlays come right after the FP32 export, so the first ones are on
disk before the INT8 calibration and the parity check start.

The demo checkpoint, the ONNX files made from it and their parity reports go to the user
cache (dmlcsr.cache: ``$XDG_CACHE_HOME/dmlcsr`` or ``~/.cache/dmlcsr``), keyed by
everything that changes them: toolkit version, input size, class count, a hash of the
demo recipe and of the export code, the library versions, the photos. A second run
finds them there (the files in --out are hard links or copies) and only parses the photos
again: seconds instead of minutes. ``--no-cache`` rebuilds and re-measures everything;
a checkpoint of yours (``--ckpt``) is never cached.

To fit within a few minutes on two CPU cores, the demo model's head is fitted with a
quarter of its former work (dmlcsr.demo_model: FIT_STEPS steps of FIT_PIXELS sampled
pixels instead of 16384, conv1's weight as a rank-FIT_RANK update); its INT8 agreement at
473 px stays above verify's 99 % (99.06 %, was 99.16 %). Nothing else is reduced: the fit,
the export, the verification and the parsing all run at the real 473 px.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import click
import torch
from tqdm import tqdm

import dmlcsr
from dmlcsr.cache import CachedFile, cache_dir, cached_file, file_sha256, place, short_hash
from dmlcsr.checkpoint import load_dml_csr
from dmlcsr.core.geometry import INPUT_SIZE, size_text
from dmlcsr.demo_model import EXAMPLE_FACES, FIT_PIXELS, FIT_STEPS
from dmlcsr.errors import DmlcsrError
from dmlcsr.export.artefacts import demo_checkpoint_cached, quiet_exporter_notices
from dmlcsr.export.compare import ClassAgreement, ParityReport, Thresholds, format_report
from dmlcsr.export.face_inputs import list_images
from dmlcsr.export.onnx_export import (
    DEFAULT_OPSET,
    check_writable_dir,
    deploy_metadata,
    export_onnx,
)
from dmlcsr.export.quantize import (
    DEFAULT_PERCENTILE,
    MIN_CALIBRATION_IMAGES,
    load_calibration_inputs,
    quantize_int8,
)
from dmlcsr.export.verify import verify_artefacts
from dmlcsr.runtime.faces.detector import CenterFace
from dmlcsr.runtime.jobs import collect_jobs
from dmlcsr.runtime.labellers import EveryFace
from dmlcsr.runtime.output_files import write_atomic
from dmlcsr.runtime.parse_files import parse_jobs
from dmlcsr.runtime.parser import FaceParser

DEMO_CLASSES = 19
UNTRAINED_NOTE = (
    "note: the built-in demo checkpoint is seeded, not trained on faces (only its head is fitted to the photos), "
    "so its reduced-precision agreement says little about a trained model and does not fail this demo. "
    "Run dmlcsr-demo --ckpt best.pth (or dmlcsr-verify) on your checkpoint.")
#: the packages whose code decides what the export, quantization and verification write
CODE_PACKAGES = ("dmlcsr.export", "dmlcsr.core", "dmlcsr.networks", "dmlcsr.runtime")


def _step(title: str) -> float:
    click.secho(f"\n== {title}", bold=True)
    return time.perf_counter()


def _done(start: float, what: str) -> None:
    click.echo(f"   {what} ({time.perf_counter() - start:.1f} s)")


@contextlib.contextmanager
def _ticking(bar: tqdm) -> Iterator[tqdm]:
    """Redraw ``bar`` every second, so a step that reports nothing for a while (the ONNX
    exporter, the INT8 calibrator's last stage) still shows its time going by."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(1.0):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield bar
    finally:
        stop.set()
        thread.join()
        bar.close()


class _CalibrationProgress(io.TextIOBase):
    """Stands in for stdout while ONNX Runtime calibrates: its one print per photo
    ("Collecting tensor data and making histogram ...") advances the bar; its other prints
    (threshold summaries) are dropped."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.startswith("Collecting tensor data"):
                self.bar.update(1)
            elif line.startswith("Finding optimal threshold"):
                self.bar.set_postfix_str("thresholds, writing the QDQ model")
        return len(text)


def code_fingerprint() -> str:
    """A hash of the source that export, quantization and verification run (this
    checkout's, so an edit in a development tree never meets a stale cached file)."""
    import importlib

    files = sorted(p for name in CODE_PACKAGES
                   for p in Path(importlib.import_module(name).__file__).parent.rglob("*.py"))
    return short_hash(dmlcsr.__version__, *(p.read_bytes() for p in files))


def library_versions() -> str:
    import onnx
    import onnxruntime

    return f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}"


def photos_fingerprint(photos: Sequence[Path]) -> str:
    return short_hash(*(part for p in photos for part in (p.name, p.read_bytes())))


def make_checkpoint(out: Path, use_cache: bool = True) -> CachedFile:
    """The demo checkpoint (deploy build, 19 classes, fitted at the size the demo exports
    and verifies at) in ``out``, found in the cache or built into it."""
    entry = demo_checkpoint_cached(DEMO_CLASSES, INPUT_SIZE, progress=True, use_cache=use_cache)
    return CachedFile(place(entry.path, out / "demo-checkpoint.pth"), entry.sha256, entry.hit)


def _artefact(out: Path, name: str, cache_name: str | None, build: Callable[[Path], object],
              use_cache: bool) -> CachedFile:
    """``out / name`` built by ``build(path)``; through the cache when ``cache_name`` is set."""
    if cache_name is None:
        path = out / name
        build(path)
        return CachedFile(path, file_sha256(path), hit=False)
    entry = cached_file(cache_name, build, enabled=use_cache)
    return CachedFile(place(entry.path, out / name), entry.sha256, entry.hit)


def _reports_from_json(text: str) -> list[ParityReport]:
    reports = []
    for item in json.loads(text):
        fields = {k: v for k, v in item.items() if k in ParityReport.__dataclass_fields__}
        fields["per_class"] = [ClassAgreement(**c) for c in fields["per_class"]]
        fields["thresholds"] = Thresholds(**fields["thresholds"])
        reports.append(ParityReport(**fields))
    return reports


def parse_examples(model_path: Path, images: list[Path], out: Path) -> list[str]:
    """Parse each photo face by face, as ``dmlcsr-parse MODEL IMAGES --overlay`` does."""
    parser = FaceParser(model_path, device="cpu")
    labeller = EveryFace(parser, "auto", CenterFace.open(device="cpu"))
    return parse_jobs(labeller, collect_jobs(images).jobs, out, with_overlay=True).skips.messages


def _source(hit: bool) -> str:
    return "from the cache:" if hit else "wrote"


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--ckpt", type=click.Path(path_type=Path), default=None,
              help="Your DML-CSR checkpoint (best.pth). Default: make the demo checkpoint (labels meaningless).")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("dmlcsr-demo"), show_default=True,
              help="Folder for everything the demo writes.")
@click.option("--images", type=click.Path(path_type=Path), default=EXAMPLE_FACES, show_default=True,
              help="Face photos to calibrate INT8 on, verify with and parse.")
@click.option("--int8/--no-int8", default=True, show_default=True, help="Also make and verify the INT8 QDQ model.")
@click.option("--cache/--no-cache", "use_cache", default=True, show_default=True,
              help="Reuse the demo checkpoint, its ONNX files and their parity reports from the user cache "
                   "($XDG_CACHE_HOME/dmlcsr or ~/.cache/dmlcsr); --no-cache rebuilds and re-measures them.")
def main(ckpt: Path | None, out: Path, images: Path, int8: bool, use_cache: bool) -> None:
    """Run the toolkit's main job end to end: checkpoint -> ONNX (FP32) -> parse the
    example photos -> overlays -> INT8 -> parity against PyTorch.

    \b
    Examples:
      dmlcsr-demo                          # built-in demo checkpoint, example photos
      dmlcsr-demo --ckpt best.pth --out demo
    """
    began = time.perf_counter()
    quiet_exporter_notices()
    try:
        check_writable_dir(out)
        photos = list_images(images)
        built_in = ckpt is None
        if built_in:
            click.echo(f"cache: {cache_dir()} (the demo checkpoint, its ONNX files and parity reports; "
                       "delete it to free the space)")
            start = _step(f"the demo checkpoint (seeded DML-CSR, head fitted to the example photos at "
                          f"{size_text(INPUT_SIZE)} px: {FIT_STEPS} steps of {FIT_PIXELS} sampled pixels, fewer "
                          "than before to save time; built once, then cached)")
            entry = make_checkpoint(out, use_cache)
            ckpt, ckpt_sha = entry.path, entry.sha256
            _done(start, f"{_source(entry.hit)} {ckpt}")
        else:
            ckpt_sha = ""  # keys only the cache's files, and a checkpoint of the user's is never cached
        start = _step(f"exporting {ckpt} to ONNX (FP32, {size_text(INPUT_SIZE)} px)")
        code, versions, photo_hash = code_fingerprint(), library_versions(), photos_fingerprint(photos)
        stem = f"demo-dmlcsr-{dmlcsr.__version__}-{size_text(INPUT_SIZE)}px"

        def export(path: Path) -> None:
            model, report = load_dml_csr(ckpt)
            bar = tqdm(desc="   torch.onnx.export", bar_format="{desc}: {elapsed}", leave=False)
            with _ticking(bar):
                export_onnx(model, path, deploy_metadata(report.num_classes, report.sha256), INPUT_SIZE)

        def key(kind: str, suffix: str, *parts: str) -> str | None:
            return f"{stem}-{kind}-{short_hash(kind, *parts, code, versions)}{suffix}" if built_in else None

        made = [_artefact(out, "dmlcsr-fp32.onnx", key("fp32", ".onnx", ckpt_sha, str(DEFAULT_OPSET)), export,
                          use_cache)]
        fp32 = made[0].path
        _done(start, f"{_source(made[0].hit)} {fp32} ({fp32.stat().st_size / 2**20:.0f} MiB)")

        start = _step("parsing the photos with the torch-free runtime (faces found by CenterFace)")
        skipped = parse_examples(fp32, photos, out / "parsed")
        _done(start, f"label maps, face boxes and overlays in {out / 'parsed'}")

        if int8:
            start = _step(f"INT8 QDQ, calibrated on {len(photos)} photos")

            def quantize(path: Path) -> None:
                inputs = load_calibration_inputs(images, INPUT_SIZE,
                                                 min_images=min(len(photos), MIN_CALIBRATION_IMAGES))
                bar = tqdm(total=len(inputs), desc="   calibrating", unit="photo", leave=False)
                with _ticking(bar), contextlib.redirect_stdout(_CalibrationProgress(bar)):
                    quantize_int8(fp32, path, inputs)

            made.append(_artefact(out, "dmlcsr-int8.onnx", key("int8", ".onnx", made[0].sha256, photo_hash,
                                                               str(DEFAULT_PERCENTILE)), quantize, use_cache))
            path = made[-1].path
            _done(start, f"{_source(made[-1].hit)} {path} ({path.stat().st_size / 2**20:.0f} MiB)")
        artefacts = [m.path for m in made]

        start = _step("verifying against PyTorch on the same inputs")

        def verify(path: Path) -> None:
            found = verify_artefacts(ckpt, artefacts, photos, progress=True)
            write_atomic(path, json.dumps([r.to_dict() for r in found], indent=2))

        parity = _artefact(out, "parity.json", key("parity", ".json", ckpt_sha, *(m.sha256 for m in made),
                                                   photo_hash), verify, use_cache)
        reports = _reports_from_json(parity.path.read_text())
        for report in reports:
            click.echo(format_report(report))
        _done(start, f"{_source(parity.hit)} {parity.path}" + (
            " (measured by an earlier run on the same checkpoint, files, photos, code and libraries; "
            "--no-cache measures again)" if parity.hit else ""))
    except DmlcsrError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.secho(f"\ndone in {time.perf_counter() - began:.0f} s: everything is in {out}/ "
                "(open parsed/*_overlay.jpg to look)", bold=True)
    failed = [r for r in reports if not r.passed and r.gates]
    if built_in and all(r.precision != "fp32" for r in failed):
        if failed:
            click.echo(UNTRAINED_NOTE)
        failed = []
    if skipped or failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
