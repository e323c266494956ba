"""DML-CSR's training objective (paper Sec. 3, Eq. 1-5 and 7).

    L = l0 * (CE + Lovasz)(parsing)                      parsing
      + l1 * WCE(binary edge) + l2 * WCE(category edge)  the two edge tasks
      + l3 * Att_binary + l4 * Att_category              edge-attention on the parsing
    with (l0..l4) = (1, 1, 1, 4, 1).

During cyclical self-regulation (cycle m >= 1) each supervised cross-entropy term is
replaced by a KL divergence to a soft target from the aggregated model (Eq. 7), weighted
alpha = (1, 1, 0.1) for parsing, binary edge, category edge; Lovasz and the attention
terms keep the hard labels. Every prediction is upsampled (bilinear, align_corners=True)
to the label size first, as officially.

Where the released criterion.py differs from the paper we follow the paper and say so:
- parsing is CE + Lovasz (the release halves both, then doubles the sum twice: 2x);
- the category-edge attention averages the parsing CE over category-edge pixels (the
  release multiplies by the class id, which weights hair edges 13x more than skin's);
- category-edge class weights balance classes like the binary ones, w_k = 1 - n_k / n
  (the release uses n_k / n, which for two classes is the reverse of its own binary rule);
- the soft parsing target is built from the teacher's parsing logits (the release
  reads the category-edge labels there, which cannot run).
The soft target itself is the official (and SCHP's) mix of teacher LOGITS with the
one-hot labels, (1 - a) * logits + a * one_hot, a = 1 / (m + 1), then softened.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_LABEL = 255


@dataclass(frozen=True)
class LossWeights:
    """lambda0..4 of the paper: parsing, binary edge, category edge, the two attentions."""

    parsing: float = 1.0
    binary_edge: float = 1.0
    category_edge: float = 1.0
    binary_attention: float = 4.0
    category_attention: float = 1.0


@dataclass(frozen=True)
class DistillWeights:
    """alpha of Eq. 7: KL weights for parsing, binary edge and category edge."""

    parsing: float = 1.0
    binary_edge: float = 1.0
    category_edge: float = 0.1


def _lovasz_gradient(fg_sorted: torch.Tensor) -> torch.Tensor:
    """Increments of the Jaccard loss along pixels sorted by decreasing error (Alg. 1)."""
    total = fg_sorted.sum()
    intersection = total - fg_sorted.cumsum(0)
    union = total + (1.0 - fg_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz_softmax(probs: torch.Tensor, labels: torch.Tensor, ignore: int = IGNORE_LABEL) -> torch.Tensor:
    """Lovasz-softmax over the batch (Berman et al. 2018), averaged over present classes.

    probs: N x C x H x W class probabilities; labels: N x H x W. With one-hot ``probs`` it
    equals the mean over present classes of 1 - IoU (the Lovasz extension is tight there).
    """
    num_classes = probs.shape[1]
    flat = probs.permute(0, 2, 3, 1).reshape(-1, num_classes)
    labels = labels.reshape(-1)
    valid = labels != ignore
    flat, labels = flat[valid], labels[valid]
    losses = []
    for c in torch.unique(labels).tolist():
        fg = (labels == c).to(flat.dtype)
        errors = (fg - flat[:, c]).abs()
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, _lovasz_gradient(fg[order])))
    if not losses:
        return probs.sum() * 0.0
    return torch.stack(losses).mean()


def balanced_class_weights(labels: torch.Tensor, num_classes: int, ignore: int = IGNORE_LABEL) -> torch.Tensor:
    """w_k = 1 - (share of class k among valid pixels): rare classes (edges) weigh more.

    For two classes this is HED's rule the official binary edge loss uses:
    w_edge = n_non_edge / n, w_non_edge = n_edge / n.
    """
    valid = labels[labels != ignore]
    counts = torch.bincount(valid.reshape(-1).long(), minlength=num_classes)[:num_classes].float()
    return 1.0 - counts / counts.sum().clamp(min=1.0)


def edge_attention_loss(pixel_ce: torch.Tensor, edge_mask: torch.Tensor) -> torch.Tensor:
    """Parsing CE averaged over each image's edge pixels, then over the batch (Eq. 5).

    An image without edge pixels adds 0 (the release would divide by zero there).
    """
    mask = edge_mask.to(pixel_ce.dtype)
    per_image = (pixel_ce * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp(min=1.0)
    return per_image.mean()


def soft_targets(teacher_logits: torch.Tensor, labels: torch.Tensor, cycle: int,
                 ignore: int = IGNORE_LABEL) -> torch.Tensor:
    """Eq. 7's target logits: (1 - a) * teacher + a * one_hot(labels), a = 1 / (cycle + 1)."""
    alpha = 1.0 / (cycle + 1.0)
    one_hot = F.one_hot(torch.where(labels == ignore, 0, labels).long(), teacher_logits.shape[1])
    return (1.0 - alpha) * teacher_logits + alpha * one_hot.permute(0, 3, 1, 2).to(teacher_logits.dtype)


