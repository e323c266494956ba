"""The one box and number check that parse, parse_photo, the faces JSON reader and the CLI share."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmlcsr.core.validation import MIN_BOX_SIDE, face_box, finite_number, finite_points, whole_number
from dmlcsr.errors import DmlcsrError

SIZE = (200, 300)  # height, width


def test_good_boxes_come_back_as_floats():
    assert face_box((10, 20, 50, 60), SIZE) == (10.0, 20.0, 50.0, 60.0)
    assert face_box(np.array([-20, -20, 60, 60]), SIZE) == (-20.0, -20.0, 60.0, 60.0)  # partly outside is fine
    assert face_box((1, 2, MIN_BOX_SIDE, MIN_BOX_SIDE), SIZE)[2] == MIN_BOX_SIDE


@pytest.mark.parametrize("box, pattern", [
    ((0, 0, 0, 10), "is empty"), ((0, 0, 10, -5), "is empty"), ((300, 0, 10, 10), "outside the 300x200 image"),
    ((0, -30, 10, 30), "outside"), ((0, 0, np.nan, 10), "NaN or infinite"), ((0, 0, math.inf, 10), "NaN or infinite"),
    ((1e308, 0, 1e308, 10), "beyond 16777216 pixels"), ((1e12, -1e12, 10, 10), "beyond"),
    ((10, 10, 1e-5, 1e-5), "below the 2-pixel minimum"), ((1, 2, 3), "not four numbers"),
    ("10,10,20,20", "not four numbers"), ("1234", "not four numbers"), (None, "not four numbers"),
    ((True, 0, 10, 10), "not four numbers"), ((0, 0, "a", 10), "not four numbers"), ({"x": 1}, "not four numbers"),
])
def test_bad_boxes_get_one_line_that_names_the_problem(box, pattern):
    with pytest.raises(DmlcsrError, match=pattern) as exc:
        face_box(box, SIZE)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("value, pattern", [(math.nan, "finite"), ("x", "not a number"), (True, "not a number"),
                                            (-1, "at least 0"), (None, "not a number"), ("24", "not a number")])
def test_numbers_are_finite_and_in_range(value, pattern):
    with pytest.raises(DmlcsrError, match=pattern):
        finite_number(value, "--min-face", 0.0)
    assert finite_number(24, "--min-face", 0.0) == 24.0


@pytest.mark.parametrize("value", [2.5, "3", True, 0, -1, None])
def test_whole_numbers_refuse_fractions_bools_and_zero(value):
    with pytest.raises(DmlcsrError, match="whole number of at least 1"):
        whole_number(value, "batch size")
    assert whole_number(np.int64(4), "batch size") == 4


def test_landmarks_must_be_five_finite_pairs():
    assert finite_points([[1, 2]] * 5, 5, "landmarks")[4] == (1.0, 2.0)
    for bad in ([[1, 2]] * 4, [[math.nan, 2]] + [[1, 2]] * 4, [[1e12, 2]] * 5, "abcde", None):
        with pytest.raises(DmlcsrError, match="5 finite"):
            finite_points(bad, 5, "landmarks")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70),
                          st.text(max_size=3), st.none(), st.booleans()), min_size=0, max_size=6))
def test_any_box_is_accepted_only_when_sound(values):
    """Whatever a caller passes: a DmlcsrError, or four finite floats of at least the
    minimum size that overlap the image."""
    try:
        x, y, w, h = face_box(values, SIZE)
    except DmlcsrError as exc:
        assert "\n" not in str(exc)
        return
    assert all(math.isfinite(v) for v in (x, y, w, h)) and min(w, h) >= MIN_BOX_SIDE
    assert x < SIZE[1] and y < SIZE[0] and x + w > 0 and y + h > 0
