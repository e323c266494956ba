"""Face boxes as JSON: written by dmlcsr-parse (NAME_faces.json), read back by --faces FILE.json.

A file written for one image records that image's name and size; reading it for another
image is refused, since its boxes would land on the wrong pixels without any error. Every
box is checked by dmlcsr.core.validation, the same check ``FaceParser.parse`` applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dmlcsr.core.validation import box_values, face_box, finite_number, finite_points
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.faces.detector import Face
from dmlcsr.runtime.output_files import write_atomic

if TYPE_CHECKING:
    from dmlcsr.runtime.faces.photo import PhotoResult

#: a faces file larger than this is not one dmlcsr-parse wrote (about 200 bytes a face)
MAX_FILE_BYTES = 64 * 2**20
BOX_FORMATS = '[[x, y, w, h], ...] or {"faces": [{"box": [x, y, w, h]}, ...]}'


@dataclass(frozen=True)
class FaceBoxes:
    """The faces of one JSON file and, when the file says, the image they belong to."""

    faces: tuple[Face, ...]
    source: Path
    image: str = ""
    width: int | None = None
    height: int | None = None

    def for_image(self, image_size: tuple[int, int], image_name: str = "") -> list[Face]:
        """The faces, after checking they were written for this image and lie on it."""
        height, width = image_size
        if self.width is not None and (self.width, self.height) != (width, height):
            raise DmlcsrError(f"{self.source.name} was written for a {self.width}x{self.height} image"
                              f"{f' ({self.image})' if self.image else ''}, not this {width}x{height} one; "
                              "pass the image's own faces file")
        if self.image and image_name and self.image != image_name:
            raise DmlcsrError(f"{self.source.name} was written for {self.image}, not {image_name}; pass the image's "
                              "own faces file (or drop its \"image\" field)")
        for index, face in enumerate(self.faces):
            face_box(face.box, image_size, f"face box {index} in {self.source.name}")
        return list(self.faces)


def read_boxes(path: str | Path) -> FaceBoxes:
    """Face boxes from JSON: write_boxes's file, {"faces": [{"box": [x, y, w, h]}, ...]},
    or a bare list of [x, y, w, h] (the format other detectors are easily converted to)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise DmlcsrError(f"{path} is over {MAX_FILE_BYTES // 2**20} MB, not a faces file; give {BOX_FORMATS}")
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DmlcsrError(f"face box file not found: {path}") from None
    except OSError as exc:
        raise DmlcsrError(f"cannot read face box file {path} ({exc.strerror}); give a .json file of boxes") from None
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, bad UTF-8, ints past 4300 digits
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise DmlcsrError(f"{path} is not valid JSON ({reason}); give boxes as {BOX_FORMATS}") from None
    entries = data.get("faces") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise DmlcsrError(f"{path} does not hold face boxes; give {BOX_FORMATS}")
    faces = tuple(_face_from_json(entry, f"face box {index} in {path.name}") for index, entry in enumerate(entries))
    if not isinstance(data, dict):
        return FaceBoxes(faces, path)
    image = data.get("image") or ""
    width, height = data.get("width"), data.get("height")
    if not isinstance(image, str) or (width, height) != (None, None) and not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
        raise DmlcsrError(f"{path} has an unreadable image, width or height field; fix them or drop them")
    return FaceBoxes(faces, path, image, width, height)


def _face_from_json(entry: object, what: str) -> Face:
    """One entry: [x, y, w, h] or {"box": [...], "score": s, "landmarks": [[x, y] x 5]}."""
    if not isinstance(entry, dict):
        return Face(box_values(entry, what))
    if "box" not in entry:
        raise DmlcsrError(f"{what} has no \"box\"; give {BOX_FORMATS}")
    box = box_values(entry["box"], what)
    score = finite_number(entry.get("score", 1.0), f"the score of {what}")
    landmarks = entry.get("landmarks")
    points = None if landmarks is None else np.asarray(finite_points(landmarks, 5, f"the landmarks of {what}"),
                                                        np.float32)
    return Face(box, score, points)


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
    write_atomic(path, dumps_boxes(boxes_document(result, image_name)))
