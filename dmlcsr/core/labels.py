"""Label sets of the three datasets DML-CSR is trained on, and their overlay colours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Label maps are saved as uint8 PNGs (values 0..255), and a parser needs background plus one part.
MAX_CLASSES = 256
MIN_CLASSES = 2


@dataclass(frozen=True)
class LabelSet:
    """Class names in the order the network's channels use, plus left/right pairs to swap
    when an image is flipped."""

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]

    @property
    def num_classes(self) -> int:
        return len(self.names)


CELEBAMASK_HQ = LabelSet(
    "celebamask-hq",
    ("background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear",
     "r_ear", "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth"),
    ((4, 5), (6, 7), (8, 9)),
)
LAPA = LabelSet(
    "lapa",
    ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "u_lip", "mouth",
     "l_lip", "hair"),
    ((2, 3), (4, 5)),
)
HELEN = LabelSet(
    "helen",
    ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "u_lip", "mouth",
     "l_lip", "hair"),
    ((2, 3), (4, 5)),
)
LABEL_SETS = {s.name: s for s in (CELEBAMASK_HQ, LAPA, HELEN)}


def default_label_set(num_classes: int) -> LabelSet:
    """The label set a checkpoint of ``num_classes`` classes most likely uses."""
    if num_classes == CELEBAMASK_HQ.num_classes:
        return CELEBAMASK_HQ
    if num_classes == LAPA.num_classes:
        return LAPA
    names = ("background",) + tuple(f"class_{i}" for i in range(1, num_classes))
    return LabelSet(f"custom-{num_classes}", names, ())


def palette(num_classes: int, seed: int = 7) -> np.ndarray:
    """num_classes x 3 uint8 BGR colours: black background, then well-separated hues."""
    colours = np.zeros((num_classes, 3), np.uint8)
    golden = 0.618033988749895
    rng = np.random.default_rng(seed)
    for index in range(1, num_classes):
        hue = (index * golden) % 1.0
        hsv = np.array([[[hue * 180, 200 + rng.integers(0, 56), 230]]], np.uint8)
        import cv2

        colours[index] = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return colours
