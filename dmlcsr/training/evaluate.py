"""Score any face parser on a dataset split the official way: the test crop from the
shared geometry, labels back at the original resolution, one confusion matrix.

A parser is given as a "network": a function from a normalized N x 3 x H x W float32
batch to N x H x W uint8 labels at the input size. ``torch_network`` wraps a PyTorch
model, ``backend_network`` a runtime backend (ONNX Runtime, TensorRT), so checkpoints and
exported artefacts are scored by the same code.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from dmlcsr.core import geometry
from dmlcsr.errors import DmlcsrError
from dmlcsr.training.datasets import DatasetIndex
from dmlcsr.training.metrics import ParsingScores, confusion_matrix, labels_at_original_size, scores_from_confusion
from dmlcsr.training.samples import EvaluationSet, collate_eval

Network = Callable[[np.ndarray], np.ndarray]


def torch_network(model: nn.Module, device: torch.device | str = "cpu") -> Network:
    """A PyTorch parser (deploy build, or training build whose first output is parsing)."""

    @torch.no_grad()
    def run(batch: np.ndarray) -> np.ndarray:
        model.eval()
        out = model(torch.from_numpy(batch).to(device))
        logits = out[0] if isinstance(out, (tuple, list)) else out
        logits = F.interpolate(logits.float(), size=batch.shape[-2:], mode="bilinear", align_corners=True)
        return logits.argmax(1).to(torch.uint8).cpu().numpy()

    return run


def backend_network(backend) -> Network:
    """A dmlcsr.runtime backend: its logits go through the runtime's own upsample + argmax."""

    def run(batch: np.ndarray) -> np.ndarray:
        return geometry.labels_from_logits(backend.run_single(batch), tuple(batch.shape[-2:]))

    return run


def evaluate(network: Network, index: DatasetIndex, input_size: tuple[int, int], batch_size: int = 1,
             workers: int = 0, official_center_truncation: bool = False, progress: bool = True) -> ParsingScores:
    """The official scores of ``network`` on ``index`` (see dmlcsr.training.metrics)."""
    num_classes = index.label_set.num_classes
    loader = DataLoader(EvaluationSet(index, input_size), batch_size=batch_size, shuffle=False,
                        num_workers=workers, collate_fn=collate_eval)
    hist = np.zeros((num_classes, num_classes), np.int64)
    for crops, samples in tqdm(loader, desc=f"eval {index.split}", unit="batch", disable=not progress,
                               leave=False):
        labels = network(geometry.normalize(crops))
        if labels.max(initial=0) >= num_classes:
            raise DmlcsrError(f"the parser predicts class {int(labels.max())} but the {index.layout} dataset "
                              f"has {num_classes} classes; evaluate on the dataset it was trained for")
        for predicted, sample in zip(labels, samples, strict=True):
            full = labels_at_original_size(predicted, sample.crop, sample.ground_truth.shape, input_size,
                                           official_center_truncation)
            hist += confusion_matrix(sample.ground_truth, full, num_classes)
    return scores_from_confusion(hist, index.label_set)