def kl_distillation(student_logits: torch.Tensor, target_logits: torch.Tensor, labels: torch.Tensor,
                    ignore: int = IGNORE_LABEL) -> torch.Tensor:
    """KL(softmax(target) || softmax(student)) per pixel, averaged over non-ignored pixels."""
    valid = (labels != ignore).unsqueeze(1)
    log_student = F.log_softmax(student_logits, dim=1)
    target = F.softmax(target_logits, dim=1)
    per_pixel = (target * (torch.log(target.clamp(min=1e-12)) - log_student)).sum(1, keepdim=True)
    return (per_pixel * valid).sum() / valid.sum().clamp(min=1)


def _upsample(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=True)


class DmlCsrCriterion(nn.Module):
    """The full DML-CSR loss; forward returns (total, {term: detached value}) for logging.

    "parsing" is the CE before self-regulation and the weighted KL during it (likewise the
    two edge terms).
    """

    def __init__(self, num_classes: int, weights: LossWeights = LossWeights(),
                 distill: DistillWeights = DistillWeights(), ignore: int = IGNORE_LABEL) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.weights = weights
        self.distill = distill
        self.ignore = ignore

    def forward(self, preds: tuple[torch.Tensor, torch.Tensor, torch.Tensor], labels: torch.Tensor,
                binary: torch.Tensor, category: torch.Tensor,
                teacher: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                cycle: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        size = tuple(labels.shape[-2:])
        seg, binary_logits, category_logits = (_upsample(p, size) for p in preds)
        labels, binary, category = labels.long(), binary.long(), category.long()
        pixel_ce = F.cross_entropy(seg, labels, ignore_index=self.ignore, reduction="none")
        lovasz = lovasz_softmax(F.softmax(seg, dim=1), labels, self.ignore)
        terms: dict[str, torch.Tensor] = {"lovasz": lovasz}
        if teacher is None:
            valid = (labels != self.ignore).sum().clamp(min=1)
            terms["parsing"] = pixel_ce.sum() / valid
            terms["binary_edge"] = F.cross_entropy(
                binary_logits, binary, balanced_class_weights(binary, 2, self.ignore), ignore_index=self.ignore)
            terms["category_edge"] = F.cross_entropy(
                category_logits, category, balanced_class_weights(category, self.num_classes, self.ignore),
                ignore_index=self.ignore)
        else:
            t_seg, t_binary, t_category = (_upsample(t.detach(), size) for t in teacher)
            terms["parsing"] = self.distill.parsing * kl_distillation(
                seg, soft_targets(t_seg, labels, cycle, self.ignore), labels, self.ignore)
            terms["binary_edge"] = self.distill.binary_edge * kl_distillation(
                binary_logits, soft_targets(t_binary, binary, cycle, self.ignore), labels, self.ignore)
            terms["category_edge"] = self.distill.category_edge * kl_distillation(
                category_logits, soft_targets(t_category, category, cycle, self.ignore), labels, self.ignore)
        terms["binary_attention"] = edge_attention_loss(pixel_ce, binary == 1)
        terms["category_attention"] = edge_attention_loss(pixel_ce, (category > 0) & (category != self.ignore))
        w_parse, w_binary, w_category, w_att_binary, w_att_category = astuple(self.weights)
        total = (w_parse * (terms["parsing"] + terms["lovasz"]) + w_binary * terms["binary_edge"]
                 + w_category * terms["category_edge"] + w_att_binary * terms["binary_attention"]
                 + w_att_category * terms["category_attention"])
        return total, {name: value.detach() for name, value in terms.items()}
