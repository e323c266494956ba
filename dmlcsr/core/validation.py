"""One check for every face box and number a user hands the toolkit.

``parse``, ``parse_photo``, the faces JSON reader and dmlcsr-parse's options all call these,
so a NaN, an empty or microscopic box, or a box off the image gets the same one-line
DmlcsrError on every path instead of a silent all-background (or whole-image) label map.
"""

from __future__ import annotations

import math
import operator

from dmlcsr.errors import DmlcsrError

#: boxes below this side length (pixels) are refused: the crop's affine blows a sub-pixel
#: box up to the whole network input, which labels the image with noise
MIN_BOX_SIDE = 2.0
#: coordinates and sides beyond 2**24 px are refused: float32 (the warp's arithmetic) stops
#: holding whole pixels there, and no image under the 100 MP limit comes close
MAX_COORDINATE = float(2**24)

#: a box larger than this many times the image's longer side shrinks the whole image to a
#: few dozen of the network's 473 pixels: not a face crop
MAX_BOX_TO_IMAGE = 16.0

Box = tuple[float, float, float, float]


def finite_number(value: object, what: str, minimum: float | None = None, maximum: float | None = None) -> float:
    """``value`` as a float within [minimum, maximum]; NaN, infinities and non-numbers are refused."""
    if isinstance(value, (bool, str, bytes)):
        raise DmlcsrError(f"{what} is {value!r}, not a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise DmlcsrError(f"{what} is {value!r}, not a number") from None
    if not math.isfinite(number):
        raise DmlcsrError(f"{what} is {value!r}; pass a finite number")
    if minimum is not None and number < minimum:
        raise DmlcsrError(f"{what} is {value!r}; it must be at least {minimum:g}")
    if maximum is not None and number > maximum:
        raise DmlcsrError(f"{what} is {value!r}; it must be at most {maximum:g}")
    return number


def whole_number(value: object, what: str, minimum: int = 1) -> int:
    """``value`` as an int (not a bool, not a fraction) of at least ``minimum``."""
    try:
        number = operator.index(value)  # type: ignore[arg-type]  # ints and numpy ints, never 2.5
    except TypeError:
        number = None
    if number is None or isinstance(value, bool):
        raise DmlcsrError(f"{what} is {value!r}; pass a whole number of at least {minimum}")
    if number < minimum:
        raise DmlcsrError(f"{what} is {number}; pass a whole number of at least {minimum}")
    return number


def box_values(box: object, what: str = "face box") -> Box:
    """(x, y, w, h) as four finite floats with positive size of at least MIN_BOX_SIDE pixels.

    Checks what a box is on its own, before the image is known (the faces JSON reader);
    ``face_box`` adds the image."""
    try:
        values = [v for v in box]  # type: ignore[union-attr]
    except TypeError:
        values = []
    if len(values) != 4 or any(isinstance(v, (str, bytes, bool)) or v is None for v in values):
        raise DmlcsrError(f"{what} {box!r} is not four numbers x, y, w, h (pixels)")
    try:
        x, y, w, h = (float(v) for v in values)
    except (TypeError, ValueError, OverflowError):
        raise DmlcsrError(f"{what} {box!r} is not four numbers x, y, w, h (pixels)") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise DmlcsrError(f"{what} {_shown(box)} has a NaN or infinite value; pass finite x, y, w, h")
    if max(abs(x), abs(y), w, h) > MAX_COORDINATE:
        raise DmlcsrError(f"{what} {_shown(box)} has a value beyond {MAX_COORDINATE:.0f} pixels; pass x, y, w, h "
                          "in the image's pixels")
    if w <= 0 or h <= 0:
        raise DmlcsrError(f"{what} {_shown(box)} is empty (w and h must be > 0); pass x, y, w, h, not x1, y1, x2, y2")
    if min(w, h) < MIN_BOX_SIDE:
        raise DmlcsrError(f"{what} {_shown(box)} is {w:g} x {h:g} pixels, below the {MIN_BOX_SIDE:g}-pixel minimum; "
                          "pass x, y, w, h in pixels, not fractions of the image")
    return x, y, w, h


def face_box(box: object, image_size: tuple[int, int], what: str = "face box") -> Box:
    """``box_values`` plus the image: the box must overlap the (height, width) image by at
    least a pixel each way, and be at most MAX_BOX_TO_IMAGE times its longer side.

    A box partly outside is fine: the official warp fills the outside with black."""
    x, y, w, h = box_values(box, what)
    height, width = image_size
    if min(x + w, width) - max(x, 0) < 1 or min(y + h, height) - max(y, 0) < 1:
        raise DmlcsrError(f"{what} {_shown(box)} lies outside the {width}x{height} image; pass x, y, w, h in "
                          "this image's pixels")
    if max(w, h) > MAX_BOX_TO_IMAGE * max(width, height):
        raise DmlcsrError(f"{what} {_shown(box)} is over {MAX_BOX_TO_IMAGE:g} times the {width}x{height} image, "
                          "which would shrink the image to a few network pixels; pass x, y, w, h in this image's "
                          "pixels")
    return x, y, w, h


def finite_points(points: object, count: int, what: str) -> list[tuple[float, float]]:
    """``count`` (x, y) pairs of finite numbers, e.g. a face's five landmarks."""
    try:
        pairs = list(points)  # type: ignore[call-overload]
        flat = [float(v) for pair in pairs if not isinstance(pair, (str, bytes)) and len(pair) == 2
                for v in pair if not isinstance(v, (str, bytes, bool))]
    except (TypeError, ValueError, OverflowError):
        flat = []
    if len(flat) != 2 * count or not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in flat):
        raise DmlcsrError(f"{what} must be {count} finite [x, y] pairs in pixels; fix or drop them")
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


def _shown(box: object) -> str:
    """A box as the user wrote it, short (numpy arrays and tuples alike)."""
    try:
        return "(" + ", ".join(f"{float(v):g}" for v in box) + ")"  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return repr(box)

