"""The official DML-CSR test geometry, written once for every part of the toolkit.

Pre-processing (parsing/dml_csr dataset + utils in the official code): box -> center and
scale widened to the input's aspect ratio, affine warp (bilinear, black border), /255 and
ImageNet mean/std applied to the channels in OpenCV's BGR order (the official code never
swaps to RGB and its weights expect that). Post-processing: logits upsampled bilinearly
with align_corners=True to the input size, argmax, inverse affine (nearest) back to the
original image. The runtime, training data, export verification and evaluation all call
these functions, so their pixels cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

INPUT_SIZE = (473, 473)  # (height, width): the one input size constant; sizes are tuples everywhere
MEAN = (0.485, 0.456, 0.406)  # ImageNet's RGB values, applied to B, G, R as officially
STD = (0.229, 0.224, 0.225)
CHANNEL_ORDER = "BGR"


def size_text(size: tuple[int, int]) -> str:
    """'473' for a square input, '512x448' (H x W) otherwise: file names and messages keep
    the short square form artefacts and caches were always named with."""
    height, width = (int(v) for v in size)
    return str(height) if height == width else f"{height}x{width}"


@dataclass(frozen=True)
class Crop:
    """Where the network's input came from: center/scale in image pixels and rotation."""

    center: np.ndarray  # (2,) float32, x, y
    scale: np.ndarray  # (2,) float32, w, h of the region mapped onto the input
    rotation: float = 0.0


def whole_image_box(height: int, width: int) -> tuple[float, float, float, float]:
    """The official test box: x, y, w, h = 0, 0, width - 1, height - 1."""
    return 0.0, 0.0, float(width - 1), float(height - 1)


def box_to_crop(box_xywh: tuple[float, float, float, float], input_size: tuple[int, int] = INPUT_SIZE,
                rotation: float = 0.0) -> Crop:
    """Center and scale of a box, widened to the input's aspect ratio (official _xywh2cs)."""
    x, y, w, h = (float(v) for v in box_xywh)
    aspect = input_size[1] / input_size[0]
    center = np.array([x + w * 0.5, y + h * 0.5], np.float32)
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return Crop(center, np.array([w, h], np.float32), rotation)


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    direction = a - b
    return b + np.array([-direction[1], direction[0]], np.float32)


def affine_matrix(crop: Crop, input_size: tuple[int, int] = INPUT_SIZE, inverse: bool = False) -> np.ndarray:
    """2x3 image -> input affine (input -> image with ``inverse``), as get_affine_transform."""
    dst_h, dst_w = input_size
    angle = np.pi * crop.rotation / 180.0
    sin, cos = np.sin(angle), np.cos(angle)
    half = float(crop.scale[0]) * -0.5
    src_dir = np.array([-half * sin, half * cos], np.float64)  # float64 as officially
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = crop.center
    src[1] = crop.center.astype(np.float64) + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + np.array([0, dst_w * -0.5], np.float32)
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    return cv2.getAffineTransform(dst, src) if inverse else cv2.getAffineTransform(src, dst)


