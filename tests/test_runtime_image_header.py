"""Image sizes read from file headers: what cv2.imdecode would give, or None, and never an exception."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from dmlcsr.runtime.image_header import header_size

_RNG = np.random.default_rng(0)


def _image(height: int, width: int, channels: int = 3, dtype: type = np.uint8) -> np.ndarray:
    """Random pixels, so the encoders cannot shortcut a flat image."""
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype == np.float32:
        return _RNG.random(shape, dtype=np.float32)
    return _RNG.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


# (height, width, channels): non-square, a row, a column, a VGA frame, grayscale
_SHAPES = [(53, 37, 3), (1, 300, 3), (300, 1, 3), (480, 640, 3), (45, 61, 1)]
_FORMATS = [".png", ".jpg", ".bmp", ".webp", ".tif", ".ppm", ".pgm", ".gif"]
# (suffix, height, width, channels, dtype, imencode params); PPM takes colour only, PGM gray only
_CASES = [(suffix, *shape, np.uint8, ()) for suffix in _FORMATS for shape in _SHAPES
          if not (suffix == ".ppm" and shape[2] == 1)]
_CASES += [
    (".jpg", 53, 37, 3, np.uint8, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),  # SOF2
    (".jpg", 53, 37, 3, np.uint8, (cv2.IMWRITE_JPEG_OPTIMIZE, 1)),
    (".png", 53, 37, 1, np.uint16, ()),
    (".png", 53, 37, 4, np.uint8, ()),
    (".webp", 53, 37, 3, np.uint8, (cv2.IMWRITE_WEBP_QUALITY, 80)),  # lossy: VP8
    (".webp", 53, 37, 4, np.uint8, (cv2.IMWRITE_WEBP_QUALITY, 80)),  # lossy with alpha: VP8X
    (".webp", 53, 37, 3, np.uint8, (cv2.IMWRITE_WEBP_QUALITY, 101)),  # lossless: VP8L
    (".tif", 53, 37, 3, np.float32, ()),
    (".tif", 53, 37, 1, np.uint16, ()),
    (".ppm", 53, 37, 3, np.uint8, (cv2.IMWRITE_PXM_BINARY, 0)),  # P3, ASCII
    (".pbm", 53, 37, 1, np.uint8, ()),
    (".pam", 53, 37, 3, np.uint8, ()),
    (".pam", 53, 37, 1, np.uint8, ()),
    (".pfm", 53, 37, 3, np.float32, ()),
    (".pfm", 53, 37, 1, np.float32, ()),
    (".hdr", 53, 37, 3, np.float32, ()),
    (".sr", 53, 37, 3, np.uint8, ()),
    (".jp2", 53, 37, 3, np.uint8, ()),
    (".jp2", 480, 640, 3, np.uint8, ()),
    (".avif", 53, 37, 3, np.uint8, ()),
    (".avif", 1, 300, 3, np.uint8, ()),
    (".avif", 53, 37, 4, np.uint8, ()),
]
# encoders this OpenCV build may lack, or that refuse some shapes (GIF: no grayscale; JPEG 2000:
# no side too short for its resolution levels): such a case is skipped, not failed
_OPTIONAL = {".gif", ".jp2", ".avif", ".hdr", ".sr", ".pfm", ".pam", ".pbm"}


def _case_id(case: tuple) -> str:
    suffix, height, width, channels, dtype, params = case
    name = f"{suffix[1:]}-{width}x{height}x{channels}-{np.dtype(dtype).name}"
    return name + "".join(f"-{param}" for param in params)


def _encode(suffix: str, image: np.ndarray, params: tuple = ()) -> bytes | None:
    try:
        ok, buffer = cv2.imencode(suffix, image, list(params))
    except cv2.error:
        return None
    return buffer.tobytes() if ok else None


@pytest.fixture(scope="module", params=_CASES, ids=_case_id)
def encoded(request) -> tuple[bytes, tuple[int, int]]:
    """(file bytes, (width, height)) of one case."""
    suffix, height, width, channels, dtype, params = request.param
    image = _image(height, width, 1 if suffix in (".pgm", ".pbm") else channels, dtype)
    data = _encode(suffix, image, params)
    if data is None:
        if suffix in _OPTIONAL:
            pytest.skip(f"this OpenCV cannot encode {_case_id(request.param)}")
        pytest.fail(f"cv2.imencode failed for {_case_id(request.param)}")
    return data, (width, height)


def _decoded_size(data: bytes) -> tuple[int, int] | None:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    return None if image is None else (image.shape[1], image.shape[0])


def _is_size_or_none(result: object) -> bool:
    return result is None or (isinstance(result, tuple) and len(result) == 2
                              and all(isinstance(side, int) and side > 0 for side in result))


def test_encoded_files_give_their_exact_size(encoded):
    data, size = encoded
    assert header_size(data) == size
    assert _decoded_size(data) == size  # what the decoder would allocate


def test_truncated_files_never_raise_and_never_give_a_wrong_size(encoded):
    data, size = encoded
    for length in [*range(41), len(data) // 2]:
        assert header_size(data[:length]) in (None, size), length


def test_corrupted_headers_never_raise(encoded):
    data, _ = encoded
    rng = np.random.default_rng(len(data))
    for _ in range(50):
        garbled = bytearray(data[:1024])
        positions = rng.integers(0, min(len(garbled), 300), 3)
        garbled[positions[0]] ^= 0xFF
        garbled[positions[1]] = int(rng.integers(0, 256))
        garbled[positions[2]] = 0xFF
        assert _is_size_or_none(header_size(bytes(garbled)))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def test_png_claiming_100000_by_100000_is_read_without_decoding():
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 300_000, 9)  # a few rows of zeros; the rest is missing
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")
    assert len(data) < 1000
    assert header_size(data) == (100_000, 100_000)


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return _encode(".jpg", _image(53, 37))


def test_jpeg_exif_segment_with_a_thumbnail_frame_is_skipped(jpeg):
    # an APP1 segment before the frame, holding a thumbnail with its own (16x32) start-of-frame
    thumbnail = b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x10\x00\x20\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01\xff\xd9"
    exif = b"Exif\x00\x00" + b"II*\x00\x08\x00\x00\x00" + b"\x00\x00\x00\x00\x00\x00" + thumbnail
    data = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", 2 + len(exif)) + exif + jpeg[2:]
    assert header_size(data) == (37, 53)
    assert _decoded_size(data) == (37, 53)


def test_jpeg_fill_bytes_and_stray_bytes_between_segments_are_stepped_over(jpeg):
    # fill bytes before APP0, and 3 stray bytes after it (libjpeg skips them with a warning)
    app0_end = 4 + struct.unpack_from(">H", jpeg, 4)[0]
    data = jpeg[:2] + b"\xff\xff\xff" + jpeg[2:app0_end] + b"\x00\x12\x34" + jpeg[app0_end:]
    assert header_size(data) == (37, 53)
    assert _decoded_size(data) == (37, 53)


def test_jpeg_without_a_frame_before_its_scan_or_with_height_zero_gives_none(jpeg):
    sof = jpeg.index(b"\xff\xc0")
    assert header_size(jpeg[:sof] + b"\xff\xda\x00\x02" + jpeg[sof:]) is None  # scan before frame
    assert header_size(jpeg[:sof + 5] + b"\x00\x00" + jpeg[sof + 7:]) is None  # height from a DNL marker
    assert header_size(b"\xff\xd8\xff\xd9") is None


def test_top_down_bmp_gives_a_positive_height():
    data = bytearray(_encode(".bmp", _image(53, 37)))
    (height,) = struct.unpack_from("<i", data, 22)
    struct.pack_into("<i", data, 22, -height)
    assert header_size(bytes(data)) == (37, 53)
    assert _decoded_size(bytes(data)) == (37, 53)


def test_os2_bmp_core_header_gives_its_16_bit_size():
    width, height = 37, 53
    row = (width * 3 + 3) // 4 * 4
    pixels = bytes(row * height)
    data = (b"BM" + struct.pack("<IHHI", 26 + len(pixels), 0, 0, 26)
            + struct.pack("<IHHHH", 12, width, height, 1, 24) + pixels)
    assert header_size(data) == (width, height)
    assert _decoded_size(data) == (width, height)


def _tiff(order: str, width: int, height: int, size_type: int, big: bool = False) -> bytes:
    """An uncompressed 8-bit grayscale TIFF (or BigTIFF) in one strip, with its sizes as ``size_type``."""
    pixels = bytes(range(256)) * (width * height // 256 + 1)
    pixels = pixels[:width * height]
    tags = [(256, size_type, width), (257, size_type, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
            (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, len(pixels))]
    formats = {3: "H", 4: "I", 16: "Q"}
    count_format, field_format, value_size = ("Q", "Q", 8) if big else ("H", "I", 4)
    header = b"II" if order == "<" else b"MM"
    header += struct.pack(order + "HHHQ", 43, 8, 0, 16) if big else struct.pack(order + "HI", 42, 8)
    ifd_size = struct.calcsize(order + count_format) + len(tags) * (4 + 2 * value_size) + value_size
    strip_offset = len(header) + ifd_size
    ifd = struct.pack(order + count_format, len(tags))
    for tag, kind, value in tags:
        value = strip_offset if tag == 273 else value
        field = struct.pack(order + formats[kind], value).ljust(value_size, b"\x00")
        ifd += struct.pack(order + "HH" + field_format, tag, kind, 1) + field
    ifd += bytes(value_size)  # no next IFD
    return header + ifd + pixels


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("size_type", [3, 4], ids=["SHORT", "LONG"])
def test_tiff_either_byte_order_and_size_type(order, size_type):
    data = _tiff(order, 37, 53, size_type)
    assert header_size(data) == (37, 53)
    assert _decoded_size(data) == (37, 53)


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("size_type", [3, 4, 16], ids=["SHORT", "LONG", "LONG8"])
def test_bigtiff(order, size_type):
    data = _tiff(order, 37, 53, size_type, big=True)
    assert header_size(data) == (37, 53)
    assert _decoded_size(data) == (37, 53)


def test_pnm_comments_and_whitespace_anywhere_in_the_header():
    data = b"P5\n# written by hand\n  37 # width\n\t53 \n# maxval next\n255\n" + bytes(37 * 53)
    assert header_size(data) == (37, 53)
    assert _decoded_size(data) == (37, 53)


def test_pnm_number_cut_off_by_the_end_of_the_data_gives_none():
    assert header_size(b"P6\n640 48") is None  # could be 480, or 4800
    assert header_size(b"P6\n640 480\n") == (640, 480)
    assert header_size(b"P6 640 480x") is None
    assert header_size(b"P8\n640 480\n") is None


def test_raw_jpeg_2000_codestream():
    jp2 = _encode(".jp2", _image(480, 640))
    if jp2 is None:
        pytest.skip("this OpenCV cannot encode JPEG 2000")
    codestream = jp2[jp2.index(b"jp2c") + 4:]
    assert codestream[:4] == b"\xff\x4f\xff\x51"
    assert header_size(codestream) == (640, 480)


def test_text_empty_and_unknown_formats_give_none(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("width 640, height 480\nnot an image at all\n")
    assert header_size(text.read_bytes()) is None
    assert header_size(b"") is None
    assert header_size(b"\x76\x2f\x31\x01" + bytes(100)) is None  # OpenEXR: not read here


def test_random_bytes_never_raise():
    rng = np.random.default_rng(1234)
    for _ in range(200):
        data = rng.integers(0, 256, int(rng.integers(0, 2000)), dtype=np.uint8).tobytes()
        assert _is_size_or_none(header_size(data))


_MAGICS = [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"\xff\xd8", b"\xff\xd8\xff", b"BM", b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBP", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"RIFF\x00\x00\x00\x00WEBPVP8L",
    b"RIFF\x00\x00\x00\x00WEBPVP8X", b"II*\x00", b"MM\x00*", b"II+\x00\x08\x00\x00\x00", b"MM\x00+\x00\x08\x00\x00",
    b"P6\n", b"P7\n", b"Pf\n", b"#?RADIANCE\n", b"\x59\xa6\x6a\x95", b"\x00\x00\x00\x0cjP  \r\n\x87\n",
    b"\xff\x4f\xff\x51", b"\x00\x00\x00\x18ftypavif",
]


@pytest.mark.parametrize("magic", _MAGICS, ids=lambda magic: magic[:12].hex())
def test_random_bytes_behind_a_real_signature_never_raise(magic):
    rng = np.random.default_rng(len(magic))
    for _ in range(100):
        tail = rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
        assert _is_size_or_none(header_size(magic + tail))
        # small values make offsets and lengths land inside the data, reaching deeper paths
        small = rng.integers(0, 24, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
        assert _is_size_or_none(header_size(magic + small))
