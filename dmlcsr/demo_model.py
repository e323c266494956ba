"""A DML-CSR with meaningful, reproducible weights for demos and parity checks.

No pretrained weights can be downloaded here, and a randomly initialised DML-CSR predicts
one class nearly everywhere, so comparing label maps on it proves nothing; reduced
precision needs more still: logits with a trained model's margins, from a network that
does not amplify rounding. This builds the reference network with seeded weights, then:
1. scales every residual branch's last norm by ``RESIDUAL_SCALE`` (0.01), as zero-gamma
   ResNet training recipes start them: 33 random blocks at full scale compound rounding
   (1e-4 input noise flipped 1.2 % of the unscaled model's labels; FP16 agreed on 96 %);
2. re-estimates every norm's statistics on real face photos and opens the DDGCN gates;
3. labels the photos' pixels by nearest centroid (k-means on standardised head features)
   and merges those speckled labels into regions (Gaussian-blurred argmax);
4. trains the parsing head (layer6) on those regions for ``FIT_STEPS`` Adam steps, the
   backbone and context frozen: a briefly trained head gives confident logits. Label
   smoothing (0.1, as many segmentation recipes use) keeps the losing classes' logits
   level, so no third class wins where two regions meet (INT8 agreement after the
   upsample, 225 px: 98.6 % without, 99.0 % with 0.1 and 98.9 % with 0.2).
It is not a face parser: its labels mean nothing. Load an official checkpoint for that.
Its regions belong to the size it was fitted at: verify it at that size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dmlcsr.core.pipeline import crop_for, preprocess
from dmlcsr.networks.abn import InPlaceABN
from dmlcsr.networks.bottleneck import Bottleneck
from dmlcsr.networks.dml_csr import DML_CSR
from dmlcsr.runtime.images import IMAGE_SUFFIXES, read_image

EXAMPLE_FACES = Path(__file__).resolve().parent / "data" / "faces"
RESIDUAL_SCALE = 0.01
REGION_SIGMA = 2 / 57  # of the logit map's width: 2 px at 225 x 225 input
FIT_STEPS = 300
LABEL_SMOOTHING = 0.1


def example_face_paths() -> list[Path]:
    """The real face photos shipped with the package (provenance in their README.md)."""
    return sorted(p for p in EXAMPLE_FACES.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def preprocess_whole_images(paths: Sequence[Path], input_size: tuple[int, int]) -> torch.Tensor:
    """Official whole-image preprocessing of a list of files, as one batch (the runtime's own steps)."""
    batches = []
    for path in paths:
        image = read_image(path)
        batches.append(preprocess(image, [crop_for(image.shape[:2], None, input_size)], input_size))
    return torch.from_numpy(np.concatenate(batches))


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


@dataclass
class HeadInputs:
    """What the parsing head's 1x1 layers see, per pixel: computed once, reused by every
    fitting step (the backbone and context stay frozen)."""

    context: torch.Tensor  # N x 512 x H/2 x W/2: the DDGCN context module's output
    low_level: torch.Tensor  # N x 256 x H x W: C2, the backbone's stride-4 features
    features: torch.Tensor  # N x 256 x H x W: conv3's output, what conv4 classifies


def _head_inputs(model: DML_CSR, images: torch.Tensor) -> HeadInputs:
    with torch.no_grad():
        x2, _, _, x5 = model.backbone(images)
        context = model.context(x5)
        _, features = model.layer6(context, x2)
    return HeadInputs(context, x2, features)


def _redraw_classifier(model: DML_CSR, features: torch.Tensor, generator: torch.Generator,
                       sharpness: float) -> None:
    """conv4 := nearest-centroid classifier over standardised layer6 features."""
    feats = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1]).double()
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


def region_labels(logits: torch.Tensor, sigma: float) -> torch.Tensor:
    """Argmax of Gaussian-blurred logits: the speckled nearest-centroid labels merged into
    regions, as a face parser's labels are."""
    radius = max(1, round(3 * sigma))
    taps = torch.exp(-torch.arange(-radius, radius + 1, dtype=logits.dtype) ** 2 / (2 * sigma**2))
    rows = (taps / taps.sum()).view(1, 1, 1, -1).repeat(logits.shape[1], 1, 1, 1)
    blurred = F.conv2d(F.pad(logits, (radius, radius, 0, 0), mode="replicate"), rows, groups=logits.shape[1])
    blurred = F.conv2d(F.pad(blurred, (0, 0, radius, radius), mode="replicate"), rows.transpose(2, 3),
                       groups=logits.shape[1])
    return blurred.argmax(1)


def _pixel_column(maps: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
    """The picked pixels of N x C x H x W maps as a 1 x C x P x 1 map, which 1x1 convs take."""
    return maps.permute(1, 0, 2, 3).reshape(maps.shape[1], -1)[:, pick][None, :, :, None]


def _fit_head(model: DML_CSR, inputs: HeadInputs, targets: torch.Tensor, steps: int,
              generator: torch.Generator, pixels_per_step: int = 16384) -> None:
    """Train the parsing head (layer6) on the region labels with cross-entropy, everything
    before it frozen; past conv1 it works per pixel, so each step takes a random subset of
    pixels. A briefly trained head is what gives the logits a trained model's margins."""
    head = model.layer6
    labels = targets.reshape(-1)
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-3)
    for _ in range(steps):
        pick = torch.randint(len(labels), (pixels_per_step,), generator=generator)
        context = _pixel_column(head.upsampled_context(inputs.context, inputs.low_level.shape[2:]), pick)
        fused = torch.cat([context, head.conv2(_pixel_column(inputs.low_level, pick))], dim=1)
        logits = head.conv4(head.conv3(fused))[0, :, :, 0].T
        loss = F.cross_entropy(logits, labels[pick], label_smoothing=LABEL_SMOOTHING)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    head.zero_grad(set_to_none=True)


def make_demo_model(num_classes: int = 19, seed: int = 0, input_size: int = 321,
                    image_paths: Sequence[Path] | None = None, gate: float = 0.5,
                    residual_scale: float = RESIDUAL_SCALE, fit_steps: int = FIT_STEPS) -> DML_CSR:
    """The deploy-build DML-CSR with seeded weights fitted to real photos (see module doc).

    Deterministic for a given seed, size and photo set. Fitted at ``input_size``: use it
    at that size (its regions are the photos' at that scale).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = DML_CSR(num_classes, trained=False)
    with torch.no_grad():
        model.context.dualgcn.gamma1.fill_(gate)
        model.context.dualgcn.gcn_local_attention.gamma.fill_(gate)
        for block in model.modules():
            if isinstance(block, Bottleneck):
                block.bn3.weight.mul_(residual_scale)
    images = preprocess_whole_images(image_paths or example_face_paths(), (input_size, input_size))
    _recalibrate_norms(model, images)
    inputs = _head_inputs(model, images)
    _redraw_classifier(model, inputs.features, generator, sharpness=0.01)
    if fit_steps:
        with torch.no_grad():
            raw = model.layer6.conv4(inputs.features)
        targets = region_labels(raw, sigma=REGION_SIGMA * raw.shape[-1])
        with torch.enable_grad():
            _fit_head(model, inputs, targets, fit_steps, generator)
    return model.eval()
