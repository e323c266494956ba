"""One group of image jobs -> each image's outputs encoded in memory: the step that
dmlcsr-parse's own loop and its Ray actors share.

Decoding, labelling and encoding happen here; writing does not. The local loop writes the
result at once (parse_files.py); under Ray the actors return it and the driver writes it
(distributed.py). Both therefore give byte-identical files, and a failure at any step is a
counted skip of that one image, never of its group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.faces.box_file import dumps_boxes
from dmlcsr.runtime.images import load_image
from dmlcsr.runtime.jobs import Job
from dmlcsr.runtime.labellers import Labelled
from dmlcsr.runtime.parser import FaceParser
from dmlcsr.runtime.remote_files import read_uri
from dmlcsr.runtime.skips import UNFORESEEN, Skips
from dmlcsr.runtime.visualize import encode_image


class Labeller(Protocol):
    """labellers.OneFace or labellers.EveryFace."""

    parser: FaceParser
    images_per_call: int
    writes_faces: bool  # NAME_faces.json per image / video

    def label(self, images: list[np.ndarray], names: list[str]) -> list[Labelled]: ...

    def overlay(self, image: np.ndarray, labelled: Labelled, legend: bool | list[int] = True) -> np.ndarray: ...


@dataclass
class ImageOutputs:
    """One image's encoded outputs (names from its job) and what a manifest records of it."""

    job: Job
    label_png: bytes
    faces_json: str | None = None
    overlay: bytes | None = None
    faces: int = 1  # faces parsed: those found or given in face mode, 1 for a whole image or --face-box
    note: str = ""  # why a face-mode map is (partly) empty

    def files(self, out: Path) -> list[tuple[Path, bytes | str]]:
        """(path under ``out``, data) for write_group: the label PNG, then the faces JSON and overlay if any."""
        files: list[tuple[Path, bytes | str]] = [(out / self.job.label_png, self.label_png)]
        if self.faces_json is not None:
            files.append((out / self.job.faces_json, self.faces_json))
        if self.overlay is not None:
            files.append((out / self.job.overlay, self.overlay))
        return files


def read_job(job: Job, max_pixels: int) -> np.ndarray:
    """The job's image from its URI (through pyarrow, dmlcsr-parse --ray) or its file,
    decoded as FaceParser reads every image."""
    return read_uri(job.uri, max_pixels) if job.uri else load_image(job.source, max_pixels)


def label_group(labeller: Labeller, group: Sequence[Job], with_overlay: bool, skips: Skips) -> list[ImageOutputs]:
    """Decode, label and encode one group of image jobs (``labeller.images_per_call`` per
    backend call); a job that fails is recorded in ``skips`` and left out of the result."""
    ready: list[tuple[Job, np.ndarray]] = []
    for job in group:
        with skips.guard(job.source):
            ready.append((job, read_job(job, labeller.parser.max_pixels)))
    labels = label_or_skip(labeller, [image for _, image in ready], [job.source.name for job, _ in ready],
                           [job.source for job, _ in ready], skips)
    results = []
    for (job, image), labelled in zip(ready, labels, strict=True):
        if labelled is None:
            continue
        with skips.guard(job.source):
            results.append(ImageOutputs(
                job, encode_image(job.label_png, labelled.labels),
                dumps_boxes(labelled.faces_record(job.source.name)) if labeller.writes_faces else None,
                encode_image(job.overlay, labeller.overlay(image, labelled)) if with_overlay else None,
                len(labelled.photo.faces) if labelled.photo is not None else 1, labelled.note))
    return results


def label_or_skip(labeller: Labeller, images: list[np.ndarray], names: list[str], sources: list[object],
                  skips: Skips) -> list[Labelled | None]:
    """Labels for every image (None where it failed); when a group's call fails, each image
    is tried on its own, so only the one at fault is skipped."""
    if not images:
        return []
    try:
        return list(labeller.label(images, names))
    except (DmlcsrError, *UNFORESEEN) as exc:
        if len(images) == 1:
            skips.add_error(sources[0], exc)
            return [None]
    return [labelled for image, name, source in zip(images, names, sources, strict=True)
            for labelled in label_or_skip(labeller, [image], [name], [source], skips)]
