"""Images in, OpenCV BGR uint8 out, or a one-line DmlcsrError saying what is wrong.

Files are decoded as the official test code reads them, ``cv2.imread(path, IMREAD_COLOR)``:
grayscale becomes three equal channels, an alpha channel is dropped (not composited),
16-bit samples keep their high byte, EXIF orientation is applied. Arrays handed in get the
same conversions, so a file and the array decoded from it give the same labels. What
cannot be read honestly (missing, empty, truncated or corrupt files, float or signed
arrays, images too small to define a crop or too large to hold) is refused: a partial
decode would give a silent wrong label map.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.image_header import header_size

#: refuse images above this many pixels (100 MP): the labels and, worse, the per-class
#: probabilities at the original size would take gigabytes; pass max_pixels to change it
MAX_PIXELS = 100_000_000
#: no image file under the pixel limit is bigger than this per pixel (16-bit RGBA, uncompressed)
MAX_BYTES_PER_PIXEL = 8
#: the official whole-image box is [0, 0, w-1, h-1]: a 1-pixel side gives an empty crop
MIN_SIDE = 2
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pgm", ".ppm", ".pnm", ".gif",
                  ".avif")

ImageInput = np.ndarray | str | Path


def load_image(image: ImageInput, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A path or an array -> H x W x 3 uint8 BGR, validated (see the module docstring)."""
    if isinstance(image, (str, Path)):
        return read_image(image, max_pixels)
    if isinstance(image, np.ndarray):
        return as_bgr(image, "image array", max_pixels)
    raise DmlcsrError(f"cannot parse a {type(image).__name__}; pass a path or a numpy H x W x 3 uint8 BGR "
                      "array (as cv2.imread returns)")


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image file as cv2.imread(path, IMREAD_COLOR) does, refusing partial decodes."""
    path = Path(path)
    if not path.is_file():
        raise DmlcsrError(f"image not found: {path}" if not path.exists() else f"{path} is not a file")
    if path.stat().st_size > max_file_bytes(max_pixels):
        raise DmlcsrError(f"{path} is {path.stat().st_size / 2**30:.1f} GiB, more than any image under the "
                          f"{max_pixels / 1e6:.0f} MP limit takes; downscale it or raise max_pixels")
    return decode_image(path.read_bytes(), str(path), max_pixels)


def decode_image(data: bytes, source: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image file's bytes (read from ``source``, a path or URI) decoded as read_image does."""
    if not data:
        raise DmlcsrError(f"{source} is empty (0 bytes); re-copy or re-export the image")
    if data[:3] == b"\xff\xd8\xff" and not jpeg_is_complete(data):
        raise DmlcsrError(f"{source} is a truncated JPEG (no end-of-image marker after its scan data); "
                          "re-copy or re-download it")
    size = header_size(data)
    if size is not None:
        check_pixels(size[0], size[1], source, max_pixels)  # before the decoder allocates it
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:  # OpenCV refuses (e.g. beyond its own pixel limit) by raising, not returning None
        decoded = None
    if decoded is None:
        raise DmlcsrError(f"{source} is not a readable image (corrupt, or a format OpenCV cannot decode); "
                          f"convert it to PNG or JPEG")
    return as_bgr(decoded, source, max_pixels)


def max_file_bytes(max_pixels: int) -> int:
    """No image file under ``max_pixels`` is larger than this (checked before reading it)."""
    return MAX_BYTES_PER_PIXEL * max_pixels + 2**20


def jpeg_is_complete(data: bytes) -> bool:
    """True when an end-of-image marker follows the first scan of the main image.

    libjpeg decodes a truncated file anyway (grey rows at the bottom, only a warning on
    stderr), so this is checked here. Marker segments before the first start-of-scan are
    skipped by their length, which steps over EXIF thumbnails with their own markers.
    """
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: entropy-coded data never holds FF D9
            return data.find(b"\xff\xd9", pos) != -1
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return False


def check_pixels(width: int, height: int, source: str, max_pixels: int) -> None:
    """Refuse an image above ``max_pixels`` (checked from the file header before decoding)."""
    if height * width > max_pixels:
        raise DmlcsrError(f"{source} is {width}x{height} = {height * width / 1e6:.0f} MP, above the "
                          f"{max_pixels / 1e6:.0f} MP limit; downscale it (the network sees 473x473 anyway) "
                          "or raise max_pixels")


def as_bgr(image: np.ndarray, source: str = "image array", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """H x W, H x W x 1, x 3 or x 4 uint8/uint16 -> H x W x 3 uint8 BGR (no copy if already so)."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)  # what IMREAD_COLOR does to 16-bit files
    elif image.dtype != np.uint8:
        raise DmlcsrError(f"{source} has dtype {image.dtype}; pass uint8 (or uint16) BGR, e.g. "
                          "np.clip(img * 255, 0, 255).astype(np.uint8) for floats in [0, 1]")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = np.ascontiguousarray(image[:, :, :3])  # alpha dropped, as IMREAD_COLOR does
    elif image.ndim != 3 or image.shape[2] != 3:
        raise DmlcsrError(f"{source} has shape {image.shape}; pass one image, H x W (gray), H x W x 3 (BGR) "
                          "or H x W x 4 (BGRA)")
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise DmlcsrError(f"{source} is {width}x{height} pixels; a face crop needs at least "
                          f"{MIN_SIDE} pixels a side")
    check_pixels(width, height, source, max_pixels)
    return image if image.flags.c_contiguous else np.ascontiguousarray(image)


def open_video(path: str | Path) -> tuple[cv2.VideoCapture, int | None, float]:
    """An opened capture, its frame count (None when the container does not say) and fps."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DmlcsrError(f"cannot open video {path} (corrupt, or a codec OpenCV's FFmpeg lacks); "
                          "convert it to MP4 (H.264) or extract frames")
    return capture, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None, capture.get(cv2.CAP_PROP_FPS) or 25.0


VIDEO_FOURCC = "mp4v"  # encodes with every OpenCV build's FFmpeg, no licensed H.264 encoder needed


def open_video_writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """An MP4 writer for overlay videos; a clear error when the folder is not writable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps, size)
    if not writer.isOpened():
        raise DmlcsrError(f"cannot write video {path}; check --out is writable")
    return writer
