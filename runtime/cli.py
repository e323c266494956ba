"""dmlcsr-parse: label maps (and overlays) for image files, folders and videos.

A thin click wrapper: inputs are expanded to images and videos, read with the runtime's
image checks, parsed by FaceParser in batches, and written as PNG label maps whose pixel
values are class indices (names in labels.json beside them).
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from dmlcsr.core.labels import palette
from dmlcsr.errors import DmlcsrError, DmlcsrWarning
from dmlcsr.runtime.backends import DEVICES, ENGINES
from dmlcsr.runtime.faces.detector import CenterFace
from dmlcsr.runtime.faces.files import PhotoOptions, run_photo_images, run_photo_video
from dmlcsr.runtime.faces.framing import Margin
from dmlcsr.runtime.faces.photo import MIN_FACE, read_boxes
from dmlcsr.runtime.images import IMAGE_SUFFIXES, load_image, open_video, open_video_writer, validate_face_box
from dmlcsr.runtime.parser import FaceParser
from dmlcsr.runtime.visualize import overlay, write_image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")

EXAMPLES = """\b
Examples:
  dmlcsr-parse dmlcsr.onnx group.jpg --out parsed --overlay        (finds every face)
  dmlcsr-parse dmlcsr.onnx celeba/ --faces whole --out parsed     (images are face crops)
  dmlcsr-parse dmlcsr.onnx group.jpg --faces boxes.json --out parsed
  dmlcsr-parse dmlcsr.onnx photos/ --out parsed --batch 4
  dmlcsr-parse dmlcsr-int8.xml photos/ --faces whole --batch 4   (OpenVINO INT8 IR: the fast CPU path)
  dmlcsr-parse dmlcsr.engine clip.mp4 --out parsed --overlay --device cuda
  dmlcsr-parse dmlcsr.onnx group.jpg --face-box 410,120,160,200 --out parsed

\b
Writes, under --out:
  NAME.png            labels: pixel value = class index (uint8), original size
  NAME_faces.json     --faces auto or FILE.json: boxes, scores, landmarks, crops
  NAME_overlay.jpg    with --overlay: colours blended over the photo, legend
  VIDEO/000000.png    one label PNG per frame; VIDEO_overlay.mp4 with --overlay
  labels.json         class names and overlay colours (BGR) for the PNG values
