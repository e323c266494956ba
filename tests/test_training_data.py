"""Dataset layouts, label merging, augmentation and training samples."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from support.training import SYNTHETIC_NAMES, write_synthetic_faces

from dmlcsr.core import geometry
from dmlcsr.core.labels import CELEBAMASK_HQ, HELEN, LAPA
from dmlcsr.errors import DmlcsrError
from dmlcsr.training.augment import AugmentConfig, augment, mirror, random_crop
from dmlcsr.training.datasets import label_set_from_names, open_index, read_labels, read_sample
from dmlcsr.training.edges import edge_maps
from dmlcsr.training.samples import EvaluationSet, TrainingSet


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return write_synthetic_faces(tmp_path_factory.mktemp("faces"), {"train": 4, "test": 2}, size=48)


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), array)


def test_official_list_layout(synthetic):
    index = open_index(synthetic, "train")
    assert index.layout == "list" and len(index) == 4
    assert index.label_set.names == SYNTHETIC_NAMES
    assert index.label_set.flip_pairs == ((2, 3),)  # l_eye / r_eye paired from the names
    image, labels = read_sample(index.records[0], index.label_set.num_classes)
    assert image.shape[:2] == labels.shape and set(np.unique(labels)) <= set(range(6))


def test_list_layout_errors_name_the_file(synthetic, tmp_path):
    broken = tmp_path / "broken"
    (broken / "train" / "images").mkdir(parents=True)
    (broken / "train_list.txt").write_text("images/missing.jpg labels/missing.png\n")
    with pytest.raises(DmlcsrError, match="images/missing.jpg not found"):
        open_index(broken, "train")
    index = open_index(synthetic, "train")
    record = index.records[0]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DmlcsrError, match="bad.png is not a readable PNG"):
        read_labels(type(record)(record.name, record.image, (bad,)), 6)
    with pytest.raises(DmlcsrError, match="hold class 5 but the dataset has 3 classes"):
        read_labels(record, 3)
    with pytest.raises(DmlcsrError, match="has 6 classes, not 19"):
        open_index(synthetic, "train", num_classes=19)
    with pytest.raises(DmlcsrError, match="no known layout"):
        open_index(tmp_path, "train")


def test_label_names_files_map_to_the_official_sets():
    helen_short = "bg face lb rb le re nose ulip imouth llip hair".split()
    assert label_set_from_names(helen_short).names == HELEN.names
    assert label_set_from_names(list(LAPA.names)) is LAPA
    assert label_set_from_names(list(CELEBAMASK_HQ.names)) is CELEBAMASK_HQ


def test_celebamask_hq_parts_merge_in_official_order_and_split_as_celeba(tmp_path):
    root = tmp_path / "CelebAMask-HQ"
    (root / "CelebA-HQ-img").mkdir(parents=True)
    # CelebA numbers 1-162770 are train, 162771-182637 val, the rest test
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text(
        "idx orig_idx orig_file\n0 4 000005.jpg\n1 170000 170001.jpg\n2 190000 190001.jpg\n")
    for i in range(3):
        cv2.imwrite(str(root / "CelebA-HQ-img" / f"{i}.jpg"), np.full((64, 64, 3), 128, np.uint8))
    skin, hair, l_eye = (np.zeros((32, 32), np.uint8) for _ in range(3))
    skin[4:28, 4:28] = 255
    hair[0:10, :] = 255  # overlaps skin: hair (13) comes later and wins
    l_eye[12:14, 8:12] = 255
    anno = root / "CelebAMask-HQ-mask-anno" / "0"
    for name, mask in (("skin", skin), ("hair", hair), ("l_eye", l_eye)):
        _png(anno / f"00000_{name}.png", mask)
    train = open_index(root, "train")
    assert train.layout == "celebamask-hq" and [r.name for r in train.records] == ["0"]
    assert [r.name for r in open_index(root, "val").records] == ["1"]
    assert [r.name for r in open_index(root, "test").records] == ["2"]
    image, labels = read_sample(train.records[0], 19)
    assert image.shape == (32, 32, 3)  # resized to the masks
    expected = np.zeros((32, 32), np.uint8)
    expected[4:28, 4:28] = CELEBAMASK_HQ.names.index("skin")
    expected[12:14, 8:12] = CELEBAMASK_HQ.names.index("l_eye")
    expected[0:10, :] = CELEBAMASK_HQ.names.index("hair")
    np.testing.assert_array_equal(labels, expected)


def test_lapa_layout(tmp_path):
    labels = np.zeros((20, 30), np.uint8)
    labels[5:15, 5:25] = 10
    _png(tmp_path / "test" / "images" / "a.jpg", np.zeros((20, 30, 3), np.uint8))
    _png(tmp_path / "test" / "labels" / "a.png", labels)
    index = open_index(tmp_path, "test")
    assert index.layout == "lapa" and index.label_set is LAPA
    np.testing.assert_array_equal(read_labels(index.records[0], 11), labels)


def test_helen_layout_argmaxes_the_class_masks(tmp_path):
    (tmp_path / "exemplars.txt").write_text("1 , 100_1\n")
    _png(tmp_path / "images" / "100_1.jpg", np.zeros((10, 12, 3), np.uint8))
    expected = np.zeros((10, 12), np.uint8)
    expected[2:8, 3:9] = 1
    expected[4, 4] = 4
    for c in range(11):
        soft = np.where(expected == c, 200, 20).astype(np.uint8)
        _png(tmp_path / "labels" / "100_1" / f"100_1_lbl{c:02d}.png", soft)
    index = open_index(tmp_path, "train")
    assert index.layout == "helen" and index.label_set is HELEN
    np.testing.assert_array_equal(read_labels(index.records[0], 11), expected)
    with pytest.raises(DmlcsrError, match="tuning.txt not found"):
        open_index(tmp_path, "val", layout="helen")


def test_augmentation_follows_the_official_distributions():
    rng = np.random.default_rng(0)
    base = geometry.box_to_crop(geometry.whole_image_box(100, 80), (65, 65))
    crops = [random_crop(100, 80, (65, 65), rng) for _ in range(3000)]
    factors = np.array([c.scale[0] / base.scale[0] for c in crops])
    rotations = np.array([c.rotation for c in crops])
    assert factors.min() >= 0.75 - 1e-6 and factors.max() <= 1.25 + 1e-6 and factors.std() > 0.15
    assert np.abs(rotations).max() <= 60 and abs(np.mean(rotations != 0) - 0.6) < 0.03
    assert all(np.array_equal(c.center, base.center) for c in crops)


def test_augment_warps_labels_nearest_with_ignored_border():
    image = np.random.default_rng(1).integers(0, 255, (40, 50, 3), np.uint8)
    labels = np.random.default_rng(2).integers(0, 6, (40, 50)).astype(np.uint8)
    off = AugmentConfig(enabled=False)
    plain, plain_labels = augment(image, labels, (33, 33), np.random.default_rng(0), off)
    crop = geometry.box_to_crop(geometry.whole_image_box(40, 50), (33, 33))
    np.testing.assert_array_equal(plain, geometry.warp_to_input(image, crop, (33, 33)))
    rng = np.random.default_rng(3)
    for _ in range(10):
        _, warped = augment(image, labels, (33, 33), rng)
        assert set(np.unique(warped)) <= set(range(6)) | {255}  # nearest: no blended ids
    assert (plain_labels == 255).any()  # 40 x 50 widened to a square: bands outside the image


def test_mirror_swaps_left_and_right_classes():
    image = np.arange(12, dtype=np.uint8).reshape(1, 4, 3)
    labels = np.array([[1, 2, 0, 3]], np.uint8)
    flipped_image, flipped = mirror(image, labels, ((2, 3),))
    np.testing.assert_array_equal(flipped, [[2, 0, 3, 1]])  # reversed [3, 0, 2, 1], then 2 <-> 3
    np.testing.assert_array_equal(flipped_image, image[:, ::-1])


def test_training_samples_are_reproducible_and_carry_matching_edges(synthetic):
    index = open_index(synthetic, "train")
    dataset = TrainingSet(index, (33, 33), seed=7)
    image, labels, binary, category = dataset[1]
    assert image.shape == (3, 33, 33) and labels.shape == binary.shape == category.shape == (33, 33)
    assert all(np.array_equal(a, b) for a, b in zip((image, labels), dataset[1][:2], strict=True))
    expected_binary, expected_category = edge_maps(labels.numpy())
    np.testing.assert_array_equal(binary.numpy(), expected_binary)
    np.testing.assert_array_equal(category.numpy(), expected_category)
    dataset.set_epoch(1)
    assert not np.array_equal(dataset[1][1], labels)  # a new epoch draws a new crop


def test_evaluation_samples_keep_original_size_ground_truth(synthetic):
    index = open_index(synthetic, "test")
    crop_image, sample = EvaluationSet(index, (33, 33))[0]
    _, labels = read_sample(index.records[0], 6)
    assert crop_image.shape == (33, 33, 3)
    np.testing.assert_array_equal(sample.ground_truth, labels)
    assert sample.crop.rotation == 0
