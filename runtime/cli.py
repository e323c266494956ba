"""dmlcsr-parse: label maps (and overlays) for image files, folders and videos.

A thin click wrapper: options are checked (contradictions refused), inputs expanded to
jobs with unique outputs that never land on an input (jobs.py), and the jobs run by
parse_files.py, where any one bad input is a counted skip. Label maps are PNGs whose pixel
values are class indices (names in labels.json beside them).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click
from click.core import ParameterSource

from dmlcsr.cli_options import device_option, threads_option
from dmlcsr.core.validation import box_values, finite_number
from dmlcsr.errors import DmlcsrError, DmlcsrWarning
from dmlcsr.runtime.backends import ENGINES
from dmlcsr.runtime.distributed import RayOptions, actor_spec, run_on_ray
from dmlcsr.runtime.faces.box_file import read_boxes
from dmlcsr.runtime.faces.framing import Margin
from dmlcsr.runtime.faces.photo import FACES_PER_BATCH, MIN_FACE
from dmlcsr.runtime.images import IMAGE_SUFFIXES
from dmlcsr.runtime.jobs import UNDECODED_SUFFIXES, Job, JobList, collect_jobs, refuse_overwriting_inputs
from dmlcsr.runtime.labellers import FaceMode
from dmlcsr.runtime.parse_files import parse_jobs
from dmlcsr.runtime.parser import FaceParser
from dmlcsr.runtime.remote_files import is_uri, list_uri

EXAMPLES = """\b
Examples:
  dmlcsr-parse dmlcsr.onnx group.jpg --out parsed --overlay        (finds every face)
  dmlcsr-parse dmlcsr.onnx celeba/ --faces whole --out parsed     (images are face crops)
  dmlcsr-parse dmlcsr.onnx group.jpg --faces boxes.json --out parsed
  dmlcsr-parse dmlcsr.onnx photos/ --out parsed --batch 4
  dmlcsr-parse dmlcsr-int8.xml photos/ --faces whole --batch 4   (OpenVINO INT8 IR: the fast CPU path)
  dmlcsr-parse dmlcsr.engine clip.mp4 --out parsed --overlay --device cuda
  dmlcsr-parse dmlcsr.onnx group.jpg --face-box 410,120,160,200 --out parsed
  dmlcsr-parse dmlcsr.onnx photos/ --out parsed --ray                (Ray actors, local instance; docs/ray.md)
  dmlcsr-parse dmlcsr.onnx /shared/photos --out /shared/parsed --ray HEAD:6379 --gpus-per-actor 1

\b
Writes, under --out:
  NAME.png            labels: pixel value = class index (uint8), original size
  NAME_faces.json     --faces auto or FILE.json: boxes, scores, landmarks, crops
  NAME_overlay.jpg    with --overlay: colours blended over the photo, legend
  VIDEO/000000.png    one label PNG per frame; VIDEO_overlay.mp4 with --overlay
  labels.json         class names and overlay colours (BGR) for the PNG values
  manifest.jsonl      with --ray: one line per image (status, faces, error); reruns resume from it
