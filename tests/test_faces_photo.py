"""Per-face parsing and compositing, with logits we control (so every pixel's expected
label is known) and real CenterFace detections."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from dmlcsr.core.geometry import Crop, box_to_crop, warp_back, warp_labels_back
from dmlcsr.core.metadata import ModelMetadata, Preprocessing
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.backends import open_backend
from dmlcsr.runtime.faces.box_file import read_boxes, write_boxes
from dmlcsr.runtime.faces.detector import CenterFace, Face, default_model_path
from dmlcsr.runtime.faces.framing import NO_MARGIN
from dmlcsr.runtime.faces.photo import (
    _input_region,
    labels_and_foreground,
    parse_photo,
)

FACES = Path(__file__).resolve().parents[1] / "dmlcsr" / "data" / "faces"
INPUT = (64, 64)


class DiscLogits:
    """Logits that label a disc in the middle of every crop with class 1 + crop index
    (background elsewhere), with confidence ``sureness[i]``: a parser whose answer is known
    pixel for pixel, to check where compositing puts it."""

    def __init__(self, sureness: tuple[float, ...] = (4.0,) * 8, num_classes: int = 9) -> None:
        self.metadata = ModelMetadata(num_classes, [f"c{i}" for i in range(num_classes)],
                                      preprocessing=Preprocessing(input_size=INPUT))
        self.sureness = sureness
        self.calls: list[int] = []

    def infer_crops(self, image: np.ndarray, crops: list[Crop]) -> np.ndarray:
        self.calls.append(len(crops))
        size = INPUT[0] // 4
        yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
        disc = np.hypot(yy, xx) < size / 4
        logits = np.zeros((len(crops), self.metadata.num_classes, size, size), np.float32)
        for index in range(len(crops)):
            logits[index, 0][~disc] = self.sureness[index]
            logits[index, 1 + index][disc] = self.sureness[index]
        return logits


@pytest.fixture(scope="module")
def detector() -> CenterFace:
    return CenterFace(open_backend(default_model_path(), "cpu", engine="onnxruntime"))


@pytest.fixture(scope="module")
def team_photo() -> np.ndarray:
    return cv2.imread(str(FACES / "t1.jpg"))


def _center(box):
    return box[0] + box[2] / 2, box[1] + box[3] / 2


def test_each_face_lands_where_it_is_and_the_rest_is_background(detector, team_photo):
    parser = DiscLogits()
    result = parse_photo(parser, team_photo, detector=detector, keep_face_labels=True)
    assert result.mode == "auto" and len(result.faces) == 6 and parser.calls == [6]  # one batch
    assert result.message == "6 faces parsed"
    covered = np.zeros(result.labels.shape, bool)
    for index, face in enumerate(result.faces):
        x0, y0, x1, y1 = face.region
        covered[y0:y1, x0:x1] = True
        cx, cy = (int(round(v)) for v in _center(face.crop_box))
        assert result.labels[cy, cx] == 1 + index  # the disc sits at the crop's centre
        assert face.labels.shape == (y1 - y0, x1 - x0)
        assert set(np.unique(face.labels)) == {0, 1 + index}
    assert result.labels[~covered].max() == 0  # outside all crops: background
    assert set(np.unique(result.labels)) == set(range(7))


def test_region_warp_equals_the_official_full_photo_warp(team_photo):
    """Warping into the crop's region gives the same pixels as warp_labels_back on the
    whole photo, and warp_labels_back puts nothing outside the region."""
    labels = np.random.default_rng(0).integers(1, 19, INPUT, dtype=np.uint8)
    for box in [(100, 200, 90, 110), (-30, -20, 120, 140), (1200, 800, 150, 150)]:
        crop = box_to_crop(box, INPUT)
        region = _input_region(crop, INPUT, team_photo.shape[:2])
        full = warp_labels_back(labels, crop, team_photo.shape[:2], INPUT)
        x0, y0, x1, y1 = region
        np.testing.assert_array_equal(warp_back(labels, crop, team_photo.shape[:2], INPUT, region), full[y0:y1, x0:x1])
        full[y0:y1, x0:x1] = 0
        assert full.max() == 0


def test_on_overlap_the_surer_face_wins():
    """Two crops overlapping: the overlap goes to the face with the higher
    non-background probability, whichever comes first."""
    photo = np.zeros((200, 300, 3), np.uint8)
    boxes = [(60, 60, 80, 80), (80, 60, 80, 80)]  # discs of radius 20 px at x = 100 and 120
    for sureness, winner in [((2.0, 6.0), 2), ((6.0, 2.0), 1)]:
        result = parse_photo(DiscLogits(sureness), photo, faces=boxes, margin=NO_MARGIN)
        assert result.labels[100, 110] == winner  # inside both discs
        assert result.labels[100, 85] == 1 and result.labels[100, 135] == 2  # inside one only


def test_whole_mode_is_the_official_single_crop(team_photo):
    result = parse_photo(DiscLogits(), team_photo, faces="whole")
    assert result.mode == "whole" and len(result.faces) == 1
    x0, y0, x1, y1 = result.faces[0].region  # the photo less the official edge loss (input
    assert (x0, y0) == (0, 0) and x1 > 1280 - 1280 / 64 and y1 == 886  # centre at 32, not 31.5)
    labels, _ = labels_and_foreground(DiscLogits().infer_crops(team_photo, [None])[0], INPUT)
    official = warp_labels_back(labels, box_to_crop((0, 0, 1279, 885), INPUT), (886, 1280), INPUT)
    np.testing.assert_array_equal(result.labels, official)


def test_no_face_is_an_empty_result_with_a_message(detector):
    blank = np.full((240, 320, 3), 90, np.uint8)
    parser = DiscLogits()
    result = parse_photo(parser, blank, detector=detector)
    assert result.faces == [] and result.labels.shape == (240, 320) and result.labels.max() == 0
    assert "no face found" in result.message and "whole" in result.message
    assert parser.calls == []  # the parser is not run on nothing


def test_small_faces_are_skipped_and_counted(detector, team_photo):
    result = parse_photo(DiscLogits(), team_photo, detector=detector, min_face=105)
    sizes = sorted(min(f.box[2], f.box[3]) for f in detector.detect(team_photo))
    expected_skipped = sum(s < 105 for s in sizes)
    assert 0 < expected_skipped < 6
    assert result.skipped_small == expected_skipped and len(result.faces) == 6 - expected_skipped
    assert f"{expected_skipped} smaller than the minimum face size skipped" in result.message


def test_boxes_round_trip_through_json(tmp_path, detector, team_photo):
    result = parse_photo(DiscLogits(), team_photo, detector=detector)
    path = tmp_path / "faces.json"
    write_boxes(path, result, "t1.jpg")
    document = json.loads(path.read_text())
    assert document["image"] == "t1.jpg" and (document["width"], document["height"]) == (1280, 886)
    again = read_boxes(path).faces
    assert np.abs(np.array([f.box for f in again]) - [f.face.box for f in result.faces]).max() < 0.01
    assert again[0].landmarks.shape == (5, 2)
    replay = parse_photo(DiscLogits(), team_photo, faces=path)
    assert replay.mode == "boxes" and len(replay.faces) == 6
    assert np.mean(replay.labels == result.labels) > 0.999


def test_plain_box_lists_are_accepted(tmp_path):
    path = tmp_path / "boxes.json"
    path.write_text("[[10, 20, 30, 40], [50, 60, 30, 30]]")
    assert [f.box for f in read_boxes(path).faces] == [(10, 20, 30, 40), (50, 60, 30, 30)]
    result = parse_photo(DiscLogits(), np.zeros((120, 120, 3), np.uint8), faces=[Face((10, 20, 30, 40))])
    assert result.mode == "boxes" and len(result.faces) == 1


@pytest.mark.parametrize("text, match", [
    ("{not json", "not valid JSON"), ('[[1, 2, 3]]', "face box 0 in bad.json .* is not four numbers"),
    ('[[1, 2, 0, 5]]', "is empty"), ('{"faces": 3}', "does not hold face boxes")])
def test_bad_box_files_give_one_line_errors(tmp_path, text, match):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(DmlcsrError, match=match):
        read_boxes(path)


def test_bad_faces_argument_and_image(tmp_path):
    with pytest.raises(DmlcsrError, match="not 'auto', 'whole'"):
        parse_photo(DiscLogits(), np.zeros((50, 50, 3), np.uint8), faces="everything")
    with pytest.raises(DmlcsrError, match="file not found"):
        read_boxes(tmp_path / "missing.json")
    with pytest.raises(DmlcsrError, match="dtype float64"):
        parse_photo(DiscLogits(), np.zeros((50, 50, 3)))