def warp_to_input(image: np.ndarray, crop: Crop, input_size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """The network's view of the image: bilinear affine warp with a black border."""
    return cv2.warpAffine(image, affine_matrix(crop, input_size), (input_size[1], input_size[0]),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def normalize(crops: np.ndarray) -> np.ndarray:
    """N x H x W x 3 (or H x W x 3) uint8 BGR -> N x 3 x H x W float32, official order kept."""
    batch = crops[None] if crops.ndim == 3 else crops
    mean = np.asarray(MEAN, np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(STD, np.float32) * 255.0)
    out = (batch.astype(np.float32) - mean) * inv_std
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


@dataclass(frozen=True)
class _Taps:
    """Bilinear align_corners=True along one axis: each output sample blends two inputs."""

    low: np.ndarray  # (dst,) int64 source index
    high: np.ndarray  # (dst,) int64 source index (= low at the last sample)
    w_low: np.ndarray  # (dst,) float32 weight of low, 1 - w_high
    w_high: np.ndarray  # (dst,) float32 weight of high


def _taps(src: int, dst: int) -> _Taps:
    """Indices and weights as torch computes them: position = dst_index * (src-1)/(dst-1) in float32."""
    ratio = np.float32((src - 1) / (dst - 1)) if dst > 1 else np.float32(0)
    pos = np.arange(dst, dtype=np.float32) * ratio
    low = np.minimum(np.floor(pos).astype(np.int64), src - 1)
    frac = (pos - low).astype(np.float32)
    return _Taps(low, np.minimum(low + 1, src - 1), (np.float32(1) - frac).astype(np.float32), frac)


def _interpolate(planes: np.ndarray, rows: _Taps, cols: _Taps) -> np.ndarray:
    """... x h x w float32 -> ... x H x W: the width first, then the height, as torch's CPU kernel
    nests them. Two taps per axis: no dense weight matrices, no BLAS (whose threads stall on
    small products when the CPU is shared), the same arithmetic whatever the leading shape."""
    wide = planes[..., cols.low] * cols.w_low + planes[..., cols.high] * cols.w_high
    return wide[..., rows.low, :] * rows.w_low[:, None] + wide[..., rows.high, :] * rows.w_high[:, None]


def upsample_logits(logits: np.ndarray, size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """N x C x h x w -> N x C x H x W, bilinear with align_corners=True (within float rounding of torch)."""
    logits = logits.astype(np.float32, copy=False)
    return _interpolate(logits, _taps(logits.shape[-2], size[0]), _taps(logits.shape[-1], size[1]))


def labels_from_logits(logits: np.ndarray, size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """N x C x h x w logits -> N x H x W uint8 labels at the input size.

    Exactly ``upsample_logits(logits, size).argmax(1)`` (the same arithmetic per channel,
    the first maximum wins ties), but one channel at a time with a running maximum: the
    N x C x H x W tensor is never held and no strided argmax is needed. Non-finite logits
    take the plain path, whose NaN rule (first NaN wins) a running maximum would not
    reproduce.
    """
    logits = logits.astype(np.float32, copy=False)
    if not np.isfinite(logits).all():
        return upsample_logits(logits, size).argmax(axis=1).astype(np.uint8)
    rows, cols = _taps(logits.shape[-2], size[0]), _taps(logits.shape[-1], size[1])
    labels = np.zeros((logits.shape[0], *size), np.uint8)
    for planes, out in zip(logits, labels, strict=True):
        best = _interpolate(planes[0], rows, cols)
        for channel in range(1, planes.shape[0]):
            plane = _interpolate(planes[channel], rows, cols)
            out[plane > best] = channel
            np.maximum(best, plane, out=best)
    return labels


def softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 (the classes of C x H x W scores), in place: maps this size are
    large, and callers are done with the scores."""
    scores -= scores.max(axis=0, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=0, keepdims=True)
    return scores


def warp_back(values: np.ndarray, crop: Crop, image_size: tuple[int, int], input_size: tuple[int, int] = INPUT_SIZE,
              region: tuple[int, int, int, int] | None = None, border: float = 0) -> np.ndarray:
    """An input-size map (labels, an index or a probability plane) -> the original image:
    the official inverse affine, nearest, ``border`` outside the crop. ``region`` (x0, y0,
    x1, y1) returns only those image pixels, warped directly rather than cut from a
    full-size map (the affine's translation is shifted by the region's corner)."""
    matrix = affine_matrix(crop, input_size, inverse=True)
    x0, y0, x1, y1 = region if region is not None else (0, 0, int(image_size[1]), int(image_size[0]))
    matrix[:, 2] -= (x0, y0)
    return cv2.warpAffine(values, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def warp_labels_back(labels: np.ndarray, crop: Crop, image_size: tuple[int, int],
                     input_size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """Input-size labels -> labels at the original image size (nearest, 0 outside)."""
    return warp_back(labels, crop, image_size, input_size)
