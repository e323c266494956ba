"""The official pre- and post-processing around a backend, on numpy arrays.

Everything geometric is dmlcsr.core.geometry (written once for the whole toolkit); this
module only batches it: crops of an image -> one network batch, and network logits ->
label maps or class probabilities at the original image size. The inverse warp uses the
exact float center the forward warp used, not the official test script's int32 copy
(see shared/README.md: that truncation shifts odd-sized images by half a pixel).
"""

from __future__ import annotations

import numpy as np

from dmlcsr.core import geometry
from dmlcsr.core.geometry import Crop
from dmlcsr.core.validation import face_box as checked_face_box
from dmlcsr.errors import DmlcsrError

#: float32 holds every integer index below 2**24 exactly (used for the nearest-neighbour map)
_MAX_EXACT_INDEX = 2**24


def crop_for(image_size: tuple[int, int], face_box: object | None = None,
             input_size: tuple[int, int] = geometry.INPUT_SIZE) -> Crop:
    """The official crop: the whole image ([0, 0, w-1, h-1]) or the validated ``face_box`` (x, y, w, h)."""
    box = geometry.whole_image_box(*image_size) if face_box is None else checked_face_box(face_box, image_size)
    return geometry.box_to_crop(box, input_size)


def preprocess(image: np.ndarray, crops: list[Crop], input_size: tuple[int, int] = geometry.INPUT_SIZE
               ) -> np.ndarray:
    """One BGR uint8 image and its crops -> N x 3 x H x W float32, the network's batch."""
    warped = np.stack([geometry.warp_to_input(image, crop, input_size) for crop in crops])
    return geometry.normalize(warped)


def labels_at_image(logits: np.ndarray, crop: Crop, image_size: tuple[int, int],
                    input_size: tuple[int, int] = geometry.INPUT_SIZE) -> np.ndarray:
    """C x h x w logits of one crop -> H x W uint8 labels of the original image (0 outside the crop)."""
    labels = geometry.labels_from_logits(logits[None], input_size)[0]
    return geometry.warp_labels_back(labels, crop, image_size, input_size)


def nearest_source_index(crop: Crop, image_size: tuple[int, int],
                         input_size: tuple[int, int] = geometry.INPUT_SIZE) -> np.ndarray:
    """H x W int64: for every image pixel, the flat input-grid pixel the inverse warp picks (-1 outside).

    Built by warping an index image with the very call warp_labels_back makes, so any
    per-pixel quantity mapped through it lands exactly where the labels land.
    """
    if input_size[0] * input_size[1] >= _MAX_EXACT_INDEX:
        raise DmlcsrError(f"input size {input_size} is too large for the probability map; use labels")
    index = np.arange(input_size[0] * input_size[1], dtype=np.float32).reshape(input_size)
    return geometry.warp_back(index, crop, image_size, input_size, border=-1.0).astype(np.int64)


def probabilities_at_image(logits: np.ndarray, crop: Crop, image_size: tuple[int, int],
                           input_size: tuple[int, int] = geometry.INPUT_SIZE) -> np.ndarray:
    """C x h x w logits of one crop -> C x H x W float32 softmax at the original image size.

    Softmax of the upsampled logits, carried back with the labels' nearest-neighbour
    warp, so argmax over C equals ``labels_at_image`` pixel for pixel (up to exact ties).
    Outside the crop: background with probability 1.
    """
    upsampled = geometry.softmax(geometry.upsample_logits(logits[None], input_size)[0])
    source = nearest_source_index(crop, image_size, input_size)
    inside = source >= 0
    picked = source[inside]
    probabilities = np.zeros((upsampled.shape[0], *image_size), np.float32)
    probabilities[0] = 1.0
    for channel, plane in zip(probabilities, upsampled.reshape(upsampled.shape[0], -1), strict=True):
        channel[inside] = plane[picked]  # one channel at a time: no second C x H x W temporary
    return probabilities
