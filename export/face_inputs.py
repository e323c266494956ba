"""Real face photos -> network inputs, for parity checks and INT8 calibration.

Both must see exactly what the runtime feeds the network, so the preprocessing is the
official whole-image crop of dmlcsr.core.geometry and the decoding is the runtime's
(dmlcsr.runtime.images), nothing re-implemented here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

import dmlcsr
from dmlcsr.core.pipeline import crop_for, preprocess
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.images import IMAGE_SUFFIXES, read_image


def default_image_dir() -> Path:
    """The real face photos shipped inside the package (provenance in their README.md)."""
    return Path(dmlcsr.__file__).resolve().parent / "data" / "faces"


def list_images(directory: str | os.PathLike, purpose: str = "--images") -> list[Path]:
    """The image files directly inside ``directory`` (sorted), or a clear error."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DmlcsrError(f"{purpose} {directory} is not a directory; pass a folder of face photos")
    paths = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DmlcsrError(f"{purpose} {directory} holds no images ({', '.join(IMAGE_SUFFIXES[:4])}...); "
                          "put face photos there")
    return paths


def preprocess_file(path: str | os.PathLike, input_size: tuple[int, int]) -> np.ndarray:
    """One photo -> 3 x H x W float32, the official whole-image crop, BGR, ImageNet mean/std."""
    image = read_image(path)
    return preprocess(image, [crop_for(image.shape[:2], None, input_size)], input_size)[0]


def batches(paths: Sequence[Path], input_size: tuple[int, int], batch_size: int) -> Iterator[np.ndarray]:
    """Preprocessed N x 3 x H x W float32 batches of ``paths``, in order."""
    for start in range(0, len(paths), batch_size):
        yield np.stack([preprocess_file(p, input_size) for p in paths[start:start + batch_size]])
