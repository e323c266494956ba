"""End to end on a real photo: find every face, parse them all, composite one label map.

Stages as dmlcsr.runtime.faces.parse_photo runs and times them: detect (CenterFace on the
photo padded to a multiple of 32, decoding, NMS), parse (N official crops warped and
normalised, one DML-CSR batch of N), composite (per face: upsample to the input size,
argmax and softmax, inverse warp into its region; then the overlap rule). Medians over
repeats after one warm-up (``dmlcsr-bench photo``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dmlcsr.benchmarks.environment import describe_environment, finish_environment
from dmlcsr.benchmarks.report import PHOTO, new_report
from dmlcsr.benchmarks.runtime_inputs import RuntimeSettings, example_photo, model_file
from dmlcsr.errors import DmlcsrError

STAGES = ("detect", "parse", "composite", "total")
DEFAULT_PHOTO = "t1.jpg"  # six people


@dataclass
class PhotoSettings(RuntimeSettings):
    """The photo to time (None: the shipped six-person t1.jpg)."""

    photo: Path | None = None


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
        raise DmlcsrError(f"the face count changed between repeats: {sorted(counts)}")
    return stages, counts.pop()


def run_photo(settings: PhotoSettings) -> dict:
    """Detection + parsing of every face + compositing on one photo, per stage."""
    from dmlcsr.runtime import FaceParser
    from dmlcsr.runtime.faces.detector import CenterFace

    environment = describe_environment(with_torch=False)
    photo = settings.photo or example_photo(DEFAULT_PHOTO)
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    with model_file(settings.model) as path:
        parser = FaceParser(path, device=settings.device, threads=settings.threads)
        detector = CenterFace.open(device=settings.device, threads=settings.threads)
        time_photo(parser, image, detector, 1)  # warm-up: first runs allocate
        stages, faces = time_photo(parser, image, detector, settings.repeats)
    median = {stage: statistics.median(values) for stage, values in stages.items()}
    return {
        **new_report(PHOTO, finish_environment(environment), settings),
        "backend": parser.backend.name, "detector_backend": detector.backend.name, "model": Path(path).name,
        "input_size": list(parser.input_size), "photo": photo.name, "photo_size": f"{image.shape[1]}x{image.shape[0]}",
        "faces": faces, "median_ms": {stage: round(seconds * 1000, 1) for stage, seconds in median.items()},
        "parse_ms_per_face": round(median["parse"] * 1000 / max(faces, 1), 1),
        "share_pct": {stage: round(100 * median[stage] / median["total"], 1) for stage in STAGES[:-1]},
    }
