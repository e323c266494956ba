"""FaceParser: parity with the torch reference on real faces, batching, threads, refusals.

The parity tests run the exported demo DML-CSR (fixture ``demo_onnx``, 473x473) through
ONNX Runtime and compare with the same model in torch followed by the reference
post-processing done in torch (bilinear align_corners=True, argmax) and the inverse
affine with cv2 nearest. The mechanics tests use a one-convolution ONNX model shaped like
DML-CSR (tests/support/toy_onnx.py) so they cost milliseconds.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.toy_onnx import toy_parsing_onnx

from dmlcsr.core import geometry
from dmlcsr.core.metadata import ModelMetadata, Preprocessing
from dmlcsr.core.pipeline import labels_at_image
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime import FaceParser
from dmlcsr.runtime import parser as parser_module

pytest.importorskip("onnx")


class RunSpy:
    """Records the batch size of every call to a real backend's run (and forwards it)."""

    def __init__(self, backend) -> None:
        self.backend, self.real_run, self.batches = backend, backend.run, []
        backend.run = self

    def __call__(self, feeds):
        self.batches.append(len(next(iter(feeds.values()))))
        return self.real_run(feeds)


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("toy_models")


@pytest.fixture(scope="module")
def toy_parser(toy_dir) -> FaceParser:
    return FaceParser(toy_parsing_onnx(toy_dir / "toy.onnx"), device="cpu")


@pytest.fixture(scope="module")
def faces(face_paths) -> dict[str, np.ndarray]:
    return {p.name: cv2.imread(str(p), cv2.IMREAD_COLOR) for p in face_paths}


# --- parity with the torch reference on the real faces (DML-CSR at 473x473) -------------

