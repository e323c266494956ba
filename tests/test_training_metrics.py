"""The official scores on hand-computed confusion matrices."""

import math

import numpy as np
import pytest

from dmlcsr.core import geometry
from dmlcsr.core.labels import HELEN, LabelSet
from dmlcsr.training.metrics import confusion_matrix, labels_at_original_size, scores_from_confusion

THREE = LabelSet("three", ("background", "a", "b"), ())


def test_confusion_matrix_rows_are_ground_truth_and_ignore_is_dropped():
    gt = np.array([0, 0, 0, 1, 1, 2, 2, 2, 255])
    pred = np.array([0, 0, 1, 1, 1, 2, 0, 2, 2])
    hist = confusion_matrix(gt, pred, 3)
    np.testing.assert_array_equal(hist, [[2, 1, 0],
                                         [0, 2, 0],
                                         [1, 0, 2]])


def test_scores_by_hand():
    hist = np.array([[2, 1, 0], [0, 2, 0], [1, 0, 2]])
    s = scores_from_confusion(hist, THREE)
    # IoU = tp / (gt + pred - tp): 2/(3+3-2), 2/(2+3-2), 2/(3+2-2)
    assert s.iou == pytest.approx({"background": 0.5, "a": 2 / 3, "b": 2 / 3})
    assert s.mean_iou == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)
    # F1 = 2 tp / (gt + pred): 4/6, 4/5, 4/5; the mean leaves background out
    assert s.f1 == pytest.approx({"background": 2 / 3, "a": 0.8, "b": 0.8})
    assert s.mean_f1 == pytest.approx(0.8)
    assert s.pixel_accuracy == pytest.approx(6 / 8)
    assert s.mean_accuracy == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    assert s.overall_f1 is None and s.merged_f1 == {}


def test_absent_class_counts_zero_in_miou_and_is_skipped_in_mean_f1():
    four = LabelSet("four", ("background", "a", "b", "c"), ())
    hist = np.zeros((4, 4), np.int64)
    hist[:3, :3] = [[2, 1, 0], [0, 2, 0], [1, 0, 2]]
    s = scores_from_confusion(hist, four)
    assert s.iou["c"] == 0.0  # as the official tp / max(1, ...)
    assert s.mean_iou == pytest.approx((0.5 + 2 / 3 + 2 / 3 + 0) / 4)
    assert math.isnan(s.f1["c"]) and s.mean_f1 == pytest.approx(0.8)


def test_helen_merged_f1_forgives_left_right_and_lip_confusions():
    idx = {n: i for i, n in enumerate(HELEN.names)}
    pairs = ([("background", "background")] * 10 + [("skin", "skin")] * 10
             + [("l_eye", "r_eye")] * 10 + [("r_eye", "r_eye")] * 10
             + [("nose", "nose")] * 5 + [("nose", "skin")] * 5
             + [("u_lip", "mouth")] * 10 + [("l_brow", "l_brow")] * 10)
    gt = np.array([idx[g] for g, _ in pairs])
    pred = np.array([idx[p] for _, p in pairs])
    s = scores_from_confusion(confusion_matrix(gt, pred, HELEN.num_classes), HELEN)
    assert s.f1["l_eye"] == 0.0 and s.f1["r_eye"] == pytest.approx(2 * 10 / (10 + 20))
    assert s.merged_f1["eyes"] == pytest.approx(1.0)
    assert s.merged_f1["mouth"] == pytest.approx(1.0)  # upper lip taken for inner mouth
    assert s.merged_f1["nose"] == pytest.approx(2 * 5 / (10 + 5))
    assert s.merged_f1["brows"] == pytest.approx(1.0)
    # members brows+eyes+nose+mouth: gt 10+20+10+10 = 50, predicted 10+20+5+10 = 45, both 45
    assert s.overall_f1 == pytest.approx(2 * 45 / (50 + 45))
    assert math.isnan(s.f1["hair"])  # absent on both sides


def test_original_size_restore_and_official_center_truncation():
    stripes = np.tile(np.arange(8, dtype=np.uint8), (8, 1))  # labels at an 8 x 8 input
    for size, shifts in (((6, 6), True), ((7, 7), False)):
        crop = geometry.box_to_crop(geometry.whole_image_box(*size), (8, 8))
        exact = labels_at_original_size(stripes, crop, size, (8, 8))
        truncated = labels_at_original_size(stripes, crop, size, (8, 8), official_center_truncation=True)
        assert exact.shape == size
        # centre (w - 1) / 2 = 2.5 is truncated to 2 by test.py's int32 array; 3.0 is not
        assert (not np.array_equal(exact, truncated)) == shifts


def test_shape_and_class_checks():
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)
    with pytest.raises(ValueError, match="for 3 classes"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
