"""Face-parsing scores computed as the official utils/miou.py computes them (torch-free).

One confusion matrix (ground-truth rows, predicted columns) is accumulated over the whole
test set at each image's ORIGINAL resolution, pixels labelled 255 left out. From it:
- IoU per class = tp / max(1, gt + pred - tp); mIoU = their mean over ALL classes,
  background included, a class absent from both gt and prediction counting 0 (as
  officially: keep every class present in a test set you compare with the paper);
- F1 per class = 2 * tp / (gt + pred); mean F1 = mean over the classes but background;
- merged F1 for eyes, brows, nose, mouth (upper lip + inner mouth + lower lip) and
  "overall" (all of them), where confusing left with right, or one lip with the other,
  counts as correct: Helen's headline number, reported for every label set that has
  those classes. F1 of a class absent from both sides is NaN and skipped in means
  (the official code would return NaN for the mean).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dmlcsr.core import geometry
from dmlcsr.core.labels import LabelSet

IGNORE_LABEL = 255
MERGED_GROUPS = {
    "eyes": ("l_eye", "r_eye"),
    "brows": ("l_brow", "r_brow"),
    "nose": ("nose",),
    "mouth": ("u_lip", "mouth", "l_lip"),
}


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int,
                     ignore: int = IGNORE_LABEL) -> np.ndarray:
    """num_classes x num_classes int64 counts: rows ground truth, columns prediction."""
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    valid = gt != ignore
    gt = gt[valid].astype(np.int64)
    pred = pred[valid].astype(np.int64)
    if gt.size and (gt.max() >= num_classes or pred.max() >= num_classes):
        raise ValueError(f"labels up to {max(gt.max(), pred.max())} for {num_classes} classes")
    return np.bincount(gt * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def _f1(hist: np.ndarray, members: list[int]) -> float:
    gt = hist[members, :].sum()
    pred = hist[:, members].sum()
    hit = hist[np.ix_(members, members)].sum()
    return float(2.0 * hit / (gt + pred)) if gt + pred else float("nan")


@dataclass
class ParsingScores:
    """Everything the official evaluation prints, as fractions in [0, 1]."""

    pixel_accuracy: float
    mean_accuracy: float
    mean_iou: float
    mean_f1: float
    iou: dict[str, float]
    f1: dict[str, float]
    merged_f1: dict[str, float] = field(default_factory=dict)

    @property
    def overall_f1(self) -> float | None:
        """Helen's overall F1 (brows, eyes, nose, mouth merged); None without those classes."""
        return self.merged_f1.get("overall")

    def as_dict(self) -> dict:
        return {"pixel_accuracy": self.pixel_accuracy, "mean_accuracy": self.mean_accuracy,
                "mean_iou": self.mean_iou, "mean_f1": self.mean_f1, "overall_f1": self.overall_f1,
                "iou": self.iou, "f1": self.f1, "merged_f1": self.merged_f1}

    def table(self) -> str:
        """Per-class IoU and F1 as a plain-text table, headline numbers last."""
        rows = [f"{'class':<12} {'IoU':>7} {'F1':>7}"]
        rows += [f"{name:<12} {100 * self.iou[name]:7.2f} {100 * self.f1[name]:7.2f}" for name in self.iou]
        rows += [f"{name + ' (merged)':<21} {100 * value:7.2f}" for name, value in self.merged_f1.items()]
        rows.append(f"mIoU {100 * self.mean_iou:.2f}  mean F1 (no background) {100 * self.mean_f1:.2f}  "
                    f"pixel accuracy {100 * self.pixel_accuracy:.2f}")
        return "\n".join(rows)


def scores_from_confusion(hist: np.ndarray, label_set: LabelSet) -> ParsingScores:
    """The official scores from an accumulated confusion matrix."""
    if hist.shape != (label_set.num_classes,) * 2:
        raise ValueError(f"confusion matrix {hist.shape} does not fit {label_set.num_classes} classes")
    hist = hist.astype(np.float64)
    tp = np.diag(hist)
    gt = hist.sum(1)
    pred = hist.sum(0)
    iou = tp / np.maximum(1.0, gt + pred - tp)
    f1 = {name: _f1(hist, [i]) for i, name in enumerate(label_set.names)}
    index = {name: i for i, name in enumerate(label_set.names)}
    merged: dict[str, float] = {}
    members_all: list[int] = []
    for group, names in MERGED_GROUPS.items():
        if all(n in index for n in names):
            members = [index[n] for n in names]
            merged[group] = _f1(hist, members)
            members_all += members
    if len(merged) == len(MERGED_GROUPS):
        merged["overall"] = _f1(hist, members_all)
    foreground = [f1[n] for n in label_set.names[1:] if not np.isnan(f1[n])]
    return ParsingScores(
        pixel_accuracy=float(tp.sum() / max(1.0, gt.sum())),
        mean_accuracy=float((tp / np.maximum(1.0, gt)).mean()),
        mean_iou=float(iou.mean()),
        mean_f1=float(np.mean(foreground)) if foreground else float("nan"),
        iou=dict(zip(label_set.names, map(float, iou), strict=True)),
        f1=f1,
        merged_f1=merged,
    )


def labels_at_original_size(labels: np.ndarray, crop: geometry.Crop, image_size: tuple[int, int],
                            input_size: tuple[int, int], official_center_truncation: bool = False) -> np.ndarray:
    """Input-size labels -> the image's own size, where the official scores are computed.

    ``official_center_truncation`` reproduces test.py, which stores the crop centres in an
    int32 array before the inverse warp: odd-sized images then shift by half a pixel
    (0.5-1 % of label pixels change). Off by default: the exact float centre the forward
    warp used, as the runtime does. Turn it on only to match the paper's published numbers.
    """
    if official_center_truncation:
        crop = geometry.Crop(crop.center.astype(np.int32).astype(np.float32), crop.scale, crop.rotation)
    return geometry.warp_labels_back(labels, crop, image_size, input_size)
