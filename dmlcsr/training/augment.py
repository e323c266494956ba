"""Training augmentation as the official dataset does it, on the shared geometry.

The whole image is mapped onto the input by the same center/scale affine crop the test
pipeline uses (dmlcsr.core.geometry), with two random changes: the scale is multiplied by
clip(N(1, 0.25), 0.75, 1.25), and with probability 0.6 the crop is rotated by
clip(N(0, 30), -60, 60) degrees. The image is warped bilinearly with a black border, the
labels with nearest neighbour and 255 (ignored) outside the image. An optional mirror
(probability 0.5, off by default as officially) also swaps the left/right classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dmlcsr.core import geometry

IGNORE_LABEL = 255


@dataclass(frozen=True)
class AugmentConfig:
    """Official defaults; ``enabled=False`` gives the plain test-time crop."""

    scale_factor: float = 0.25
    rotation_factor: float = 30.0
    rotation_probability: float = 0.6
    flip: bool = False
    enabled: bool = True


def random_crop(height: int, width: int, input_size: tuple[int, int], rng: np.random.Generator,
                config: AugmentConfig = AugmentConfig()) -> geometry.Crop:
    """The whole-image crop with the official random scale and rotation."""
    crop = geometry.box_to_crop(geometry.whole_image_box(height, width), input_size)
    if not config.enabled:
        return crop
    sf, rf = config.scale_factor, config.rotation_factor
    factor = float(np.clip(rng.standard_normal() * sf + 1.0, 1.0 - sf, 1.0 + sf))
    rotation = 0.0
    if rng.random() <= config.rotation_probability:
        rotation = float(np.clip(rng.standard_normal() * rf, -2.0 * rf, 2.0 * rf))
    return geometry.Crop(crop.center, (crop.scale * factor).astype(np.float32), rotation)


def warp_labels_to_input(labels: np.ndarray, crop: geometry.Crop, input_size: tuple[int, int],
                         ignore: int = IGNORE_LABEL) -> np.ndarray:
    """The labels under the same affine as the image: nearest neighbour, ``ignore`` outside."""
    return cv2.warpAffine(labels, geometry.affine_matrix(crop, input_size), (input_size[1], input_size[0]),
                          flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=ignore)


def mirror(image: np.ndarray, labels: np.ndarray, flip_pairs: tuple[tuple[int, int], ...]
           ) -> tuple[np.ndarray, np.ndarray]:
    """Left-right flip; a left eye becomes a right eye, so paired classes swap ids."""
    image = np.ascontiguousarray(image[:, ::-1])
    flipped = labels[:, ::-1]
    out = flipped.copy()
    for left, right in flip_pairs:
        out[flipped == left] = right
        out[flipped == right] = left
    return image, out


def augment(image: np.ndarray, labels: np.ndarray, input_size: tuple[int, int], rng: np.random.Generator,
            config: AugmentConfig = AugmentConfig(), flip_pairs: tuple[tuple[int, int], ...] = ()
            ) -> tuple[np.ndarray, np.ndarray]:
    """One training sample: (input-size BGR image, input-size labels)."""
    if image.shape[:2] != labels.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and labels {labels.shape[:2]} differ in size")
    crop = random_crop(image.shape[0], image.shape[1], input_size, rng, config)
    warped = geometry.warp_to_input(image, crop, input_size)
    warped_labels = warp_labels_to_input(labels, crop, input_size)
    if config.enabled and config.flip and rng.random() < 0.5:
        warped, warped_labels = mirror(warped, warped_labels, flip_pairs)
    return warped, warped_labels
