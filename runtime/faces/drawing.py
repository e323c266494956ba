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
    number and score, landmarks and, thin grey, the crop it was parsed from."""
    canvas = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 640))

    def corners(box) -> tuple[tuple[int, int], tuple[int, int]]:
        x, y, w, h = (v * scale for v in box)
        return (round(x), round(y)), (round(x + w), round(y + h))

    for index, face_result in enumerate(result.faces):
        face = face_result.face
        if show_crops and result.mode != "whole":
            cv2.rectangle(canvas, *corners(face_result.crop_box), CROP_COLOUR, 1, cv2.LINE_AA)
        top_left, bottom_right = corners(face.box)
        cv2.rectangle(canvas, top_left, bottom_right, BOX_COLOUR, thickness, cv2.LINE_AA)
        caption = f"#{index} {face.score:.2f}" if result.mode == "auto" else f"#{index}"
        cv2.putText(canvas, caption, (top_left[0], max(12, top_left[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thickness, BOX_COLOUR, thickness, cv2.LINE_AA)
        if face.landmarks is not None:
            for px, py in face.landmarks * scale:
                cv2.circle(canvas, (round(px), round(py)), thickness + 1, LANDMARK_COLOUR, -1, cv2.LINE_AA)
    return canvas
