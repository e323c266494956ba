"""From a face detector's box to the framing DML-CSR was trained on.

Detectors box the face from brow to chin; the parsing datasets (CelebAMask-HQ, LaPa,
Helen) frame the whole head with hair, ears, neck and some background, and the official
test parses the whole image as one crop. Each face box is therefore widened before the
official affine crop: by default 20 % of its width on the left and right, 20 % of its
height below and 40 % above (the hair), the margins of the widely used BiSeNet
face-parsing package. Measured on the eight faces of the shipped photos, the resulting
square crop is 9-24 % wider than the CelebA-HQ alignment framing (side 2 x max(2 x eye
distance, 1.8 x eye-to-mouth distance), centred just below the eyes) that CelebAMask-HQ's
images have, IoU 0.65-0.84: the same head-and-hair framing with a little more context.
A tight recognition crop such as Tom_Hanks_54745.png (112 px, brow to chin) is framed
wider than the photo itself: its crop holds the whole image plus black border.
"""

from __future__ import annotations

from dataclasses import dataclass

from dmlcsr.core.geometry import INPUT_SIZE, Crop, box_to_crop
from dmlcsr.core.validation import finite_number
from dmlcsr.errors import DmlcsrError

#: a margin beyond this many box sizes frames mostly background (and far ones overflow)
MAX_MARGIN = 10.0


@dataclass(frozen=True)
class Margin:
    """How much to widen a face box on each side, as fractions of its width / height."""

    left: float = 0.2
    right: float = 0.2
    top: float = 0.4
    bottom: float = 0.2

    @classmethod
    def parse(cls, text: str) -> Margin:
        """'0.3' (all sides) or 'left,right,top,bottom', e.g. '0.2,0.2,0.4,0.2'."""
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            values = []
        if len(values) == 1:
            values *= 4
        if len(values) != 4:
            raise DmlcsrError(f"margin {text!r} is not one or four fractions; write e.g. 0.3 or 0.2,0.2,0.4,0.2 "
                              "(left,right,top,bottom)")
        return cls(*values)

    def __post_init__(self) -> None:
        values = tuple(finite_number(v, "a margin") for v in (self.left, self.right, self.top, self.bottom))
        if not all(0 <= v <= MAX_MARGIN for v in values):
            raise DmlcsrError(f"margin {','.join(f'{v:g}' for v in values)} is not four fractions from 0 to "
                              f"{MAX_MARGIN:g}; write e.g. 0.3 or 0.2,0.2,0.4,0.2 (left,right,top,bottom)")


DEFAULT_MARGIN = Margin()
NO_MARGIN = Margin(0.0, 0.0, 0.0, 0.0)


def enlarge_box(box_xywh: tuple[float, float, float, float],
                margin: Margin = DEFAULT_MARGIN) -> tuple[float, float, float, float]:
    """The face box widened by ``margin``; may reach past the photo (the crop pads black)."""
    x, y, w, h = (float(v) for v in box_xywh)
    return (x - margin.left * w, y - margin.top * h,
            w * (1.0 + margin.left + margin.right), h * (1.0 + margin.top + margin.bottom))


def face_crop(box_xywh: tuple[float, float, float, float], margin: Margin = DEFAULT_MARGIN,
              input_size: tuple[int, int] = INPUT_SIZE) -> Crop:
    """The official center/scale crop of the widened box (square for a square input)."""
    return box_to_crop(enlarge_box(box_xywh, margin), input_size)
