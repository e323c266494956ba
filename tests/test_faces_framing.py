"""Face box -> training-crop framing: the margins, and what they frame on real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dmlcsr.core.geometry import box_to_crop, whole_image_box
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.backends import open_backend
from dmlcsr.runtime.faces.detector import CenterFace, default_model_path
from dmlcsr.runtime.faces.framing import DEFAULT_MARGIN, NO_MARGIN, Margin, enlarge_box, face_crop

FACES = Path(__file__).resolve().parents[1] / "dmlcsr" / "data" / "faces"


@pytest.fixture(scope="module")
def detections() -> dict[str, list]:
    detector = CenterFace(open_backend(default_model_path(), "cpu", engine="onnxruntime"))
    return {name: (cv2.imread(str(FACES / name)).shape[:2], detector.detect(cv2.imread(str(FACES / name))))
            for name in ("Tom_Hanks_54745.png", "astronaut.png", "t1.jpg")}


def _square(crop) -> np.ndarray:
    """x0, y0, x1, y1 of an unrotated crop's square."""
    return np.concatenate([crop.center - crop.scale / 2, crop.center + crop.scale / 2])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    return float(inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter))


def test_margins_widen_each_side_by_its_fraction():
    assert enlarge_box((100, 50, 40, 60)) == pytest.approx((92, 26, 56, 96))
    assert enlarge_box((100, 50, 40, 60), NO_MARGIN) == (100, 50, 40, 60)
    assert enlarge_box((0, 0, 10, 10), Margin(0.1, 0.3, 0.0, 0.5)) == pytest.approx((-1, 0, 14, 15))
    crop = face_crop((100, 50, 40, 60), input_size=(473, 473))
    assert crop.scale.tolist() == [96, 96]  # widened to the square input
    assert crop.center.tolist() == [120, 74]


def test_margin_parse():
    assert Margin.parse("0.3") == Margin(0.3, 0.3, 0.3, 0.3)
    assert Margin.parse("0.2,0.2,0.4,0.2") == DEFAULT_MARGIN
    for bad in ("", "a", "0.1,0.2", "-0.1"):
        with pytest.raises(DmlcsrError, match="left,right,top,bottom"):
            Margin.parse(bad)


def test_tom_hanks_enlarged_box_covers_the_whole_image(detections):
    """Tom_Hanks_54745.png is a tight 112 px recognition crop (brow to chin): the widened
    box's crop holds everything the official whole-image crop holds, and not much more
    (1.59 x its side measured; the rest is black border, as for any face near an edge)."""
    (height, width), (face,) = detections["Tom_Hanks_54745.png"]
    ours = _square(face_crop(face.box))
    whole = _square(box_to_crop(whole_image_box(height, width)))
    assert (ours[:2] <= whole[:2] + 1).all() and (ours[2:] >= whole[2:] - 1).all()
    assert 1.2 < (ours[2] - ours[0]) / (whole[2] - whole[0]) < 1.7
    assert _iou(ours, whole) > 0.35


def test_default_framing_is_close_to_celebamask_hq(detections):
    """CelebAMask-HQ's images follow the CelebA-HQ alignment: a square of side
    2 x max(2 x eye distance, 1.8 x eye-to-mouth distance) centred 0.1 of the way from the
    eyes to the mouth. The default margin frames the same head, a little wider, on every
    face of the shipped photos."""
    faces = [face for _, found in detections.values() for face in found]
    assert len(faces) == 8
    for face in faces:
        marks = face.landmarks
        eyes, mouth = marks[:2].mean(axis=0), marks[3:].mean(axis=0)
        side = 2 * max(2 * np.linalg.norm(marks[1] - marks[0]), 1.8 * np.linalg.norm(mouth - eyes))
        center = eyes + 0.1 * (mouth - eyes)
        celeba = np.concatenate([center - side / 2, center + side / 2])
        ours = _square(face_crop(face.box))
        assert _iou(ours, celeba) > 0.6
        assert 1.0 < (ours[2] - ours[0]) / side < 1.3
