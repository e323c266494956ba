"""End to end on a real photo: find every face, parse them all, composite one label map.

Stages as dmlcsr.runtime.faces.parse_photo runs and times them: detect (CenterFace on the
photo padded to a multiple of 32, decoding, NMS), parse (N official crops warped and
normalised, one DML-CSR batch of N), composite (per face: upsample to the input size,
argmax and softmax, inverse warp into its region; then the overlap rule). Medians over
repeats after one warm-up; one table, one JSON under benchmarks/results/.

    python -m dmlcsr.benchmarks.photo_faces --model demo-fp32.onnx
    python -m dmlcsr.benchmarks.photo_faces            # exports the demo model first (needs torch)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

import click
import cv2
import numpy as np

from dmlcsr.benchmarks.runtime_overhead import cpu_name, demo_model_onnx

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("detect", "parse", "composite", "total")


def time_photo(parser, image: np.ndarray, detector, repeats: int) -> tuple[dict[str, list[float]], int]:
    """Seconds per stage of parse_photo(image) over ``repeats`` runs, and the face count."""
    from dmlcsr.runtime.faces.photo import parse_photo

    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    counts = set()
    for _ in range(repeats):
        result = parse_photo(parser, image, detector=detector)
        counts.add(len(result.faces))
        for stage, seconds in result.timings.items():
            stages[stage].append(seconds)
        stages["total"].append(sum(result.timings.values()))
    if len(counts) != 1:
        raise click.ClickException(f"the face count changed between repeats: {sorted(counts)}")
    return stages, counts.pop()


@click.command()
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Exported DML-CSR (.onnx/.engine); default: export the demo model at 473 (needs torch).")
@click.option("--photo", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Photo to time; default: the shipped six-person t1.jpg.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for ONNX Runtime.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="JSON path (default under results/).")
def main(model: Path | None, photo: Path | None, repeats: int, device: str, threads: int | None,
         out: Path | None) -> None:
    """Time detection + parsing of every face + compositing on one photo, per stage."""
    from dmlcsr.demo_model import example_face_paths
    from dmlcsr.runtime import FaceParser
    from dmlcsr.runtime.faces.detector import CenterFace

    photo = photo or next(p for p in example_face_paths() if p.name == "t1.jpg")
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    with tempfile.TemporaryDirectory() as scratch:
        path = model or demo_model_onnx(Path(scratch), 473)
        parser = FaceParser(path, device=device, threads=threads)
        detector = CenterFace.open(device=device, threads=threads)
        time_photo(parser, image, detector, 1)  # warm-up: first runs allocate
        stages, faces = time_photo(parser, image, detector, repeats)
    median = {stage: statistics.median(values) for stage, values in stages.items()}
    summary = {
        "device": cpu_name(), "backend": parser.backend.name, "detector_backend": detector.backend.name,
        "model": Path(path).name, "input_size": list(parser.input_size), "photo": photo.name,
        "photo_size": f"{image.shape[1]}x{image.shape[0]}", "faces": faces, "repeats": repeats,
        "threads": threads, "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(), "opencv": cv2.__version__, "numpy": np.__version__,
        "median_ms": {stage: round(seconds * 1000, 1) for stage, seconds in median.items()},
        "parse_ms_per_face": round(median["parse"] * 1000 / max(faces, 1), 1),
        "share_pct": {stage: round(100 * median[stage] / median["total"], 1) for stage in STAGES[:-1]},
    }
    _print_table(summary)
    slug = "-".join("".join(c if c.isalnum() else " " for c in summary["device"].lower()).split())
    out = out or RESULTS / f"photo_faces-{slug}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    click.echo(f"wrote {out}")


def _print_table(summary: dict) -> None:
    click.echo(f"device: {summary['device']}; parser {summary['backend']} at {summary['input_size']}; detector "
               f"{summary['detector_backend']}; load average {summary['load_average_1min']}")
    click.echo(f"{summary['photo']} ({summary['photo_size']}): {summary['faces']} faces, median of "
               f"{summary['repeats']} runs")
    header = f"{'stage':<12}{'median ms':>12}{'share %':>10}"
    click.echo(header)
    click.echo("-" * len(header))
    for stage in STAGES:
        share = summary["share_pct"].get(stage, 100.0)
        click.echo(f"{stage:<12}{summary['median_ms'][stage]:>12.1f}{share:>10.1f}")
    click.echo(f"parse per face: {summary['parse_ms_per_face']:.1f} ms (all faces in one batch)")


if __name__ == "__main__":
    main()
