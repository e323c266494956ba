"""Helpers for the training tests: a synthetic face-like dataset written in the official
list-file layout, and a small parser that follows DML-CSR's training contract."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from dmlcsr.networks.abn import InPlaceABN

SYNTHETIC_NAMES = ("background", "skin", "l_eye", "r_eye", "mouth", "hair")


def _face(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One image and label map: hair, a face ellipse with two eyes and a mouth on a noisy
    background; position, size, tilt and colours vary. The two eye classes look alike and
    differ only by side, so telling them apart needs spatial context."""
    h = w = size
    image = np.empty((h, w, 3), np.uint8)
    image[:] = rng.integers(40, 216, 3)
    image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    labels = np.zeros((h, w), np.uint8)
    cx, cy = w * rng.uniform(0.42, 0.58), h * rng.uniform(0.45, 0.58)
    ax, ay = w * rng.uniform(0.22, 0.28), h * rng.uniform(0.28, 0.34)
    tilt = rng.uniform(-15, 15)

    def ellipse(target, centre, axes, angle, value):
        cv2.ellipse(target, (int(centre[0]), int(centre[1])), (max(1, int(axes[0])), max(1, int(axes[1]))),
                    angle, 0, 360, value, -1)

    hair = tuple(int(v) for v in rng.integers(10, 70, 3))
    ellipse(image, (cx, cy - ay * 0.25), (ax * 1.15, ay * 1.05), tilt, hair)
    ellipse(labels, (cx, cy - ay * 0.25), (ax * 1.15, ay * 1.05), tilt, 5)
    skin = (int(rng.integers(90, 150)), int(rng.integers(130, 180)), int(rng.integers(180, 235)))
    ellipse(image, (cx, cy + ay * 0.1), (ax, ay * 0.9), tilt, skin)
    ellipse(labels, (cx, cy + ay * 0.1), (ax, ay * 0.9), tilt, 1)
    rad = np.deg2rad(tilt)
    for side, label in ((-1, 3), (1, 2)):
        ex = cx + side * ax * 0.45 * np.cos(rad)
        ey = cy - ay * 0.1 + side * ax * 0.45 * np.sin(rad)
        ellipse(image, (ex, ey), (ax * 0.3, ay * 0.15), tilt, (235, 235, 235))
        ellipse(image, (ex, ey), (ax * 0.08, ay * 0.08), tilt, (40, 30, 30))
        ellipse(labels, (ex, ey), (ax * 0.3, ay * 0.15), tilt, label)
    mx, my = cx - ay * 0.5 * np.sin(rad), cy + ay * 0.5 * np.cos(rad)
    lips = (int(rng.integers(60, 110)), int(rng.integers(40, 80)), int(rng.integers(150, 210)))
    ellipse(image, (mx, my), (ax * 0.45, ay * 0.13), tilt, lips)
    ellipse(labels, (mx, my), (ax * 0.45, ay * 0.13), tilt, 4)
    image = cv2.GaussianBlur(image, (3, 3), 0)
    return image, labels


def write_synthetic_faces(root: Path, splits: dict[str, int], size: int = 80, seed: int = 0) -> Path:
    """The official layout: {split}/images/*.jpg (JPEG quality 95), {split}/labels/*.png,
    {split}_list.txt and label_names.txt; image sizes vary around ``size``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "label_names.txt").write_text("\n".join(SYNTHETIC_NAMES) + "\n")
    for split, count in splits.items():
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "labels").mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(count):
            image, labels = _face(rng, size + int(rng.integers(-8, 9)))
            name = f"{split}_{i:03d}"
            cv2.imwrite(str(root / split / "images" / f"{name}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(str(root / split / "labels" / f"{name}.png"), labels)
            lines.append(f"images/{name}.jpg labels/{name}.png")
        (root / f"{split}_list.txt").write_text("\n".join(lines) + "\n")
    return root


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         InPlaceABN(cout))


class TinyParser(nn.Module):
    """DML-CSR's contract at a fraction of the cost: (parsing, binary edge, category edge)
    logits at 1/4 resolution, InPlaceABN norms (so CSR's batch-norm steps and the
    synchronized norms are exercised) and dilated context wide enough to tell the
    subject's left eye from the right one."""

    def __init__(self, num_classes: int, width: int = 24) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Sequential(_block(3, width, 2), _block(width, width, 2))
        self.context = nn.Sequential(_block(width, width, 1, 2), _block(width, width, 1, 4),
                                     _block(width, width, 1, 8))
        self.layer6 = nn.Conv2d(2 * width, num_classes, 1)
        self.edge_layer = nn.ModuleDict({"binary": nn.Conv2d(width, 2, 1),
                                         "category": nn.Conv2d(width, num_classes, 1)})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        low = self.stem(x)
        seg = self.layer6(torch.cat([low, self.context(low)], 1))
        return seg, self.edge_layer["binary"](low), self.edge_layer["category"](low)
