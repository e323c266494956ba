"""Parse every face of a photo and put the results back into one label map.

The official pipeline parses an image as ONE face crop. A photo holds any number of faces
at any size, so: find the faces (CenterFace, or boxes the caller gives), widen each box
to the training framing (framing.py), parse all crops in one backend batch, and warp
each face's labels back with the official inverse affine (nearest). Where two faces'
crops overlap, each pixel goes to the face whose network is surer it is not background
(higher 1 - p(background)); pixels outside every crop are background.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from dmlcsr.core.geometry import Crop, affine_matrix, box_to_crop, upsample_logits, whole_image_box
from dmlcsr.core.metadata import ModelMetadata
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.faces.detector import CenterFace, Face
from dmlcsr.runtime.faces.framing import DEFAULT_MARGIN, Margin, enlarge_box
from dmlcsr.runtime.images import MAX_PIXELS, ImageInput, load_image

#: faces whose shorter box side is below this many pixels are skipped: parsing them means
#: blowing a handful of pixels up ~20 x to the network's 473 px, which yields only blur
MIN_FACE = 24


class CropParser(Protocol):
    """What parse_photo needs of dmlcsr.runtime.parser.FaceParser."""

    metadata: ModelMetadata

    def infer_crops(self, image: np.ndarray, crops: list[Crop]) -> np.ndarray:
        """Raw logits N x C x h x w of all crops of one image, in one backend batch."""


@dataclass
class FaceResult:
    """One parsed face: what was found, the crop it was parsed from, and its own labels
    over ``region`` (x0, y0, x1, y1 in photo pixels, the crop clipped to the photo)."""

    face: Face
    crop_box: tuple[float, float, float, float]
    region: tuple[int, int, int, int]
    labels: np.ndarray
    foreground: np.ndarray = field(repr=False)  # 1 - p(background) over region, float32


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


def read_boxes(path: str | Path) -> list[Face]:
    """Face boxes from JSON: write_boxes's file, {"faces": [{"box": [x, y, w, h]}, ...]},
    or a bare list of [x, y, w, h] (the format other detectors are easily converted to)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DmlcsrError(f"face box file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DmlcsrError(f"{path} is not valid JSON ({exc}); give boxes as [[x, y, w, h], ...]") from None
    entries = data.get("faces") if isinstance(data, dict) else data
    try:
        return [_face_from_json(entry) for entry in entries]
    except (TypeError, ValueError, KeyError):
        raise DmlcsrError(f"{path} does not hold face boxes; give [[x, y, w, h], ...] or "
                          '{"faces": [{"box": [x, y, w, h]}, ...]} with positive w and h') from None


def _face_from_json(entry) -> Face:
    box = entry["box"] if isinstance(entry, dict) else entry
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(box)
    if not isinstance(entry, dict):
        return Face((x, y, w, h))
    landmarks = np.asarray(entry["landmarks"], np.float32).reshape(5, 2) if entry.get("landmarks") else None
    return Face((x, y, w, h), float(entry.get("score", 1.0)), landmarks)


def boxes_document(result: PhotoResult, image_name: str = "") -> dict:
    """The JSON-ready record of a photo's faces (read back by read_boxes)."""
    height, width = result.labels.shape
    return {
        "image": image_name, "width": width, "height": height, "mode": result.mode,
        "skipped_small": result.skipped_small,
        "faces": [{"box": _rounded(f.face.box), "score": round(f.face.score, 4),
                   "landmarks": None if f.face.landmarks is None else [_rounded(p) for p in f.face.landmarks],
                   "crop_box": _rounded(f.crop_box), "region": list(f.region)}
                  for f in result.faces],
    }


def _rounded(values) -> list[float]:
    return [round(float(v), 2) for v in values]


def dumps_boxes(document: dict, items: str = "faces") -> str:
    """JSON text with one line per face (or per video frame with ``items="frames"``), so a
    file of many faces stays readable; the list must be the document's last key."""
    head = {key: value for key, value in document.items() if key != items}
    lines = [f"  {json.dumps(key)}: {json.dumps(value)}," for key, value in head.items()]
    body = ",\n".join(f"    {json.dumps(item)}" for item in document[items])
    return "{\n" + "\n".join(lines) + f'\n  "{items}": [' + (f"\n{body}\n  " if body else "") + "]\n}\n"


def write_boxes(path: str | Path, result: PhotoResult, image_name: str = "") -> None:
    """Write the faces of ``result`` as JSON (boxes x, y, w, h in photo pixels)."""
    Path(path).write_text(dumps_boxes(boxes_document(result, image_name)))


def _faces_to_parse(image: np.ndarray, faces, detector: CenterFace | None, min_face: float,
                    margin: Margin) -> tuple[str, list[tuple[Face, tuple[float, float, float, float]]], int]:
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
        given = read_boxes(faces)
    else:
        given = [face if isinstance(face, Face) else Face(tuple(float(v) for v in face)) for face in faces]
    return "boxes", [(face, enlarge_box(face.box, margin)) for face in given], 0


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


def _warp_into_region(values: np.ndarray, crop: Crop, input_size: tuple[int, int],
                      region: tuple[int, int, int, int]) -> np.ndarray:
    """Input-size map -> the photo's ``region`` with the official inverse affine, nearest.
    Same pixels as dmlcsr.core.geometry.warp_labels_back, cut to the region: the affine's
    translation is shifted by the region's corner instead of warping the whole photo."""
    x0, y0, x1, y1 = region
    matrix = affine_matrix(crop, input_size, inverse=True)
    matrix[:, 2] -= (x0, y0)
    return cv2.warpAffine(values, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def labels_and_foreground(logits: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """C x h x w logits -> (labels, 1 - p(background)) at the input size, as the official
    upsampling (bilinear, align_corners) then argmax / softmax."""
    scores = upsample_logits(logits[None], input_size)[0]
    labels = scores.argmax(axis=0).astype(np.uint8)
    scores -= scores.max(axis=0, keepdims=True)
    np.exp(scores, out=scores)
    foreground = 1.0 - scores[0] / scores.sum(axis=0)
    return labels, foreground.astype(np.float32)


def composite(image_size: tuple[int, int], faces: list[FaceResult]) -> np.ndarray:
    """One label map: per pixel the face with the highest 1 - p(background); 0 elsewhere."""
    labels = np.zeros(image_size, np.uint8)
    best = np.zeros(image_size, np.float32)
    for face in faces:
        x0, y0, x1, y1 = face.region
        wins = face.foreground > best[y0:y1, x0:x1]
        labels[y0:y1, x0:x1][wins] = face.labels[wins]
        best[y0:y1, x0:x1][wins] = face.foreground[wins]
    return labels


def parse_photo(parser: CropParser, image: ImageInput, faces: str | Path | Sequence = "auto",
                detector: CenterFace | None = None, min_face: float = MIN_FACE,
                margin: Margin = DEFAULT_MARGIN) -> PhotoResult:
    """Label map of a whole photo (path, or BGR array as cv2.imread gives), face by face.

    ``faces``: "auto" (detect with ``detector``, default the shipped CenterFace; faces whose
    shorter side is under ``min_face`` px are skipped and counted), "whole" (the official
    behaviour: the whole image is one face crop, for dataset-style crops), a .json file
    (read_boxes) or a list of x, y, w, h boxes / Face objects from your own detector.
    Detected and given boxes are widened by ``margin`` (NO_MARGIN if yours already frame the
    whole head). No face is not an error: the result is all background and says so.
    """
    image = load_image(image, getattr(parser, "max_pixels", MAX_PIXELS))
    image_size = image.shape[:2]
    input_size = tuple(parser.metadata.preprocessing.input_size)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    mode, chosen, skipped = _faces_to_parse(image, faces, detector, min_face, margin)
    timings["detect"] = time.perf_counter() - start
    crops = [box_to_crop(crop_box, input_size) for _, crop_box in chosen]
    start = time.perf_counter()
    logits = parser.infer_crops(image, crops) if crops else None
    timings["parse"] = time.perf_counter() - start
    start = time.perf_counter()
    results = []
    for index, ((face, crop_box), crop) in enumerate(zip(chosen, crops, strict=True)):
        labels, foreground = labels_and_foreground(logits[index], input_size)
        region = _input_region(crop, input_size, image_size)
        if region[2] <= region[0] or region[3] <= region[1]:
            continue  # a given box wholly outside the photo
        results.append(FaceResult(face, crop_box, region, _warp_into_region(labels, crop, input_size, region),
                                  _warp_into_region(foreground, crop, input_size, region)))
    label_map = composite(image_size, results)
    timings["composite"] = time.perf_counter() - start
    return PhotoResult(label_map, results, mode, skipped, timings)
