"""Post-processing on numpy: labels and probabilities at the original size, against torch's math."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dmlcsr.core import geometry
from dmlcsr.core.pipeline import (
    crop_for,
    labels_at_image,
    nearest_source_index,
    preprocess,
    probabilities_at_image,
)


def _logits(shape, seed=0, scale=4.0) -> np.ndarray:
    """Smooth, spatially varying logits (blurred noise), like a network's."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(shape).astype(np.float32)
    return np.stack([[cv2.GaussianBlur(plane, (0, 0), 2.0) * scale for plane in planes] for planes in noise])


@pytest.mark.parametrize("shape,size", [((1, 19, 119, 119), (473, 473)), ((3, 11, 33, 29), (129, 113))])
def test_fast_labels_equal_upsample_then_argmax_exactly(shape, size):
    logits = _logits(shape)
    assert np.array_equal(geometry.labels_from_logits(logits, size), geometry.upsample_logits(logits, size).argmax(1))
    tied = np.round(logits).astype(np.float32)  # many exact ties: the first maximum must win, as in argmax
    assert np.array_equal(geometry.labels_from_logits(tied, size), geometry.upsample_logits(tied, size).argmax(1))
    broken = logits.copy()
    broken[0, 3, 5, 5] = np.nan
    assert np.array_equal(geometry.labels_from_logits(broken, size), geometry.upsample_logits(broken, size).argmax(1))


def test_upsample_and_labels_match_torch_bilinear_align_corners():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    logits = _logits((2, 19, 119, 119), seed=1)
    reference = F.interpolate(torch.from_numpy(logits), size=(473, 473), mode="bilinear", align_corners=True)
    ours = geometry.upsample_logits(logits, (473, 473))
    assert np.abs(ours - reference.numpy()).max() < 1e-4
    agreement = (geometry.labels_from_logits(logits, (473, 473)) == reference.argmax(1).numpy()).mean()
    assert agreement >= 0.9999


def test_probabilities_are_a_distribution_whose_argmax_is_the_label_map():
    image_size = (301, 207)  # odd sizes: the exact float center matters
    crop = crop_for(image_size, (30.5, 40.0, 150.0, 180.0), (129, 129))
    logits = _logits((1, 11, 33, 33), seed=2)[0]
    labels = labels_at_image(logits, crop, image_size, (129, 129))
    probabilities = probabilities_at_image(logits, crop, image_size, (129, 129))
    assert probabilities.shape == (11, *image_size) and probabilities.dtype == np.float32
    assert np.allclose(probabilities.sum(0), 1.0, atol=1e-5)
    top_two = np.sort(probabilities, axis=0)[-2:]
    clear = top_two[1] > top_two[0]  # exact float ties after the softmax are the only allowed difference
    assert clear.mean() > 0.999
    assert np.array_equal(probabilities.argmax(0)[clear], labels[clear])
    outside = nearest_source_index(crop, image_size, (129, 129)) < 0
    assert outside.any() and (~outside).any()
    assert np.all(probabilities[0][outside] == 1.0) and np.all(labels[outside] == 0)


def test_nearest_index_map_is_the_label_warp():
    image_size = (250, 411)
    crop = crop_for(image_size, None, (129, 129))
    labels = np.random.default_rng(3).integers(1, 19, (129, 129), dtype=np.uint8)
    index = nearest_source_index(crop, image_size, (129, 129))
    via_index = np.where(index >= 0, labels.ravel()[np.maximum(index, 0)], 0)
    assert np.array_equal(via_index, geometry.warp_labels_back(labels, crop, image_size, (129, 129)))


def test_preprocess_is_the_official_warp_and_normalisation(face_paths):
    image = cv2.imread(str(face_paths[0]), cv2.IMREAD_COLOR)
    whole = crop_for(image.shape[:2])
    official = geometry.box_to_crop(geometry.whole_image_box(*image.shape[:2]))
    assert np.array_equal(whole.center, official.center) and np.array_equal(whole.scale, official.scale)
    box = crop_for(image.shape[:2], (10, 12, 60, 70))
    batch = preprocess(image, [whole, box])
    assert batch.shape == (2, 3, 473, 473) and batch.dtype == np.float32
    for row, crop in zip(batch, (whole, box), strict=True):
        assert np.array_equal(row, geometry.normalize(geometry.warp_to_input(image, crop))[0])
