"""Pictures of label maps: colours per label set and an overlay with a legend.

Colours come from dmlcsr.core.labels.palette (black background, well-separated hues), so
every tool of the toolkit paints a class the same colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from dmlcsr.core.labels import palette
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.output_files import write_atomic

LEGEND_ROW = 18  # pixels per legend line at scale 1
MIN_OVERLAY_HEIGHT = 320  # small face crops are enlarged so the legend stays readable
MAX_OVERLAY_WIDTH = 4096  # ... but not beyond this width (JPEG's limit is 65535, memory's lower)


def colorize(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """H x W labels -> H x W x 3 uint8 BGR picture in the toolkit's palette."""
    if labels.size and int(labels.max()) >= num_classes:
        raise DmlcsrError(f"label map holds class {int(labels.max())} but the model has {num_classes} classes")
    return palette(num_classes)[labels]


def overlay(image: np.ndarray, labels: np.ndarray, label_names: Sequence[str], alpha: float = 0.55,
            legend: bool | Sequence[int] = True) -> np.ndarray:
    """Blend coloured labels over a BGR image (background left untouched), legend to the right.

    ``legend``: True lists the classes present, a sequence lists those classes (fixed
    for every frame of a video, so frames keep one size), False draws none. Images lower
    than MIN_OVERLAY_HEIGHT are enlarged (nearest) first so the legend text stays legible.
    """
    if image.shape[:2] != labels.shape:
        raise DmlcsrError(f"image {image.shape[:2]} and label map {labels.shape} differ in size")
    scale = overlay_scale(image.shape[:2])
    if scale > 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        labels = cv2.resize(labels, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    colours = colorize(labels, len(label_names))
    blended = image.copy()
    face = labels > 0
    blended[face] = cv2.addWeighted(image, 1.0 - alpha, colours, alpha, 0.0)[face]
    if legend is False:
        return blended
    shown = np.unique(labels).tolist() if legend is True else list(legend)
    return np.hstack(_fit(blended, _legend(shown, label_names, image.shape[0])))


def overlay_scale(image_size: tuple[int, int]) -> int:
    """How much ``overlay`` enlarges an image: enough for a legible legend on small face
    crops, but never past MAX_OVERLAY_WIDTH (a 2 x 3000 strip must not become 320 x 480000)."""
    height, width = image_size
    return max(1, min(int(np.ceil(MIN_OVERLAY_HEIGHT / height)), MAX_OVERLAY_WIDTH // width))


def _legend(classes: Sequence[int], label_names: Sequence[str], height: int) -> np.ndarray:
    """A dark panel with one colour swatch and name per class."""
    colours = palette(len(label_names))
    width = 14 + 12 + 8 * max((len(label_names[c]) for c in classes), default=4) + 10
    panel = np.full((max(height, LEGEND_ROW * len(classes) + 10), width, 3), 32, np.uint8)
    for row, cls in enumerate(classes):
        top = 6 + row * LEGEND_ROW
        cv2.rectangle(panel, (6, top), (18, top + 12), tuple(int(v) for v in colours[cls]), cv2.FILLED)
        cv2.putText(panel, label_names[cls], (24, top + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (235, 235, 235), 1,
                    cv2.LINE_AA)
    return panel


def _fit(picture: np.ndarray, panel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pad the shorter of the two with black at the bottom so they stack side by side."""
    height = max(picture.shape[0], panel.shape[0])

    def pad(a: np.ndarray) -> np.ndarray:
        return cv2.copyMakeBorder(a, 0, height - a.shape[0], 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))

    return pad(picture), pad(panel)


def encode_image(path: str | Path, picture: np.ndarray) -> bytes:
    """The file bytes of ``picture`` in the format ``path``'s suffix names (PNG by default)."""
    ok, encoded = cv2.imencode(Path(path).suffix or ".png", picture)
    if not ok:
        raise DmlcsrError(f"cannot encode {Path(path).name}; use a .png or .jpg name")
    return encoded.tobytes()


def write_image(path: str | Path, picture: np.ndarray) -> Path:
    """cv2.imwrite with a DmlcsrError instead of a silent False, written atomically."""
    return write_atomic(path, encode_image(path, picture))


def write_overlay(path: str | Path, image: np.ndarray, labels: np.ndarray, label_names: Sequence[str],
                  alpha: float = 0.55) -> Path:
    """Save ``overlay(image, labels, label_names)`` to ``path`` (format from its suffix)."""
    return write_image(path, overlay(image, labels, label_names, alpha))
