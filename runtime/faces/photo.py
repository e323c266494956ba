"""Parse every face of a photo and put the results back into one label map.

The official pipeline parses an image as ONE face crop. A photo holds any number of faces
at any size, so: find the faces (CenterFace, or boxes the caller gives), widen each box
to the training framing (framing.py), parse the crops in backend batches, and warp
each face's labels back with the official inverse affine (nearest). Where two faces'
crops overlap, each pixel goes to the face whose network is surer it is not background
(higher 1 - p(background)); pixels outside every crop are background.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from dmlcsr.core.geometry import (
    Crop,
    affine_matrix,
    box_to_crop,
    softmax,
    upsample_logits,
    warp_back,
    whole_image_box,
)
from dmlcsr.core.metadata import ModelMetadata
from dmlcsr.core.validation import Box, face_box, finite_number, finite_points, whole_number
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.faces.box_file import FaceBoxes, read_boxes
from dmlcsr.runtime.faces.detector import CenterFace, Face
from dmlcsr.runtime.faces.framing import DEFAULT_MARGIN, Margin, enlarge_box
from dmlcsr.runtime.images import MAX_PIXELS, ImageInput, load_image

#: faces whose shorter box side is below this many pixels are skipped: parsing them means
#: blowing a handful of pixels up ~20 x to the network's 473 px, which yields only blur
MIN_FACE = 24
#: faces per backend call: the network inputs and logits in memory stay this many faces' worth
FACES_PER_BATCH = 8


class CropParser(Protocol):
    """What parse_photo needs of dmlcsr.runtime.parser.FaceParser."""

    metadata: ModelMetadata

    def infer_crops(self, image: np.ndarray, crops: list[Crop]) -> np.ndarray:
        """Raw logits N x C x h x w of these crops of one image."""


@dataclass
class FaceResult:
    """One parsed face: what was found, the crop it was parsed from, the photo pixels its
    crop covers (``region``: x0, y0, x1, y1, clipped to the photo) and, on request, its own
    labels over that region."""

    face: Face
    crop_box: tuple[float, float, float, float]
    region: tuple[int, int, int, int]
    labels: np.ndarray | None = field(default=None, repr=False)  # with parse_photo(keep_face_labels=True)


@dataclass
class PhotoResult:
    """The photo's label map (H x W uint8) and the faces it was composed from."""

    labels: np.ndarray
    faces: list[FaceResult]
    mode: str  # "auto" (detected), "whole" (official whole-image crop) or "boxes" (given)
    skipped_small: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def message(self) -> str:
        """One line for people: how many faces were parsed, and why none if none."""
        skipped = f", {self.skipped_small} smaller than the minimum face size skipped" if self.skipped_small else ""
        if self.faces:
            return f"{len(self.faces)} face{'s' * (len(self.faces) != 1)} parsed{skipped}"
        if self.mode == "auto":
            return (f"no face found{skipped}; the label map is all background (if the image is already a "
                    "face crop, use --faces whole / faces='whole')")
        return f"no face box given{skipped}; the label map is all background"


@lru_cache(maxsize=4)
def default_detector(device: str = "auto") -> CenterFace:
    """The shipped CenterFace, opened once per device and reused across photos."""
    return CenterFace.open(device=device)


def _faces_to_parse(image: np.ndarray, faces: object, detector: CenterFace | None, min_face: float,
                    margin: Margin, image_name: str) -> tuple[str, list[tuple[Face, Box]], int]:
    """(mode, [(face, crop box)], number of detected faces skipped as too small)."""
    height, width = image.shape[:2]
    if isinstance(faces, str) and faces == "whole":
        box = whole_image_box(height, width)
        return "whole", [(Face(box), box)], 0
    if isinstance(faces, str) and faces == "auto":
        found = (detector or default_detector()).detect(image)
        kept = [face for face in found if face.size >= min_face]
        return "auto", [(face, enlarge_box(face.box, margin)) for face in kept], len(found) - len(kept)
    if isinstance(faces, str | Path):
        if not str(faces).lower().endswith(".json"):
            raise DmlcsrError(f"faces={str(faces)!r} is not 'auto', 'whole' or a .json file of boxes")
        faces = read_boxes(faces)
    if isinstance(faces, FaceBoxes):
        given = faces.for_image((height, width), image_name)
    elif isinstance(faces, Sequence) and not isinstance(faces, (str, bytes)):
        given = [_checked_face(face, (height, width), f"face box {index}") for index, face in enumerate(faces)]
    else:
        raise DmlcsrError(f"faces={faces!r} is not 'auto', 'whole', a .json file of boxes or a list of x, y, w, h "
                          "boxes")
    return "boxes", [(face, enlarge_box(face.box, margin)) for face in given], 0


def _checked_face(face: object, image_size: tuple[int, int], what: str) -> Face:
    """A caller's box or Face, checked as a faces JSON entry is (box, score, landmarks)."""
    if not isinstance(face, Face):
        return Face(face_box(face, image_size, what))
    landmarks = None if face.landmarks is None else np.asarray(
        finite_points(face.landmarks, 5, f"the landmarks of {what}"), np.float32)
    return Face(face_box(face.box, image_size, what), finite_number(face.score, f"the score of {what}"), landmarks)