"""


def parse_face_box(text: str | None) -> tuple[float, float, float, float] | None:
    """--face-box X,Y,W,H as four numbers, checked as every face box is."""
    if text is None:
        return None
    try:
        values = [float(part) for part in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise DmlcsrError(f"--face-box {text!r} is not x,y,w,h (four numbers, pixels), e.g. 410,120,160,200")
    return box_values(values, "--face-box")


#: options that only mean something with --faces auto (or FILE.json): given otherwise, they
#: would be ignored without a word
FACE_MODE_OPTIONS = {"detector": ("auto",), "margin": ("auto", "json"), "min_face": ("auto",)}


def refuse_conflicts(ctx: click.Context, faces: str, face_box: str | None) -> None:
    """One-line errors for options that contradict each other or would be ignored."""
    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)

    if face_box is not None and given("faces"):
        raise DmlcsrError("--face-box and --faces both say where the faces are; pass one of them")
    mode = "box" if face_box is not None else faces if faces in ("auto", "whole") else "json"
    for name, modes in FACE_MODE_OPTIONS.items():
        if given(name) and mode not in modes:
            flag = "--" + name.replace("_", "-")
            used = "--face-box" if mode == "box" else f"--faces {faces}"
            raise DmlcsrError(f"{flag} does nothing with {used}; it applies to --faces "
                              f"{' or '.join('FILE.json' if m == 'json' else m for m in modes)}")


def face_mode(faces: str, face_box: tuple[float, float, float, float] | None, batch: int | None,
              detector: Path | None, margin: str, min_face: float) -> FaceMode:
    """--faces whole / --face-box: one face per image; auto (the detector) or FILE.json (read here, once)."""
    if face_box is not None or faces == "whole":
        return FaceMode("whole", face_box, batch)
    frame = Margin.parse(margin)
    min_face = finite_number(min_face, "--min-face", 0.0)
    if faces == "auto":
        return FaceMode("auto", None, batch, detector, frame, min_face)
    if not faces.lower().endswith(".json"):
        raise DmlcsrError(f"--faces {faces!r} is not auto, whole or a .json file of boxes [[x, y, w, h], ...]")
    return FaceMode(read_boxes(faces), None, batch, None, frame, min_face)


#: options that only mean something with --ray
RAY_OPTIONS = ("actors", "cpus_per_actor", "gpus_per_actor", "retry_failed")


def refuse_ray_conflicts(ctx: click.Context, ray: str | None) -> None:
    """--actors and the like without --ray would be ignored: refused, as other such options are."""
    for name in RAY_OPTIONS:
        if ray is None and ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None):
            raise DmlcsrError(f"--{name.replace('_', '-')} applies to a Ray run; add --ray (auto, local or the "
                              "cluster's ADDRESS)")


def read_list(path: Path | None) -> list[str]:
    """--list FILE: input paths one a line; blank lines and # comments skipped."""
    if path is None:
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DmlcsrError(f"cannot read the --list file {path} ({getattr(exc, 'strerror', None) or exc})") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def collect_inputs(inputs: tuple[str, ...], ray: bool) -> JobList:
    """Paths through collect_jobs; URIs (s3://, gs://, file://) listed on their store, with --ray only."""
    uris = [text for text in inputs if is_uri(text)]
    if uris and not ray:
        raise DmlcsrError(f"{uris[0]} is a URI; inputs on a store are read with --ray (pyarrow), or copy them here")
    listed = [entry for uri in uris for entry in list_uri(uri, IMAGE_SUFFIXES + UNDECODED_SUFFIXES)]
    return collect_jobs([text for text in inputs if not is_uri(text)], listed)


def open_parser(model: Path, device: str, threads: int | None, engine: str, bf16: bool, many: bool) -> FaceParser:
    """The model, its engine named on stderr first, then any advice the runtime has."""
    with warnings.catch_warnings(record=True) as advice:
        warnings.simplefilter("always", DmlcsrWarning)
        parser = FaceParser(model, device=device, threads=threads, engine=engine,
                            inference_precision="bf16" if bf16 else "f32", throughput=many)
    click.echo(f"{parser.path.name}: {parser.backend.name}", err=True)
    for warning in advice:
        click.echo(f"warning: {warning.message}", err=True)
    return parser


@click.command(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, type=click.Path())
@click.option("--out", "-o", "out", type=click.Path(), default="parsed", show_default=True,
              help="Folder for the label PNGs, overlays and labels.json.")
@click.option("--overlay", is_flag=True, help="Also write colour overlays (a video for video inputs).")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Images or frames per inference call with --faces whole or --face-box (default 1); faces per "
                   f"call with --faces auto or FILE.json (default {FACES_PER_BATCH}). GPU backends gain most.")
@click.option("--face-box", "face_box", metavar="X,Y,W,H", default=None,
              help="Parse this box (pixels) instead of the whole image, e.g. from your face detector.")
@click.option("--faces", default="auto", show_default=True, metavar="auto|whole|FILE.json",
              help="auto: detect every face (shipped CenterFace) and parse each; whole: the image is one face "
                   "crop (official test, dataset images); FILE.json: your boxes [[x, y, w, h], ...] for every input.")
@click.option("--detector", type=click.Path(path_type=Path), default=None,
              help="Another CenterFace-compatible .onnx (or TensorRT engine) for --faces auto.")
@click.option("--margin", default="0.2,0.2,0.4,0.2", show_default=True, metavar="L,R,T,B",
              help="Widen face boxes by these fractions (left,right,top,bottom) to the training framing.")
@click.option("--min-face", type=float, default=MIN_FACE, show_default=True,
              help="Skip (and count) detected faces whose shorter side is below this many pixels.")
@device_option()
@threads_option()
@click.option("--engine", type=click.Choice(("auto", *ENGINES)), default="auto", show_default=True,
              help="Engine to run MODEL on; auto: by suffix (.onnx ONNX Runtime, .xml OpenVINO, .engine TensorRT).")
