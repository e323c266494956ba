"""Reading and checking images: what the official cv2.imread(IMREAD_COLOR) gives, or a clear error."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.images import as_bgr, jpeg_is_complete, load_image, read_image


@pytest.fixture(scope="module")
def face(face_paths) -> np.ndarray:
    return cv2.imread(str(next(p for p in face_paths if p.name == "astronaut.png")), cv2.IMREAD_COLOR)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_real_photos_load_exactly_as_cv2_imread(face_paths):
    for path in face_paths:
        assert np.array_equal(load_image(path), cv2.imread(str(path), cv2.IMREAD_COLOR))
        assert np.array_equal(load_image(str(path)), cv2.imread(str(path), cv2.IMREAD_COLOR))


def test_missing_empty_garbage_and_folder_are_refused(tmp_path):
    with pytest.raises(DmlcsrError, match="image not found") as exc:
        read_image(tmp_path / "nope.jpg")
    _one_line(exc)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DmlcsrError, match="empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "text.jpg").write_bytes(b"not an image at all" * 20)
    with pytest.raises(DmlcsrError, match="not a readable image"):
        read_image(tmp_path / "text.jpg")
    with pytest.raises(DmlcsrError, match="not a file"):
        read_image(tmp_path)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".bmp"])
def test_truncated_files_are_refused(tmp_path, face, suffix):
    data = cv2.imencode(suffix, face)[1].tobytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(DmlcsrError, match="truncated|not a readable image") as exc:
        read_image(path)
    _one_line(exc)


def test_truncated_jpeg_behind_an_exif_thumbnail_is_still_caught(face):
    """A thumbnail inside APP1 has its own start-of-scan and end-of-image markers: the
    check must skip the segment by its length, not find the thumbnail's FF D9."""
    main = cv2.imencode(".jpg", face)[1].tobytes()
    thumbnail = cv2.imencode(".jpg", cv2.resize(face, (32, 32)))[1].tobytes()
    payload = b"Exif\x00\x00" + thumbnail
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    whole = main[:2] + app1 + main[2:]
    assert jpeg_is_complete(whole)
    assert b"\xff\xd9" in whole[:len(whole) // 2]  # the thumbnail's end marker sits in the first half
    assert not jpeg_is_complete(whole[:len(whole) // 2])
    # the complete file still decodes like cv2 decodes it
    assert cv2.imdecode(np.frombuffer(whole, np.uint8), cv2.IMREAD_COLOR).shape == face.shape


def test_grayscale_rgba_and_16_bit_files_match_cv2_imread(tmp_path, face):
    gray = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    rgba = np.dstack([face, np.linspace(0, 255, face.shape[1], dtype=np.uint8)[None].repeat(face.shape[0], 0)])
    deep = face.astype(np.uint16) * 257 + 91
    for name, array in (("gray.png", gray), ("gray.jpg", gray), ("rgba.png", rgba), ("deep.png", deep)):
        path = tmp_path / name
        cv2.imwrite(str(path), array)
        from_file = read_image(path)
        assert from_file.shape == (*face.shape[:2], 3) and from_file.dtype == np.uint8
        assert np.array_equal(from_file, cv2.imread(str(path), cv2.IMREAD_COLOR)), name
        # the array a user holds converts to the very same image
        held = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(as_bgr(held), from_file), name


def test_arrays_convert_like_files_and_bad_arrays_are_refused(face):
    assert as_bgr(face) is face  # already BGR uint8, contiguous: no copy
    assert np.array_equal(as_bgr(face[:, :, :1]), np.repeat(face[:, :, :1], 3, axis=2))
    assert np.array_equal(as_bgr(np.dstack([face, face[:, :, :1]])), face)
    assert np.array_equal(as_bgr(face[:, ::-1]), face[:, ::-1])  # non-contiguous views are fine
    for bad, pattern in ((face.astype(np.float32) / 255, "dtype float32"), (face.astype(np.int16), "dtype int16"),
                         (face[None], "shape"), (face[:, :, :2], "shape"), (face[:1], "1 pixels")):
        with pytest.raises(DmlcsrError, match=pattern) as exc:
            as_bgr(bad)
        _one_line(exc)
    with pytest.raises(DmlcsrError, match="pass a path or a numpy"):
        load_image([[1, 2], [3, 4]])


def test_huge_images_are_refused_with_the_limit_named(face):
    with pytest.raises(DmlcsrError, match="above the 0 MP limit"):
        load_image(face, max_pixels=100_000)
    assert load_image(face, max_pixels=face.shape[0] * face.shape[1]).shape == face.shape