def _input_region(crop: Crop, input_size: tuple[int, int], image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The photo pixels the crop's input covers (x0, y0, x1, y1), clipped to the photo.
    Nearest sampling reads input pixel i for source positions up to i +- 0.5, so the
    input's extent is -0.5 .. size - 0.5; one more pixel of slack absorbs rounding."""
    in_h, in_w = input_size
    corners = np.array([[-0.5, -0.5, 1], [in_w - 0.5, -0.5, 1], [-0.5, in_h - 0.5, 1],
                        [in_w - 0.5, in_h - 0.5, 1]], np.float64)
    mapped = corners @ affine_matrix(crop, input_size, inverse=True).T
    x0, y0 = np.floor(mapped.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(mapped.max(axis=0)).astype(int) + 1
    return int(max(x0, 0)), int(max(y0, 0)), int(min(x1, image_size[1])), int(min(y1, image_size[0]))


def labels_and_foreground(logits: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """C x h x w logits -> (labels, 1 - p(background)) at the input size, as the official
    upsampling (bilinear, align_corners) then argmax / softmax."""
    scores = upsample_logits(logits[None], input_size)[0]
    labels = scores.argmax(axis=0).astype(np.uint8)
    return labels, (1.0 - softmax(scores)[0]).astype(np.float32)


def parse_photo(parser: CropParser, image: ImageInput, faces: str | Path | FaceBoxes | Sequence = "auto",
                detector: CenterFace | None = None, min_face: float = MIN_FACE,
                margin: Margin = DEFAULT_MARGIN, batch_size: int = FACES_PER_BATCH,
                keep_face_labels: bool = False, image_name: str = "") -> PhotoResult:
    """Label map of a whole photo (path, or BGR array as cv2.imread gives), face by face.

    ``faces``: "auto" (detect with ``detector``, default the shipped CenterFace; faces whose
    shorter side is under ``min_face`` px are skipped and counted), "whole" (the official
    behaviour: the whole image is one face crop, for dataset-style crops), a .json file
    (read_boxes; refused when written for another image) or a list of x, y, w, h boxes /
    Face objects from your own detector (checked as ``FaceParser.parse`` checks a box).
    Detected and given boxes are widened by ``margin`` (NO_MARGIN if yours already frame
    the whole head). No face is not an error: the result is all background and says so.
    Faces go through the network ``batch_size`` at a time and are composited as they come,
    so memory does not grow with the number of faces; ``keep_face_labels`` also keeps each
    face's own labels over its region (``FaceResult.labels``). ``image_name`` (default: the
    path's name) is checked against the image a faces JSON was written for.
    """
    image_name = image_name or (Path(image).name if isinstance(image, str | Path) else "")
    image = load_image(image, getattr(parser, "max_pixels", MAX_PIXELS))
    min_face = finite_number(min_face, "minimum face size", 0.0)
    step = whole_number(batch_size, "faces per batch")
    image_size = image.shape[:2]
    input_size = tuple(parser.metadata.preprocessing.input_size)
    timings = {"detect": 0.0, "parse": 0.0, "composite": 0.0}
    start = time.perf_counter()
    mode, chosen, skipped = _faces_to_parse(image, faces, detector, min_face, margin, image_name)
    timings["detect"] = time.perf_counter() - start
    labels = np.zeros(image_size, np.uint8)
    best = np.zeros(image_size, np.float32)  # the winning face's 1 - p(background) per pixel
    results = []
    for first in range(0, len(chosen), step):
        group = chosen[first:first + step]
        crops = [box_to_crop(crop_box, input_size) for _, crop_box in group]
        start = time.perf_counter()
        logits = parser.infer_crops(image, crops)
        timings["parse"] += time.perf_counter() - start
        start = time.perf_counter()
        for (face, crop_box), crop, face_logits in zip(group, crops, logits, strict=True):
            face_labels, foreground = labels_and_foreground(face_logits, input_size)
            region = _input_region(crop, input_size, image_size)
            region_labels = warp_back(face_labels, crop, image_size, input_size, region)
            foreground = warp_back(foreground, crop, image_size, input_size, region)
            composite_into(labels, best, region, region_labels, foreground)
            results.append(FaceResult(face, crop_box, region, region_labels if keep_face_labels else None))
        timings["composite"] += time.perf_counter() - start
    return PhotoResult(labels, results, mode, skipped, timings)


def composite_into(labels: np.ndarray, best: np.ndarray, region: tuple[int, int, int, int],
                   face_labels: np.ndarray, foreground: np.ndarray) -> None:
    """Add one face to the photo's map: each pixel of ``region`` goes to the face with the
    highest 1 - p(background) so far (``best``); pixels no face claims stay background."""
    x0, y0, x1, y1 = region
    wins = foreground > best[y0:y1, x0:x1]
    labels[y0:y1, x0:x1][wins] = face_labels[wins]
    best[y0:y1, x0:x1][wins] = foreground[wins]
