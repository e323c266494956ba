"""How dmlcsr-parse turns decoded images into label maps: one face per image, or every face.

``OneFace`` is the official behaviour (the whole image, or the one box given, is the
face crop) and batches several images per backend call. ``EveryFace`` finds the faces of
each image (CenterFace, or the boxes of a faces JSON) and parses them with parse_photo;
its images go one at a time, their faces forming the batch. The file and video loops
(parse_files.py) treat both alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dmlcsr.runtime.faces.box_file import FaceBoxes, boxes_document
from dmlcsr.runtime.faces.detector import CenterFace
from dmlcsr.runtime.faces.drawing import draw_faces
from dmlcsr.runtime.faces.framing import DEFAULT_MARGIN, Margin
from dmlcsr.runtime.faces.photo import FACES_PER_BATCH, MIN_FACE, PhotoResult, parse_photo
from dmlcsr.runtime.parser import FaceParser
from dmlcsr.runtime.visualize import overlay, overlay_scale


@dataclass
class Labelled:
    """One image's label map and, in face mode, the faces it was composed from."""

    labels: np.ndarray
    photo: PhotoResult | None = None

    def faces_record(self, image_name: str = "") -> dict:
        """The NAME_faces.json document (face mode only)."""
        assert self.photo is not None, "one-face mode records no faces"
        return boxes_document(self.photo, image_name)

    @property
    def note(self) -> str:
        """Why a face-mode map is (partly) empty: no face found, or small faces skipped."""
        if self.photo is None or (self.photo.faces and not self.photo.skipped_small):
            return ""
        return self.photo.message


class OneFace:
    """The whole image (or ``face_box`` in every image) as the one face crop, ``batch`` images per call."""

    def __init__(self, parser: FaceParser, face_box: Sequence[float] | None = None, batch: int = 1) -> None:
        self.parser, self.face_box, self.images_per_call = parser, face_box, batch
        self.writes_faces = False

    def label(self, images: list[np.ndarray], names: Sequence[str]) -> list[Labelled]:
        boxes = None if self.face_box is None else [self.face_box] * len(images)
        return [Labelled(labels) for labels in self.parser.parse_batch(images, boxes, batch_size=self.images_per_call)]

    def overlay(self, image: np.ndarray, labelled: Labelled, legend: bool | list[int] = True) -> np.ndarray:
        return overlay(image, labelled.labels, self.parser.label_names, legend=legend)

    @property
    def summary(self) -> str:
        return ""


@dataclass
class EveryFace:
    """Faces found by ``detector`` (faces="auto") or read from a faces JSON, each parsed and composited."""

    parser: FaceParser
    faces: str | FaceBoxes = "auto"
    detector: CenterFace | None = None
    margin: Margin = DEFAULT_MARGIN
    min_face: float = MIN_FACE
    faces_per_call: int = FACES_PER_BATCH
    counts: dict[str, int] = field(default_factory=lambda: {"faces": 0, "without_faces": 0})
    images_per_call = 1
    writes_faces = True

    def label(self, images: list[np.ndarray], names: Sequence[str]) -> list[Labelled]:
        results = []
        for image, name in zip(images, names, strict=True):
            result = parse_photo(self.parser, image, self.faces, self.detector, self.min_face, self.margin,
                                 batch_size=self.faces_per_call, image_name=name)
            self.counts["faces"] += len(result.faces)
            self.counts["without_faces"] += not result.faces
            results.append(Labelled(result.labels, result))
        return results

    def overlay(self, image: np.ndarray, labelled: Labelled, legend: bool | list[int] = True) -> np.ndarray:
        """The colour overlay with each face's box, crop, score and landmarks drawn on it."""
        picture = overlay(image, labelled.labels, self.parser.label_names, legend=legend)
        scale = overlay_scale(image.shape[:2])  # overlay() enlarges small images
        height, width = image.shape[0] * scale, image.shape[1] * scale
        picture[:height, :width] = draw_faces(picture[:height, :width], labelled.photo, scale=scale)
        return picture

    @property
    def summary(self) -> str:
        missing = self.counts["without_faces"]
        return f"{self.counts['faces']} faces found" + (f", none in {missing} images or frames" if missing else "")


@dataclass(frozen=True)
class FaceMode:
    """How the faces of every image are found, settled (options checked, a faces JSON read)
    where the command runs; ``labeller`` then builds the labeller wherever a parser is. It
    pickles, so Ray actors label exactly as the command line asked."""

    faces: str | FaceBoxes = "auto"  # "whole", "auto" (the detector) or the boxes of a faces JSON
    face_box: tuple[float, float, float, float] | None = None
    batch: int | None = None
    detector: Path | None = None
    margin: Margin = DEFAULT_MARGIN
    min_face: float = MIN_FACE

    @property
    def writes_faces(self) -> bool:
        return self.face_box is None and self.faces != "whole"

    def labeller(self, parser: FaceParser, device: str = "auto", threads: int | None = None) -> OneFace | EveryFace:
        """--faces whole / --face-box: one face per image; auto: the detector, opened here; boxes: as read."""
        if not self.writes_faces:
            return OneFace(parser, self.face_box, self.batch or 1)
        detector = CenterFace.open(self.detector, device=device, threads=threads) if self.faces == "auto" else None
        return EveryFace(parser, self.faces, detector, self.margin, self.min_face, self.batch or FACES_PER_BATCH)
