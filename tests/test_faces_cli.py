"""dmlcsr-parse --faces: real CenterFace, real FaceParser over a toy ONNX parsing model
(milliseconds per forward: the plumbing is tested, DML-CSR's seconds are not spent)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from dmlcsr.runtime import FaceParser
from dmlcsr.runtime.cli import main
from dmlcsr.runtime.faces.detector import CenterFace
from dmlcsr.runtime.faces.framing import Margin, enlarge_box
from dmlcsr.runtime.faces.photo import parse_photo

pytest.importorskip("onnx")
FACES = Path(__file__).resolve().parents[1] / "dmlcsr" / "data" / "faces"


@pytest.fixture(scope="module")
def parser(toy) -> FaceParser:
    return FaceParser(toy, device="cpu")


@pytest.fixture(scope="module")
def detector() -> CenterFace:
    return CenterFace.open(device="cpu")


def _png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_auto_writes_composite_boxes_and_overlay(toy, parser, detector, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [str(toy), str(FACES / "t1.jpg"), str(FACES / "mask_blue.jpg"),
                                       "--out", str(out), "--overlay", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "parsed 2 of 2 inputs" in result.output and "6 faces found, none in 1 images" in result.output
    assert "mask_blue.jpg: no face found" in result.output
    expected = parse_photo(parser, FACES / "t1.jpg", detector=detector)
    np.testing.assert_array_equal(_png(out / "t1.png"), expected.labels)
    document = json.loads((out / "t1_faces.json").read_text())
    assert document["mode"] == "auto" and len(document["faces"]) == 6
    assert np.abs(np.array([f["box"] for f in document["faces"]]) - [f.face.box for f in expected.faces]).max() < 0.01
    picture = cv2.imread(str(out / "t1_overlay.jpg"))
    assert picture.shape[0] == 886 and picture.shape[1] > 1280  # the photo plus the legend
    assert _png(out / "mask_blue.png").max() == 0
    assert json.loads((out / "mask_blue_faces.json").read_text())["faces"] == []


def test_single_face_equals_parsing_its_widened_box(parser, detector):
    """One face: the composite is exactly FaceParser.parse with the widened box."""
    (face,) = detector.detect(cv2.imread(str(FACES / "astronaut.png")))
    result = parse_photo(parser, FACES / "astronaut.png", detector=detector)
    np.testing.assert_array_equal(result.labels, parser.parse(FACES / "astronaut.png",
                                                              face_box=enlarge_box(face.box)))


def test_whole_and_face_box_keep_the_official_single_crop(toy, parser, tmp_path):
    for extra in (["--faces", "whole"], ["--face-box", "560,250,150,190"]):
        result = CliRunner().invoke(main, [str(toy), str(FACES / "t1.jpg"), "--out", str(tmp_path), *extra])
        assert result.exit_code == 0, result.output
        box = None if extra[0] == "--faces" else (560, 250, 150, 190)
        np.testing.assert_array_equal(_png(tmp_path / "t1.png"), parser.parse(FACES / "t1.jpg", face_box=box))


def test_boxes_from_a_json_file(toy, parser, tmp_path):
    boxes = tmp_path / "boxes.json"
    boxes.write_text("[[62, 268, 103, 123], [465, 265, 107, 145]]")
    result = CliRunner().invoke(main, [str(toy), str(FACES / "t1.jpg"), "--out", str(tmp_path / "o"),
                                       "--faces", str(boxes), "--margin", "0.3"])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "o" / "t1_faces.json").read_text())
    assert document["mode"] == "boxes" and [f["box"] for f in document["faces"]] == [[62, 268, 103, 123],
                                                                                      [465, 265, 107, 145]]
    assert document["faces"][0]["crop_box"] == pytest.approx([62 - 30.9, 268 - 36.9, 103 * 1.6, 123 * 1.6])
    expected = parse_photo(parser, FACES / "t1.jpg", faces=boxes, margin=Margin.parse("0.3"))
    np.testing.assert_array_equal(_png(tmp_path / "o" / "t1.png"), expected.labels)


def test_video_frames_with_faces(toy, tmp_path):
    image = cv2.resize(cv2.imread(str(FACES / "astronaut.png")), (256, 256))
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (256, 256))
    for shift in range(3):
        writer.write(np.roll(image, 10 * shift, axis=1))
    writer.release()
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [str(toy), str(clip), "--out", str(out), "--overlay", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "clip").glob("*.png")) == ["000000.png", "000001.png", "000002.png"]
    frames = json.loads((out / "clip_faces.json").read_text())["frames"]
    assert [len(f["faces"]) for f in frames] == [1, 1, 1]
    xs = [f["faces"][0]["box"][0] for f in frames]
    assert 7 < xs[1] - xs[0] < 13 and 7 < xs[2] - xs[1] < 13  # the face moves 10 px a frame
    video = cv2.VideoCapture(str(out / "clip_overlay.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    video.release()


@pytest.mark.parametrize("extra, message", [
    (["--faces", "everything"], "error: --faces 'everything' is not auto, whole or a .json file"),
    (["--faces", "missing.json"], "error: face box file not found"),
    (["--margin", "0.1,0.2"], "error: margin '0.1,0.2' is not one or four"),
])
def test_bad_face_options_exit_2_with_one_line(toy, tmp_path, extra, message):
    result = CliRunner().invoke(main, [str(toy), str(FACES / "astronaut.png"), "--out", str(tmp_path), *extra])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_a_detector_that_is_not_centerface_is_refused(toy, tmp_path):
    result = CliRunner().invoke(main, [str(toy), str(FACES / "astronaut.png"), "--out", str(tmp_path),
                                       "--detector", str(toy)])
    assert result.exit_code == 2 and "is not a CenterFace model" in result.output, result.output
