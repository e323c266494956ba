"""Torch datasets over a DatasetIndex: augmented training samples with their edge labels,
and plain test-crop samples that remember how to go back to the original image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from dmlcsr.core import geometry
from dmlcsr.core.pipeline import crop_for
from dmlcsr.training.augment import AugmentConfig, augment
from dmlcsr.training.datasets import DatasetIndex, read_sample
from dmlcsr.training.edges import edge_maps


class TrainingSet(Dataset):
    """(image 3 x H x W float32, labels, binary edges, category edges: H x W uint8).

    Randomness is drawn from (seed, epoch, index), so a sample is the same whichever
    worker or rank loads it; call ``set_epoch`` before each epoch's loader is iterated.
    """

    def __init__(self, index: DatasetIndex, input_size: tuple[int, int], augmentation: AugmentConfig | None = None,
                 seed: int = 1234) -> None:
        self.index = index
        self.input_size = input_size
        self.augmentation = augmentation or AugmentConfig()
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        image, labels = read_sample(self.index.records[i], self.index.label_set.num_classes)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        image, labels = augment(image, labels, self.input_size, rng, self.augmentation,
                                self.index.label_set.flip_pairs)
        binary, category = edge_maps(labels)
        return (torch.from_numpy(geometry.normalize(image)[0]), torch.from_numpy(labels),
                torch.from_numpy(binary), torch.from_numpy(category))


@dataclass
class EvalSample:
    """A test crop plus what scoring needs: the crop and the ground truth at full size."""

    index: int
    crop: geometry.Crop
    ground_truth: np.ndarray


class EvaluationSet(Dataset):
    """The official test crop (whole image, no randomness) and the original-size labels."""

    def __init__(self, index: DatasetIndex, input_size: tuple[int, int]) -> None:
        self.index = index
        self.input_size = input_size

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[np.ndarray, EvalSample]:
        image, labels = read_sample(self.index.records[i], self.index.label_set.num_classes)
        crop = crop_for(labels.shape, None, self.input_size)
        return geometry.warp_to_input(image, crop, self.input_size), EvalSample(i, crop, labels)


def collate_eval(batch: list[tuple[np.ndarray, EvalSample]]) -> tuple[np.ndarray, list[EvalSample]]:
    """Stack the crops (uint8 BGR, N x H x W x 3); keep the samples as a list."""
    return np.stack([crop for crop, _ in batch]), [sample for _, sample in batch]
