"""The DML-CSR losses against hand-computed values and their definitions."""

import pytest
import torch
import torch.nn.functional as F

from dmlcsr.training.losses import (
    DmlCsrCriterion,
    LossWeights,
    balanced_class_weights,
    edge_attention_loss,
    kl_distillation,
    lovasz_softmax,
    soft_targets,
)


def test_lovasz_softmax_by_hand():
    # three pixels, two classes; p(class 1) = 0.9, 0.4, 0.2 and labels 1, 1, 0.
    # class 1: errors |fg - p| = 0.1, 0.6, 0.2 -> sorted 0.6 (fg), 0.2 (bg), 0.1 (fg);
    #   Jaccard loss after each: 1 - 1/2, 1 - 1/3, 1 - 0/3 -> increments 1/2, 1/6, 1/3
    #   loss = 0.6/2 + 0.2/6 + 0.1/3 = 0.366667
    # class 0: errors 0.1, 0.6, 0.2 -> sorted 0.6 (bg), 0.2 (fg), 0.1 (bg);
    #   Jaccard loss 1 - 1/2, 1 - 0/2, 1 - 0/3 -> increments 1/2, 1/2, 0; loss = 0.3 + 0.1 = 0.4
    p1 = torch.tensor([0.9, 0.4, 0.2])
    probs = torch.stack([1 - p1, p1]).view(1, 2, 1, 3)
    labels = torch.tensor([[[1, 1, 0]]])
    assert float(lovasz_softmax(probs, labels)) == pytest.approx((0.366667 + 0.4) / 2, abs=1e-6)


def test_lovasz_equals_one_minus_iou_on_hard_predictions():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (2, 9, 9), generator=generator)
    pred = torch.where(torch.rand(2, 9, 9, generator=generator) < 0.3,
                       torch.randint(0, 4, (2, 9, 9), generator=generator), labels)
    labels[0, 0, :4] = 255  # ignored pixels take no part
    probs = F.one_hot(pred, 4).permute(0, 3, 1, 2).float()
    valid = labels != 255
    ious = []
    for c in torch.unique(labels[valid]).tolist():
        inter = ((labels == c) & (pred == c) & valid).sum()
        union = (((labels == c) | (pred == c)) & valid).sum()
        ious.append(inter / union)
    assert float(lovasz_softmax(probs, labels)) == pytest.approx(1 - float(torch.stack(ious).mean()), abs=1e-6)


def test_balanced_weights_are_hed_for_two_classes():
    labels = torch.tensor([[1, 0, 0, 0, 255]])
    # 1 edge pixel of 4 valid: edge weight = 3/4 (non-edge share), non-edge weight = 1/4
    assert balanced_class_weights(labels, 2).tolist() == pytest.approx([0.25, 0.75])


def test_edge_attention_averages_per_image_over_edge_pixels():
    ce = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]], [[9.0, 9.0], [9.0, 9.0]]])
    mask = torch.tensor([[[1, 0], [0, 1]], [[0, 0], [0, 1]], [[0, 0], [0, 0]]], dtype=torch.bool)
    # image means: (1 + 4) / 2 = 2.5, 8, and 0 for the image without edges; batch mean 3.5
    assert float(edge_attention_loss(ce, mask)) == pytest.approx((2.5 + 8 + 0) / 3)


def test_soft_targets_mix_teacher_logits_with_one_hot():
    teacher = torch.tensor([[[[2.0]], [[4.0]]]])  # 1 x 2 x 1 x 1
    labels = torch.tensor([[[0]]])
    assert torch.equal(soft_targets(teacher, labels, cycle=0), torch.tensor([[[[1.0]], [[0.0]]]]))
    assert soft_targets(teacher, labels, cycle=1).flatten().tolist() == pytest.approx([1.5, 2.0])
    assert soft_targets(teacher, labels, cycle=3).flatten().tolist() == pytest.approx([1.75, 3.0])


def test_kl_distillation_matches_definition_on_valid_pixels():
    generator = torch.Generator().manual_seed(1)
    student = torch.randn(2, 3, 4, 4, generator=generator)
    target = torch.randn(2, 3, 4, 4, generator=generator)
    labels = torch.randint(0, 3, (2, 4, 4), generator=generator)
    labels[1, :2] = 255
    assert float(kl_distillation(target, target, labels)) == pytest.approx(0.0, abs=1e-6)
    valid = (labels != 255).reshape(-1)
    flat = lambda t: t.permute(0, 2, 3, 1).reshape(-1, 3)[valid]  # noqa: E731
    reference = F.kl_div(F.log_softmax(flat(student), 1), F.softmax(flat(target), 1), reduction="batchmean")
    assert float(kl_distillation(student, target, labels)) == pytest.approx(float(reference), rel=1e-5)


def _batch(generator, n=2, c=4, size=16):
    preds = tuple(torch.randn(n, k, size // 4, size // 4, generator=generator, requires_grad=True) for k in (c, 2, c))
    labels = torch.randint(0, c, (n, size, size), generator=generator)
    labels[:, :, :3] = 255
    binary = torch.randint(0, 2, (n, size, size), generator=generator)
    category = binary * labels
    binary[labels == 255] = 255
    category[labels == 255] = 255
    return preds, labels, binary, category


def test_criterion_weights_terms_as_the_paper_and_backpropagates():
    generator = torch.Generator().manual_seed(2)
    preds, labels, binary, category = _batch(generator)
    weights = LossWeights(2.0, 3.0, 5.0, 7.0, 11.0)
    total, terms = DmlCsrCriterion(4, weights)(preds, labels, binary, category)
    expected = (2 * (terms["parsing"] + terms["lovasz"]) + 3 * terms["binary_edge"] + 5 * terms["category_edge"]
                + 7 * terms["binary_attention"] + 11 * terms["category_attention"])
    assert float(total.detach()) == pytest.approx(float(expected), rel=1e-6)
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in preds)


def test_criterion_distils_from_a_teacher_during_cycles():
    generator = torch.Generator().manual_seed(3)
    preds, labels, binary, category = _batch(generator)
    criterion = DmlCsrCriterion(4)
    _, hard = criterion(preds, labels, binary, category)
    # a teacher equal to the student: at cycle m the target is (1 - a) student + a one-hot
    teacher = tuple(p.detach() for p in preds)
    _, soft = criterion(preds, labels, binary, category, teacher, cycle=1)
    assert soft["lovasz"] == hard["lovasz"] and soft["binary_attention"] == hard["binary_attention"]
    assert soft["parsing"] != hard["parsing"] and soft["category_edge"] != hard["category_edge"]
    # Eq. 7 by hand: KL to (1 - a) teacher + a one-hot, alpha = 1 for parsing, 0.1 for categories
    up = lambda t: F.interpolate(t.detach(), size=(16, 16), mode="bilinear", align_corners=True)  # noqa: E731
    parsing = kl_distillation(up(preds[0]), soft_targets(up(teacher[0]), labels, 1), labels)
    categories = kl_distillation(up(preds[2]), soft_targets(up(teacher[2]), category, 1), labels)
    assert soft["parsing"] == pytest.approx(float(parsing), rel=1e-5)
    assert soft["category_edge"] == pytest.approx(0.1 * float(categories), rel=1e-5)
