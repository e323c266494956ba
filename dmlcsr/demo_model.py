"""A DML-CSR with meaningful, reproducible weights for demos and parity checks.

No pretrained weights can be downloaded here, and a randomly initialised DML-CSR predicts
one class nearly everywhere, so comparing label maps on it proves nothing. This builds the
reference network with seeded weights, then makes it behave like a trained model in the
two ways parity checks need:
1. batch-norm statistics re-estimated on real face photos (so activations are well scaled
   through all 101 layers) and the DDGCN gates (gamma) opened so the graph paths count;
2. the final classifier re-drawn as a nearest-centroid classifier on standardised
   features of those photos (k-means centres), which is linear and so fits in conv4:
   labels then follow image structure, form regions, and have clear margins.
It is not a face parser: its labels mean nothing. Load an official checkpoint for that.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from dmlcsr.core import geometry
from dmlcsr.networks.abn import InPlaceABN
from dmlcsr.networks.dml_csr import DML_CSR

EXAMPLE_FACES = Path(__file__).resolve().parent / "data" / "faces"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def example_face_paths() -> list[Path]:
    """The real face photos shipped with the package (provenance in their README.md)."""
    return sorted(p for p in EXAMPLE_FACES.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def preprocess_whole_images(paths: Sequence[Path], input_size: tuple[int, int]) -> torch.Tensor:
    """Official whole-image preprocessing of a list of files, as one batch."""
    crops = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        crop = geometry.box_to_crop(geometry.whole_image_box(*image.shape[:2]), input_size)
        crops.append(geometry.warp_to_input(image, crop, input_size))
    return torch.from_numpy(geometry.normalize(np.stack(crops)))


def _recalibrate_norms(model: nn.Module, images: torch.Tensor) -> None:
    """Replace running statistics with the photos' batch statistics (one train pass)."""
    norms = [m for m in model.modules() if isinstance(m, (InPlaceABN, nn.BatchNorm1d))]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    with torch.no_grad():
        model(images)
    for norm in norms:
        norm.momentum = 0.1
    model.eval()


def _kmeans(points: torch.Tensor, k: int, generator: torch.Generator, iterations: int = 15) -> torch.Tensor:
    centres = points[torch.randperm(len(points), generator=generator)[:k]].clone()
    for _ in range(iterations):
        assign = torch.cdist(points, centres).argmin(1)
        for j in range(k):
            members = points[assign == j]
            if len(members):
                centres[j] = members.mean(0)
    return centres


def _redraw_classifier(model: DML_CSR, images: torch.Tensor, generator: torch.Generator,
                       sharpness: float) -> None:
    """conv4 := nearest-centroid classifier over standardised layer6 features."""
    captured: list[torch.Tensor] = []
    handle = model.layer6.register_forward_hook(lambda _m, _i, out: captured.append(out[1]))
    with torch.no_grad():
        model(images)
    handle.remove()
    feats = captured[0].permute(0, 2, 3, 1).reshape(-1, captured[0].shape[1]).double()
    mean, std = feats.mean(0), feats.std(0).clamp_min(1e-6)
    z = (feats - mean) / std
    sample = z[torch.randperm(len(z), generator=generator)[:20000]]
    centres = _kmeans(sample, model.num_classes, generator)
    # logit_k = s * (2 c_k.z - |c_k|^2), z = (f - mean) / std  ->  linear in f
    weight = sharpness * 2 * centres / std
    bias = sharpness * (-(centres**2).sum(1) - 2 * (centres * (mean / std)).sum(1))
    with torch.no_grad():
        model.layer6.conv4.weight.copy_(weight[:, :, None, None].float())
        model.layer6.conv4.bias.copy_(bias.float())


def make_demo_model(num_classes: int = 19, seed: int = 0, input_size: int = 321,
                    image_paths: Sequence[Path] | None = None, gate: float = 0.5,
                    sharpness: float = 0.01) -> DML_CSR:
    """The deploy-build DML-CSR with seeded weights fitted to real photos (see module doc).

    Deterministic for a given seed, size and photo set; takes one train-mode and one
    eval-mode forward over the photos.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = DML_CSR(num_classes, trained=False)
    with torch.no_grad():
        model.context.dualgcn.gamma1.fill_(gate)
        model.context.dualgcn.gcn_local_attention.gamma.fill_(gate)
    images = preprocess_whole_images(image_paths or example_face_paths(), (input_size, input_size))
    _recalibrate_norms(model, images)
    _redraw_classifier(model, images, generator, sharpness)
    return model.eval()
