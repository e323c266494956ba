"""Edge labels on hand-made label maps: the 4-neighbour rule, ignored pixels, categories."""

import numpy as np
import pytest

from dmlcsr.training.edges import binary_edges, category_edges, edge_maps

I = 255  # noqa: E741 - ignore label, short to keep the maps readable


def test_square_marks_both_sides_but_not_diagonal_corners():
    labels = np.array([[0, 0, 0, 0],
                       [0, 1, 1, 0],
                       [0, 1, 1, 0],
                       [0, 0, 0, 0]], np.uint8)
    expected = np.array([[0, 1, 1, 0],   # corners touch the square only diagonally
                         [1, 1, 1, 1],
                         [1, 1, 1, 1],
                         [0, 1, 1, 0]], np.uint8)
    np.testing.assert_array_equal(binary_edges(labels), expected)
    np.testing.assert_array_equal(category_edges(labels), labels)  # background edges read 0


def test_three_classes_with_ignored_pixels():
    labels = np.array([[2, 2, 0, 0, 0],
                       [2, 2, 0, 1, 0],
                       [0, 0, 0, 1, 0],
                       [I, I, 0, 0, 0]], np.uint8)
    # worked by hand: a pixel is an edge when an up/down/left/right neighbour that is not
    # ignored has another label; (3, 2) borders only ignored pixels and 0s, so it is not.
    binary = np.array([[0, 1, 1, 1, 0],
                       [1, 1, 1, 1, 1],
                       [1, 1, 1, 1, 1],
                       [I, I, 0, 1, 0]], np.uint8)
    category = np.array([[0, 2, 0, 0, 0],
                         [2, 2, 0, 1, 0],
                         [0, 0, 0, 1, 0],
                         [I, I, 0, 0, 0]], np.uint8)
    got_binary, got_category = edge_maps(labels)
    np.testing.assert_array_equal(got_binary, binary)
    np.testing.assert_array_equal(got_category, category)


def test_uniform_map_has_no_edges_and_image_border_is_not_an_edge():
    labels = np.full((5, 7), 3, np.uint8)
    assert binary_edges(labels).sum() == 0
    assert category_edges(labels).sum() == 0


def test_one_pixel_region_is_a_plus_shape():
    labels = np.zeros((5, 5), np.uint8)
    labels[2, 2] = 4
    edges = binary_edges(labels)
    assert {tuple(p) for p in np.argwhere(edges == 1)} == {(2, 2), (1, 2), (3, 2), (2, 1), (2, 3)}
    assert category_edges(labels)[2, 2] == 4 and category_edges(labels).sum() == 4


def test_rejects_batches():
    with pytest.raises(ValueError, match="one H x W"):
        binary_edges(np.zeros((2, 4, 4), np.uint8))
