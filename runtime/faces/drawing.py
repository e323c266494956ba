"""Draw what parse_photo found on top of a label overlay: boxes, crops, scores, landmarks."""

from __future__ import annotations

import cv2
import numpy as np

from dmlcsr.runtime.faces.photo import PhotoResult

BOX_COLOUR = (255, 255, 255)  # BGR: the detector's face box
CROP_COLOUR = (160, 160, 160)  # the widened box the face was parsed from
LANDMARK_COLOUR = (0, 255, 255)


def draw_faces(image: np.ndarray, result: PhotoResult, scale: int = 1, show_crops: bool = True) -> np.ndarray:
    """A copy of ``image`` (BGR, the photo's size times ``scale``) with each face's box,
    number and score, landmarks and, thin grey, the crop it was parsed from. Geometry is
    clipped to the canvas and non-finite points are left out, so any box or landmark a
    caller passes draws without error."""
    canvas = image.copy()
    height, width = image.shape[:2]
    thickness = max(1, round(max(height, width) / 640))

    def point(x: float, y: float) -> tuple[int, int] | None:
        """A pixel position clipped to just outside the canvas (OpenCV takes int32 only);
        None for a NaN or infinite coordinate, which is not drawn."""
        if not (np.isfinite(x) and np.isfinite(y)):
            return None
        return int(np.clip(round(x * scale), -1, width)), int(np.clip(round(y * scale), -1, height))

    def rectangle(box, colour: tuple[int, int, int], line: int) -> tuple[int, int] | None:
        x, y, w, h = box
        top_left, bottom_right = point(x, y), point(x + w, y + h)
        if top_left is not None and bottom_right is not None:
            cv2.rectangle(canvas, top_left, bottom_right, colour, line, cv2.LINE_AA)
        return top_left

    for index, face_result in enumerate(result.faces):
        face = face_result.face
        if show_crops and result.mode != "whole":
            rectangle(face_result.crop_box, CROP_COLOUR, 1)
        top_left = rectangle(face.box, BOX_COLOUR, thickness)
        if top_left is not None:
            caption = f"#{index} {face.score:.2f}" if result.mode == "auto" else f"#{index}"
            cv2.putText(canvas, caption, (max(0, top_left[0]), max(12, top_left[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4 * thickness, BOX_COLOUR, thickness, cv2.LINE_AA)
        for px, py in face.landmarks if face.landmarks is not None else ():
            centre = point(px, py)
            if centre is not None:
                cv2.circle(canvas, centre, thickness + 1, LANDMARK_COLOUR, -1, cv2.LINE_AA)
    return canvas