@click.option("--bf16", is_flag=True,
              help="Compute an FP32 OpenVINO model in bf16 (CPUs with AMX or AVX512-BF16; verify it first).")
@click.option("--list", "list_file", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Also parse the paths in FILE, one a line (blank lines and # comments skipped; URIs with --ray).")
@click.option("--ray", "ray", is_flag=False, flag_value="auto", default=None, metavar="[auto|local|ADDRESS]",
              help="Parse images on Ray actors (pip install \"dmlcsr[ray]\"): auto joins a running cluster or starts "
                   "a local one, local always starts one, ADDRESS joins that cluster. Resumable; see docs/ray.md.")
@click.option("--actors", type=click.IntRange(min=1), default=None,
              help="With --ray: actors, each holding one model [default: the cluster's CPUs (GPUs) / per actor].")
@click.option("--cpus-per-actor", type=click.FloatRange(min=0.0, min_open=True), default=1.0, show_default=True,
              help="With --ray: CPUs each actor reserves (and, without --threads, its engine threads).")
@click.option("--gpus-per-actor", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="With --ray: GPUs each actor reserves (0.5 puts two actors on a GPU).")
@click.option("--retry-failed", is_flag=True,
              help="With --ray: try again the images an earlier run recorded as failed.")
def main(model: Path, inputs: tuple[str, ...], out: str | Path, overlay: bool, batch: int | None, face_box: str | None,
         faces: str, detector: Path | None, margin: str, min_face: float, device: str, threads: int | None,
         engine: str, bf16: bool, list_file: Path | None, ray: str | None, actors: int | None, cpus_per_actor: float,
         gpus_per_actor: float, retry_failed: bool) -> None:
    """Parse faces in images, folders and videos with an exported DML-CSR MODEL (.onnx, OpenVINO
    .xml, TensorRT .engine).

    By default every face of a photo is found, parsed at the network's resolution and put
    back into one label map (--faces auto). --faces whole parses the whole image as one
    face, as the official test does; --face-box parses that one region as it is. Label
    maps come back at the image's own size.
    """
    ctx = click.get_current_context()
    try:
        refuse_conflicts(ctx, faces, face_box)
        refuse_ray_conflicts(ctx, ray)
        inputs = (*inputs, *read_list(list_file))
        if not inputs:
            raise DmlcsrError("no inputs; pass image files, folders or videos (or --list FILE)")
        if not out.strip():  # an unset shell variable; Path('') would be the current folder
            raise DmlcsrError("--out is empty; pass the folder for the outputs, e.g. --out parsed")
        out = Path(out)
        box = parse_face_box(face_box)
        listed = collect_inputs(inputs, ray is not None)
        read_too = [Path(path) for path in (model, detector, faces) if path is not None and Path(path).is_file()]
        refuse_overwriting_inputs(listed.jobs, out, read_too)
        for note in listed.notes:
            click.echo(f"note: {note}", err=True)
        if ray is not None:
            sys.exit(run_ray(listed.jobs, out, face_mode(faces, box, batch, detector, margin, min_face), overlay,
                             model, device, threads, engine, bf16,
                             RayOptions(ray, actors, cpus_per_actor, gpus_per_actor, retry_failed)))
        parser = open_parser(model, device, threads, engine, bf16,
                             many=len(listed.jobs) > 1 or any(job.is_video for job in listed.jobs))
        labeller = face_mode(faces, box, batch, detector, margin, min_face).labeller(parser, device, threads)
        summary = parse_jobs(labeller, listed.jobs, out, overlay)
    except DmlcsrError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    skipped = len(summary.skips)
    click.echo(f"parsed {summary.parsed} of {len(listed.jobs)} inputs into {out}"
               + (f"; {skipped} skipped" if skipped else "") + (f" ({labeller.summary})" if labeller.summary else ""))
    if skipped:
        sys.exit(1)


def run_ray(jobs: list[Job], out: Path, mode: FaceMode, overlay: bool, model: Path, device: str, threads: int | None,
            engine: str, bf16: bool, options: RayOptions) -> int:
    """--ray: the run (distributed.py), its summary, and the exit status (1 if any image has no outputs)."""
    summary = run_on_ray(jobs, out, actor_spec(model, mode, overlay, device, threads, engine, bf16, options), options)
    for line in summary.lines(out):
        click.echo(line)
    return 1 if summary.failed or summary.failed_before else 0