def torch_reference_labels(model, image: np.ndarray, crop: geometry.Crop) -> np.ndarray:
    """The reference path: torch forward on the official crop, torch upsample + argmax, cv2 nearest back."""
    import torch
    import torch.nn.functional as F

    batch = torch.from_numpy(geometry.normalize(geometry.warp_to_input(image, crop)))
    with torch.no_grad():
        logits = model(batch)
        upsampled = F.interpolate(logits, size=geometry.INPUT_SIZE, mode="bilinear", align_corners=True)
        labels = upsampled.argmax(1)[0].numpy().astype(np.uint8)
    height, width = image.shape[:2]
    return cv2.warpAffine(labels, geometry.affine_matrix(crop, inverse=True), (width, height),
                          flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


@pytest.fixture(scope="module")
def demo_parser(demo_onnx) -> FaceParser:
    return FaceParser(demo_onnx, device="cpu")


#: four of the seven photos at 473 px (about 4 s each, torch and runtime): a group photo, a
#: portrait, a mask and a full-body shot; the 225-px parity and C++ tests read all seven
PARITY_PHOTOS = ("t1.jpg", "Tom_Hanks_54745.png", "mask_green.jpg", "astronaut.png")


@pytest.fixture(scope="module")
def demo_labels(demo_parser, face_paths) -> dict[str, np.ndarray]:
    """The runtime's labels for the parity photos, parsed from the file path one at a time."""
    return {path.name: demo_parser.parse(path) for path in face_paths if path.name in PARITY_PHOTOS}


def test_runtime_matches_torch_reference_on_real_faces(demo_model, demo_labels, faces):
    assert sorted(demo_labels) == sorted(PARITY_PHOTOS)
    for name in PARITY_PHOTOS:
        image = faces[name]
        crop = geometry.box_to_crop(geometry.whole_image_box(*image.shape[:2]))
        reference = torch_reference_labels(demo_model, image, crop)
        ours = demo_labels[name]
        assert ours.shape == image.shape[:2] and ours.dtype == np.uint8
        assert len(np.unique(reference)) >= 4, f"{name}: the demo model should give varied labels"
        agreement = (ours == reference).mean()
        assert agreement >= 0.9999, f"{name}: {agreement:.6f} of pixels agree with the torch reference"


def test_face_box_matches_torch_reference(demo_parser, demo_model, faces):
    image = faces["t1.jpg"]
    box = (560.0, 250.0, 150.0, 190.0)  # one of the six people, in the photo's pixels
    reference = torch_reference_labels(demo_model, image, geometry.box_to_crop(box))
    ours = demo_parser.parse(image, face_box=box)
    assert len(np.unique(reference)) >= 4
    assert (ours == reference).mean() >= 0.9999
    assert np.all(ours[:, :500] == 0)  # far left of the box: outside the crop, background


def test_one_demo_parser_shared_by_threads_gives_the_sequential_labels(demo_parser, demo_labels, faces):
    names = ["Tom_Hanks_54745.png", "mask_green.jpg"]
    results: dict[str, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            results[name] = demo_parser.parse(faces[name])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for name in names:
        assert np.array_equal(results[name], demo_labels[name])


# --- mechanics on the toy model ----------------------------------------------------------

def test_outputs_at_the_original_size(toy_parser, faces):
    image = faces["mask_black.jpg"]
    labels = toy_parser.parse(image)
    assert labels.shape == image.shape[:2] and labels.dtype == np.uint8 and len(np.unique(labels)) > 3
    probabilities = toy_parser.parse(image, output="probabilities")
    assert probabilities.shape == (19, *image.shape[:2]) and np.allclose(probabilities.sum(0), 1, atol=1e-5)
    assert (probabilities.argmax(0) == labels).mean() > 0.999
    logits = toy_parser.parse(image, output="logits")
    assert logits.shape == (19, 25, 25)
    assert toy_parser.label_names[:3] == ["background", "skin", "nose"] and toy_parser.num_classes == 19
    with pytest.raises(DmlcsrError, match="unknown output 'mask'"):
        toy_parser.parse(image, output="mask")


def test_paths_and_arrays_give_the_same_labels(toy_parser, face_paths, faces):
    for path in face_paths[:3]:
        assert np.array_equal(toy_parser.parse(path), toy_parser.parse(faces[path.name]))


def test_parse_batch_chunks_as_asked_and_equals_single_parses(toy_parser, faces):
    images = list(faces.values())[:5]
    boxes = [None, (5, 5, 60, 80), None, None, (100, 50, 120, 120)]
    singles = [toy_parser.parse(image, face_box=box) for image, box in zip(images, boxes, strict=True)]
    spy = RunSpy(toy_parser.backend)
    try:
        batched = toy_parser.parse_batch(images, boxes, batch_size=2)
    finally:
        toy_parser.backend.run = spy.real_run
    assert spy.batches == [2, 2, 1]
    for one, many in zip(singles, batched, strict=True):
        assert np.array_equal(one, many)


def test_fixed_batch_models_are_padded_and_trimmed(toy_dir, toy_parser, faces):
    fixed = FaceParser(toy_parsing_onnx(toy_dir / "fixed2.onnx", batch=2), device="cpu")
    assert fixed.backend.batch_limits == (2, 2)
    images = list(faces.values())[:3]
    spy = RunSpy(fixed.backend)
    labels = fixed.parse_batch(images)
    crops = [geometry.box_to_crop(geometry.whole_image_box(*images[0].shape[:2]))] * 3
    logits = fixed.infer_crops(images[0], crops)
    assert spy.batches == [2, 2, 2, 2] and logits.shape[0] == 3
    for image, label_map in zip(images, labels, strict=True):
        assert np.array_equal(label_map, toy_parser.parse(image))


def test_infer_crops_runs_all_crops_as_one_batch(toy_parser, faces):
    image = faces["t1.jpg"]
    boxes = [(100, 100, 120, 150), (560, 250, 150, 190), (900, 200, 140, 170)]
    crops = [geometry.box_to_crop(box, toy_parser.input_size) for box in boxes]
    spy = RunSpy(toy_parser.backend)
    try:
        logits = toy_parser.infer_crops(image, crops)
    finally:
        toy_parser.backend.run = spy.real_run
    assert spy.batches == [3] and logits.shape == (3, 19, 25, 25)
    for box, crop, crop_logits in zip(boxes, crops, logits, strict=True):
        assert np.array_equal(crop_logits, toy_parser.parse(image, face_box=box, output="logits"))
        assert np.array_equal(labels_at_image(crop_logits, crop, image.shape[:2], toy_parser.input_size),
                              toy_parser.parse(image, face_box=box))
    assert toy_parser.infer_crops(image, []).shape == (0, 19, 25, 25)
    assert toy_parser.crop_for(image, boxes[0]).center.tolist() == crops[0].center.tolist()


def test_a_non_square_input_runs_at_its_own_height_and_width(toy_dir, faces):
    """Input sizes are (H, W) throughout: a 97 x 129 model gets 97 x 129 crops widened to its
    aspect, its 25 x 33 logits go back to the photo's own size, and nothing assumes a square."""
    size = (97, 129)
    wide = FaceParser(toy_parsing_onnx(toy_dir / "wide.onnx", input_size=size), device="cpu")
    assert wide.input_size == size
    image = faces["t1.jpg"]
    for box in (None, (560, 250, 150, 190)):
        crop = wide.crop_for(image, box)
        assert crop.scale[0] / crop.scale[1] == pytest.approx(129 / 97, rel=1e-6)
        logits = wide.parse(image, face_box=box, output="logits")
        assert logits.shape == (19, 25, 33)
        labels = wide.parse(image, face_box=box)
        assert labels.shape == image.shape[:2] and len(np.unique(labels)) > 1
        assert np.array_equal(labels, labels_at_image(logits, crop, image.shape[:2], size))


def test_one_parser_shared_by_many_threads(toy_parser, faces):
    """Real concurrency: ONNX Runtime releases the GIL while it runs, so calls overlap."""
    jobs = [(image, box) for image in faces.values() for box in (None, (20, 20, 80, 90))]
    expected = [toy_parser.parse(image, face_box=box) for image, box in jobs]
    results: dict[tuple[int, int], np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(worker: int) -> None:
        try:
            start.wait()
            for round_ in range(3):
                for index in range(worker % 2, len(jobs), 2):
                    image, box = jobs[index]
                    results[(worker, round_ * 100 + index)] = toy_parser.parse(image, face_box=box)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 4 * 3 * len(jobs) // 2
    for (_worker, key), labels in results.items():
        assert np.array_equal(labels, expected[key % 100])


def test_bad_images_fail_before_any_inference(toy_parser, faces, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    spy = RunSpy(toy_parser.backend)
    try:
        for images, boxes, pattern in (
                ([faces["t1.jpg"], tmp_path / "broken.jpg"], None, "not a readable image|truncated"),
                ([faces["t1.jpg"], tmp_path / "gone.png"], None, "image not found"),
                ([faces["t1.jpg"]], [(5000, 10, 50, 50)], "outside the 1280x886 image"),
                ([faces["t1.jpg"]], [(10, 10, 0, 50)], "empty"),
                ([faces["t1.jpg"]], [None, None], "2 face boxes for 1 images")):
            with pytest.raises(DmlcsrError, match=pattern) as exc:
                toy_parser.parse_batch(images, boxes)
            assert "\n" not in str(exc.value)
        with pytest.raises(DmlcsrError, match="at least 1"):
            toy_parser.parse_batch([faces["t1.jpg"]], batch_size=0)
    finally:
        toy_parser.backend.run = spy.real_run
    assert spy.batches == []


def test_probability_maps_too_large_are_refused(toy_parser, faces, monkeypatch):
    monkeypatch.setattr(parser_module, "MAX_PROBABILITY_BYTES", 1_000_000)
    with pytest.raises(DmlcsrError, match="ask for labels or logits"):
        toy_parser.parse(faces["t1.jpg"], output="probabilities")
    assert toy_parser.parse(faces["t1.jpg"]).shape == (886, 1280)


def _metadata(**changes) -> ModelMetadata:
    meta = ModelMetadata(19, [f"class_{i}" for i in range(19)], preprocessing=Preprocessing(input_size=(97, 97)))
    for key, value in changes.items():
        setattr(meta.preprocessing if hasattr(meta.preprocessing, key) else meta, key, value)
    return meta


@pytest.mark.parametrize("options,pattern", [
    ({"metadata": None}, "carries no dmlcsr metadata"),
    ({"metadata": _metadata(channel_order="RGB")}, "asks for preprocessing"),
    ({"metadata": _metadata(mean=(0.5, 0.5, 0.5))}, "asks for preprocessing"),
    ({"metadata": _metadata(input_size=(129, 129))}, "metadata says N x 3 x 129 x 129"),
    ({"metadata": _metadata(input_name="image")}, "metadata names 'image'"),
    ({"graph_classes": 11}, "not N x 19 x h x w logits"),
])
def test_models_the_runtime_cannot_honour_are_refused(toy_dir, options, pattern):
    path = toy_parsing_onnx(toy_dir / "refused.onnx", **options)
    with pytest.raises(DmlcsrError, match=pattern) as exc:
        FaceParser(path, device="cpu")
    assert "\n" not in str(exc.value) and "export" in str(exc.value)


def test_nan_logits_are_an_error_not_a_label_map(toy_dir, faces):
    parser = FaceParser(toy_parsing_onnx(toy_dir / "nan.onnx", nan_output=True), device="cpu")
    with pytest.raises(DmlcsrError, match="NaN or infinite logits"):
        parser.parse(faces["t1.jpg"])
