"""CenterFace face detection over the runtime's own backends, decoded here in numpy.

CenterFace (Xu et al. 2019, MIT licence) predicts, at stride 4, a face-centre heat map,
the log box size, the sub-pixel centre offset and five landmarks relative to the box.
The model is fully convolutional, so the photo is fed at its own resolution, padded
(never stretched) to a multiple of 32 so that every stride-2 stage divides evenly and
boxes need no rescaling. Only photos larger than ``max_side`` are shrunk first, which
bounds the cost on camera-size images whose faces are large anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.backends.base import Backend

STRIDE = 4
PAD_MULTIPLE = 32
OUTPUT_CHANNELS = (1, 2, 2, 10)  # heat map, log size (h, w), offset (y, x), landmarks (y, x) x 5


def default_model_path() -> Path:
    """The CenterFace ONNX file shipped in the wheel (see dmlcsr/data/centerface/README.md)."""
    return Path(str(resources.files("dmlcsr") / "data" / "centerface" / "centerface.onnx"))


@dataclass(frozen=True)
class Face:
    """One detected face in photo pixels: box x, y, w, h, score in 0..1, 5 x 2 landmarks
    (eye, eye, nose tip, mouth corner, mouth corner; x, y) or None for user-given boxes."""

    box: tuple[float, float, float, float]
    score: float = 1.0
    landmarks: np.ndarray | None = field(default=None, compare=False)

    @property
    def size(self) -> float:
        """The shorter side of the box, the figure the minimum face size is compared to."""
        return float(min(self.box[2], self.box[3]))


def pad_to_multiple(image: np.ndarray, multiple: int = PAD_MULTIPLE) -> np.ndarray:
    """Zero-pad H x W x C at the bottom and right up to multiples of ``multiple``."""
    height, width = image.shape[:2]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not pad_h and not pad_w:
        return image
    return cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=0)


def decode(heatmap: np.ndarray, log_size: np.ndarray, offset: np.ndarray, landmarks: np.ndarray,
           threshold: float, stride: int = STRIDE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heat-map peaks -> (K x 4 boxes x1, y1, x2, y2; K scores; K x 5 x 2 landmarks).

    A peak is a cell at or above ``threshold`` that is the maximum of its 3 x 3
    neighbourhood (CenterNet's rule), so one face yields one or a few candidates for NMS.
    Inputs are one image's maps: heatmap h x w, log_size 2 x h x w, offset 2 x h x w,
    landmarks 10 x h x w; outputs are in input-pixel coordinates.
    """
    heat = np.ascontiguousarray(heatmap, dtype=np.float32)
    local_max = cv2.dilate(heat, np.ones((3, 3), np.uint8))
    rows, cols = np.nonzero((heat >= threshold) & (heat >= local_max))
    height = np.exp(log_size[0, rows, cols]) * stride
    width = np.exp(log_size[1, rows, cols]) * stride
    center_y = (rows + offset[0, rows, cols] + 0.5) * stride
    center_x = (cols + offset[1, rows, cols] + 0.5) * stride
    x1, y1 = center_x - width / 2, center_y - height / 2
    boxes = np.stack([x1, y1, x1 + width, y1 + height], axis=1).astype(np.float32)
    points = landmarks[:, rows, cols].T.reshape(-1, 5, 2)  # (y, x) fractions of the box
    marks = np.stack([points[..., 1] * width[:, None] + x1[:, None],
                      points[..., 0] * height[:, None] + y1[:, None]], axis=-1).astype(np.float32)
    return boxes, heat[rows, cols].astype(np.float32), marks


def suppress_overlaps(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS (cv2.dnn.NMSBoxes), best score first."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, iou)
    return np.asarray(keep, np.int64).reshape(-1)


class CenterFace:
    """Face detector: CenterFace ONNX (or TensorRT engine) on any runtime backend."""

    def __init__(self, backend: Backend, threshold: float = 0.5, nms_iou: float = 0.3,
                 max_side: int | None = 1920) -> None:
        channels = tuple(spec.shape[1] for spec in backend.outputs)
        if len(channels) != 4 or any(c is not None and c != want for c, want in zip(channels, OUTPUT_CHANNELS,
                                                                                     strict=False)):
            raise DmlcsrError(f"{backend.name} is not a CenterFace model (outputs with {channels} channels, "
                              f"expected {OUTPUT_CHANNELS}); pass a CenterFace ONNX or leave the detector default")
        self.backend = backend
        self.threshold = threshold
        self.nms_iou = nms_iou
        self.max_side = max_side

    @classmethod
    def open(cls, path: str | Path | None = None, device: str = "auto", threads: int | None = None,
             **options) -> CenterFace:
        """The shipped model (or ``path``: another CenterFace .onnx, or a TensorRT engine
        built from one) on the backend its suffix names, for ``device``."""
        from dmlcsr.runtime.backends import open_backend

        return cls(open_backend(path or default_model_path(), device=device, threads=threads), **options)

    def _network_input(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """Photo (BGR uint8) -> 1 x 3 x H32 x W32 float RGB 0..255 and the shrink factor used."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise DmlcsrError(f"face detection needs an H x W x 3 BGR image, got shape {image.shape}; "
                              "read photos with cv2.imread(path, cv2.IMREAD_COLOR)")
        factor = 1.0
        if self.max_side and max(image.shape[:2]) > self.max_side:
            factor = self.max_side / max(image.shape[:2])
            size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        rgb = pad_to_multiple(image[:, :, ::-1])
        return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32), factor

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in a BGR photo, best score first, boxes clipped to the photo."""
        batch, factor = self._network_input(image)
        outputs = self.backend.run({self.backend.inputs[0].name: batch})
        heat, log_size, offset, marks = (outputs[spec.name][0] for spec in self.backend.outputs)
        boxes, scores, landmarks = decode(heat[0], log_size, offset, marks, self.threshold)
        height, width = image.shape[:2]
        boxes = boxes / factor
        landmarks = landmarks / factor
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        keep = suppress_overlaps(boxes, scores, self.nms_iou)
        return [Face((float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])), float(s), m)
                for b, s, m in zip(boxes[keep], scores[keep], landmarks[keep], strict=True)]
