"""The deployed path, end to end: dmlcsr.runtime's FaceParser on a real photo at its own
size (decoded once, outside the timing), with pre-process, inference and post-process
also timed alone through the runtime's own functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from dmlcsr.benchmarks.harness import Schedule, measure


def time_end_to_end(model_path: Path, photo: Path, schedule: Schedule, device: str = "auto",
                    threads: int | None = None, on_sample: Callable[[], None] | None = None) -> dict:
    """Median/p90 of FaceParser.parse(image) and of its three stages, for one model file."""
    from dmlcsr.core.pipeline import labels_at_image, preprocess
    from dmlcsr.runtime import FaceParser, load_image

    parser = FaceParser(model_path, device=device, threads=threads)
    image = load_image(photo)
    crop = parser.crop_for(image)
    batch = preprocess(image, [crop], parser.input_size)
    feeds = {parser.metadata.input_name: batch}
    logits = parser.backend.run(feeds)[parser.metadata.output_name]
    stages = {
        "preprocess": lambda: preprocess(image, [parser.crop_for(image)], parser.input_size),
        "inference": lambda: parser.backend.run(feeds),
        "postprocess": lambda: labels_at_image(logits[0], crop, image.shape[:2], parser.input_size),
        "total": lambda: parser.parse(image),
    }
    return {
        "photo": photo.name, "photo_size": [int(image.shape[1]), int(image.shape[0])],
        "backend": parser.backend.name, "model_file": model_path.name,
        "stages": {name: asdict(measure(fn, schedule, on_sample=on_sample)) for name, fn in stages.items()},
    }