"""


@dataclass(frozen=True)
class Job:
    """One input file and the name (relative to --out, no suffix) its outputs get."""

    source: Path
    name: Path
    is_video: bool


def collect_jobs(inputs: Sequence[str | Path]) -> list[Job]:
    """Files and folders (searched recursively for images and videos) -> jobs with unique names."""
    jobs: list[Job] = []
    taken: set[Path] = set()
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in
                           IMAGE_SUFFIXES + VIDEO_SUFFIXES)
            if not found:
                raise DmlcsrError(f"no images or videos in {item}; image types: {' '.join(IMAGE_SUFFIXES)}")
            pairs = [(p, Path(item.resolve().name) / p.relative_to(item).with_suffix("")) for p in found]
        elif item.is_file():
            pairs = [(item, Path(item.stem))]
        else:
            raise DmlcsrError(f"input not found: {item}")
        for source, name in pairs:
            unique, count = name, 1
            while unique in taken:
                unique, count = name.with_name(f"{name.name}-{count}"), count + 1
            taken.add(unique)
            jobs.append(Job(source, unique, source.suffix.lower() in VIDEO_SUFFIXES))
    return jobs


def parse_face_box(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    parts = text.replace(" ", "").split(",")
    try:
        box = tuple(float(p) for p in parts)
    except ValueError:
        box = ()
    if len(box) != 4:
        raise DmlcsrError(f"--face-box {text!r} is not x,y,w,h (four numbers, pixels), e.g. 410,120,160,200")
    return box  # type: ignore[return-value]


def label_images(parser: FaceParser, images: list[np.ndarray], face_box: Sequence[float] | None,
                 batch: int) -> list[np.ndarray]:
    """The labelling step for a group of images: one face per image (whole image or the box)."""
    boxes = None if face_box is None else [face_box] * len(images)
    return parser.parse_batch(images, boxes, batch_size=batch)


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def run_images(parser: FaceParser, jobs: list[Job], out: Path, face_box: Sequence[float] | None, batch: int,
               with_overlay: bool) -> list[str]:
    """Parse image jobs ``batch`` at a time; returns the messages of the files skipped."""
    skipped: list[str] = []
    with tqdm(total=len(jobs), unit="img", desc="images", disable=not jobs) as bar:
        for group in _batches(jobs, batch):
            ready: list[tuple[Job, np.ndarray]] = []
            for job in group:
                try:
                    image = load_image(job.source, parser.max_pixels)
                    if face_box is not None:
                        validate_face_box(face_box, image.shape[:2])
                    ready.append((job, image))
                except DmlcsrError as exc:
                    skipped.append(f"{job.source}: {exc}")
                    tqdm.write(f"skipped {job.source}: {exc}", file=sys.stderr)
                    bar.update(1)
            labels = label_images(parser, [image for _, image in ready], face_box, batch) if ready else []
            for (job, image), label_map in zip(ready, labels, strict=True):
                write_image(out / job.name.with_suffix(".png"), label_map)
                if with_overlay:
                    write_image(out / job.name.with_name(job.name.name + "_overlay.jpg"),
                                overlay(image, label_map, parser.label_names))
                bar.update(1)
    return skipped


def run_video(parser: FaceParser, job: Job, out: Path, face_box: Sequence[float] | None, batch: int,
              with_overlay: bool) -> int:
    """Parse every frame of one video; label PNGs per frame, optionally an overlay video."""
    capture, total, fps = open_video(job.source)
    writer = None
    frames_dir = out / job.name
    frames_dir.mkdir(parents=True, exist_ok=True)
    everything = list(range(parser.num_classes))
    index = 0
    try:
        with tqdm(total=total, unit="frame", desc=job.source.name) as bar:
            while True:
                frames = []
                while len(frames) < batch:
                    ok, frame = capture.read()
                    if not ok:
                        break
                    frames.append(frame)
                if not frames:
                    break
                for frame, label_map in zip(frames, label_images(parser, frames, face_box, batch), strict=True):
                    write_image(frames_dir / f"{index:06d}.png", label_map)
                    if with_overlay:
                        picture = overlay(frame, label_map, parser.label_names, legend=everything)
                        if writer is None:
                            writer = open_video_writer(out / job.name.with_name(job.name.name + "_overlay.mp4"),
                                                   fps, picture.shape[1::-1])
                        writer.write(picture)
                    index += 1
                bar.update(len(frames))
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if index == 0:
        raise DmlcsrError(f"no frame could be read from {job.source}; check the file plays, or convert it to MP4")
    return index


def photo_options(faces: str, detector: Path | None, margin: str, min_face: float, device: str,
                  threads: int | None) -> PhotoOptions:
    """--faces auto (the detector, opened once) or FILE.json (its boxes, read once)."""
    if faces == "auto":
        return PhotoOptions("auto", CenterFace.open(detector, device=device, threads=threads), Margin.parse(margin),
                            min_face)
    if not faces.lower().endswith(".json"):
        raise DmlcsrError(f"--faces {faces!r} is not auto, whole or a .json file of boxes [[x, y, w, h], ...]")
    return PhotoOptions(read_boxes(faces), None, Margin.parse(margin), min_face)


def write_label_legend(parser: FaceParser, out: Path) -> Path:
    """labels.json: what the PNG values mean, so the outputs can be read without the model."""
    path = out / "labels.json"
    record = {"model": parser.path.name, "label_names": parser.label_names,
              "palette_bgr": palette(parser.num_classes).tolist(),
              "label_png": "pixel value = class index, at the input image's size"}
    path.write_text(json.dumps(record, indent=2))
    return path


@click.command(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "-o", "out", type=click.Path(path_type=Path), default=Path("parsed"), show_default=True,
              help="Folder for the label PNGs, overlays and labels.json.")
@click.option("--overlay", is_flag=True, help="Also write colour overlays (a video for video inputs).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images or frames per inference call (GPU backends gain most).")
@click.option("--face-box", "face_box", metavar="X,Y,W,H", default=None,
              help="Parse this box (pixels) instead of the whole image, e.g. from your face detector.")
@click.option("--faces", default="auto", show_default=True, metavar="auto|whole|FILE.json",
              help="auto: detect every face (shipped CenterFace) and parse each; whole: the image is one face "
                   "crop (official test, dataset images); FILE.json: your boxes [[x, y, w, h], ...] for every input.")
@click.option("--detector", type=click.Path(path_type=Path), default=None,
              help="Another CenterFace-compatible .onnx (or TensorRT engine) for --faces auto.")
@click.option("--margin", default="0.2,0.2,0.4,0.2", show_default=True, metavar="L,R,T,B",
              help="Widen face boxes by these fractions (left,right,top,bottom) to the training framing.")
@click.option("--min-face", type=click.FloatRange(min=0), default=MIN_FACE, show_default=True,
              help="Skip (and count) detected faces whose shorter side is below this many pixels.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="auto: TensorRT/CUDA when present, else CPU.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for the engine.")
@click.option("--engine", type=click.Choice(("auto", *ENGINES)), default="auto", show_default=True,
              help="Engine to run MODEL on; auto: by suffix (.onnx ONNX Runtime, .xml OpenVINO, .engine TensorRT).")
@click.option("--bf16", is_flag=True,
              help="Compute an FP32 OpenVINO model in bf16 (CPUs with AMX or AVX512-BF16; verify it first).")
def main(model: Path, inputs: tuple[Path, ...], out: Path, overlay: bool, batch: int, face_box: str | None,
         faces: str, detector: Path | None, margin: str, min_face: float, device: str, threads: int | None,
         engine: str, bf16: bool) -> None:
    """Parse faces in images, folders and videos with an exported DML-CSR MODEL (.onnx, OpenVINO
    .xml, TensorRT .engine).

    By default every face of a photo is found, parsed at the network's resolution and put
    back into one label map (--faces auto). --faces whole parses the whole image as one
    face, as the official test does; --face-box parses that one region as it is. Label
    maps come back at the image's own size.
    """
    try:
        box = parse_face_box(face_box)
        jobs = collect_jobs(inputs)
        many = len(jobs) > 1 or any(job.is_video for job in jobs)
        with warnings.catch_warnings(record=True) as advice:
            warnings.simplefilter("always", DmlcsrWarning)
            parser = FaceParser(model, device=device, threads=threads, engine=engine,
                                inference_precision="bf16" if bf16 else "f32", throughput=many)
        click.echo(f"{parser.path.name}: {parser.backend.name}", err=True)
        for warning in advice:
            click.echo(f"warning: {warning.message}", err=True)
        out.mkdir(parents=True, exist_ok=True)
        write_label_legend(parser, out)
        photos = None if box is not None or faces == "whole" else photo_options(faces, detector, margin, min_face,
                                                                                  device, threads)
        if photos is None:
            skipped = run_images(parser, [j for j in jobs if not j.is_video], out, box, batch, overlay)
        else:
            skipped = run_photo_images(parser, [j for j in jobs if not j.is_video], out, photos, overlay)
        for job in (j for j in jobs if j.is_video):
            try:
                if photos is None:
                    run_video(parser, job, out, box, batch, overlay)
                else:
                    run_photo_video(parser, job, out, photos, overlay)
            except DmlcsrError as exc:
                skipped.append(f"{job.source}: {exc}")
                click.echo(f"skipped {job.source}: {exc}", err=True)
    except DmlcsrError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"error: cannot write to {out} ({exc.strerror}); pass a writable --out", err=True)
        sys.exit(2)
    done = len(jobs) - len(skipped)
    click.echo(f"parsed {done} of {len(jobs)} inputs into {out}" + (f"; {len(skipped)} skipped" if skipped else "")
               + (f" ({photos.summary})" if photos is not None else ""))
    if skipped:
        sys.exit(1)
