"""Image width and height read from the file header, without decoding a pixel.

A file can claim any size in a few hundred bytes (a 661-byte PNG saying 100000x100000 makes
cv2.imdecode raise), and an honest 11000x11000 PNG is decoded into 755 MB before a check on the
decoded array can refuse it; reading the declared size first lets the caller refuse before OpenCV
allocates. Pure Python, headers only: PNG, JPEG, BMP, GIF, WebP, TIFF/BigTIFF, PNM/PAM/PFM,
Radiance HDR, Sun raster, JPEG 2000 and AVIF. Anything else, or a header too short or garbled to
say, gives None. The size is as stored, before EXIF rotation (which keeps width * height).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator

Size = tuple[int, int]

# segments, IFD entries or boxes walked before giving up: real headers have tens, and a crafted
# file of millions of tiny segments should not keep Python busy for seconds
_MAX_STEPS = 10_000
# text headers (PNM, PAM, Radiance) are read from this many first bytes: comments past it are not
# from any real writer, and a regex over hundreds of MB of them would take seconds
_MAX_TEXT_HEADER = 1 << 20
# JPEG start-of-frame markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC)
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# a JPEG marker as libjpeg finds one, past stray bytes, fill bytes (FF) and stuffed zeros (FF 00)
_JPEG_MARKER = re.compile(rb"\xff([^\x00\xff])")
# PNM header: whitespace and comments between numbers; a number ends in whitespace or a comment
# (a number the data ends in may be cut short, so it is not taken)
_PNM_SEPARATOR = re.compile(rb"\s*(?:#[^\r\n]*[\r\n]\s*)*")
_PNM_NUMBER = re.compile(rb"(\d{1,10})(?=[\s#])")
_PAM_FIELD = re.compile(rb"^[ \t]*(WIDTH|HEIGHT)[ \t]+(\d{1,10})[ \t]*\r?$", re.MULTILINE)
_HDR_RESOLUTION = re.compile(rb"([-+])([XY]) (\d{1,10}) ([-+])([XY]) (\d{1,10})\r?\n")


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from the file header without decoding pixels, or None when the format is
    not one this reads (or the header is too short/garbled to say)."""
    for offset, magic, reader in _SIGNATURES:
        if data[offset:offset + len(magic)] == magic:
            try:
                size = reader(data)
            except (struct.error, IndexError, ValueError, OverflowError):  # header cut short or out of range
                return None
            if size is None or size[0] <= 0 or size[1] <= 0:
                return None
            return size
    return None


def _png(data: bytes) -> Size | None:
    """The IHDR chunk, which PNG requires first."""
    if data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return width, height


def _jpeg(data: bytes) -> Size | None:
    """The first start-of-frame segment, skipping the others by their length as libjpeg does."""
    pos = 2
    for _ in range(_MAX_STEPS):
        match = _JPEG_MARKER.search(data, pos)  # libjpeg skips stray bytes too (with a warning)
        if match is None:
            return None
        marker = match.group(1)[0]
        pos = match.end()
        if marker in _JPEG_SOF:  # length (2), precision (1), height (2), width (2)
            height, width = struct.unpack_from(">HH", data, pos + 3)
            return width, height  # height 0 (given later by a DNL marker) makes header_size say None
        if marker in (0xD8, 0xD9, 0xDA):  # second SOI, end of image or scan data before any frame
            return None
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: no length
            continue
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            return None
        pos += length
    return None


def _bmp(data: bytes) -> Size | None:
    """BITMAPCOREHEADER (16-bit sizes) or BITMAPINFOHEADER and later (32-bit, height < 0 = top-down)."""
    (info_size,) = struct.unpack_from("<I", data, 14)
    if info_size == 12:
        width, height = struct.unpack_from("<HH", data, 18)
        return width, height
    if info_size < 16:
        return None
    width, height = struct.unpack_from("<ii", data, 18)
    return width, abs(height)


def _gif(data: bytes) -> Size | None:
    """The logical screen descriptor."""
    width, height = struct.unpack_from("<HH", data, 6)
    return width, height


def _webp(data: bytes) -> Size | None:
    """The first chunk: VP8 (lossy), VP8L (lossless) or VP8X (extended, canvas size)."""
    if data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 ":  # frame tag (3), start code (3), 14-bit width and height (2 scale bits each)
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # signature 0x2f, then 14-bit width - 1 and height - 1
        if data[20] != 0x2F:
            return None
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # flags (4), then 24-bit canvas width - 1 and height - 1
        if len(data) < 30:
            return None
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _tiff(data: bytes) -> Size | None:
    """Tags 256 (ImageWidth) and 257 (ImageLength) of the first IFD, classic TIFF or BigTIFF."""
    order = "<" if data[:2] == b"II" else ">"
    (version,) = struct.unpack_from(order + "H", data, 2)
    if version == 42:
        (ifd,) = struct.unpack_from(order + "I", data, 4)
        count_format, count_size, field_size, entry_size = "H", 2, 4, 12
    else:  # 43, BigTIFF: offset size (always 8), zero, 8-byte offset
        offset_size, _, ifd = struct.unpack_from(order + "HHQ", data, 4)
        if offset_size != 8:
            return None
        count_format, count_size, field_size, entry_size = "Q", 8, 8, 20
    if ifd >= len(data):
        return None
    (count,) = struct.unpack_from(order + count_format, data, ifd)
    first = ifd + count_size
    count = min(count, (len(data) - first) // entry_size, _MAX_STEPS)
    # an entry: tag (2), type (2), count (4 or 8), value or offset (4 or 8, the value left-justified)
    value_formats = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8
    sizes: dict[int, int] = {}
    for entry in range(first, first + count * entry_size, entry_size):
        tag, kind = struct.unpack_from(order + "HH", data, entry)
        if tag in (256, 257) and kind in value_formats and tag not in sizes:
            sizes[tag] = struct.unpack_from(order + value_formats[kind], data, entry + 4 + field_size)[0]
            if len(sizes) == 2:
                break
    if 256 not in sizes or 257 not in sizes:
        return None
    return sizes[256], sizes[257]


def _pnm_numbers(data: bytes, pos: int, count: int) -> list[int] | None:
    """The first ``count`` header numbers of a PBM/PGM/PPM/PFM file from ``pos``, or None."""
    numbers = []
    for _ in range(count):
        end = min(len(data), _MAX_TEXT_HEADER)
        match = _PNM_NUMBER.match(data, _PNM_SEPARATOR.match(data, pos, end).end(), end)
        if match is None:
            return None
        numbers.append(int(match.group(1)))
        pos = match.end()
    return numbers


def _pnm(data: bytes) -> Size | None:
    """P1-P6 (and PF/Pf float maps): magic, whitespace, width, height; '#' comments anywhere."""
    if len(data) < 3 or data[1] not in b"123456Ff" or data[2] not in b" \t\n\r\x0b\x0c#":
        return None
    numbers = _pnm_numbers(data, 2, 2)
    return None if numbers is None else (numbers[0], numbers[1])


def _pam(data: bytes) -> Size | None:
    """P7: WIDTH and HEIGHT lines before ENDHDR."""
    end = data.find(b"ENDHDR", 0, _MAX_TEXT_HEADER)
    if end == -1:
        return None
    fields = {name: int(value) for name, value in _PAM_FIELD.findall(data, 3, end)}
    if b"WIDTH" not in fields or b"HEIGHT" not in fields:
        return None
    return fields[b"WIDTH"], fields[b"HEIGHT"]


def _radiance(data: bytes) -> Size | None:
    """Radiance HDR: header lines, a blank line, then a resolution line such as ``-Y 480 +X 640``."""
    end = data.find(b"\n\n", 0, _MAX_TEXT_HEADER)
    if end == -1:
        return None
    match = _HDR_RESOLUTION.match(data, end + 2)
    if match is None or match.group(2) == match.group(5):
        return None
    sizes = {match.group(2): int(match.group(3)), match.group(5): int(match.group(6))}
    return sizes[b"X"], sizes[b"Y"]


def _sun_raster(data: bytes) -> Size | None:
    """Sun raster: magic, width, height (big-endian 32-bit)."""
    width, height = struct.unpack_from(">II", data, 4)
    return width, height


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, content start, content end) of the ISO base media / JP2 boxes in data[start:end]."""
    pos = start
    for _ in range(_MAX_STEPS):
        if pos + 8 > end:
            return
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:  # 64-bit size follows the type
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:  # to the end
            size = end - pos
        if size < header:
            return
        yield kind, pos + header, min(pos + size, end)
        pos += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """(content start, content end) of the first box of type ``kind`` in data[start:end]."""
    for found, content, content_end in _boxes(data, start, end):
        if found == kind:
            return content, content_end
    return None


def _jp2(data: bytes) -> Size | None:
    """JPEG 2000 (JP2 file): the image header box (height, width) inside the jp2h box."""
    header = _child(data, 0, len(data), b"jp2h")
    ihdr = header and _child(data, header[0], header[1], b"ihdr")
    if not ihdr or ihdr[1] - ihdr[0] < 8:
        return None
    height, width = struct.unpack_from(">II", data, ihdr[0])
    return width, height


def _j2k(data: bytes) -> Size | None:
    """Raw JPEG 2000 codestream: the SIZ segment (image extent minus image offset)."""
    x_size, y_size, x_offset, y_offset = struct.unpack_from(">IIII", data, 8)
    return x_size - x_offset, y_size - y_offset


def _heif(data: bytes) -> Size | None:
    """AVIF/HEIF: the largest ispe (image spatial extents) property in meta/iprp/ipco.

    Every image item (the primary image, its alpha plane, thumbnails, grid tiles) has one; the
    largest is the full image (a grid's own extent covers its tiles).
    """
    meta = _child(data, 0, len(data), b"meta")
    iprp = meta and _child(data, meta[0] + 4, meta[1], b"iprp")  # meta is a full box: 4 bytes version/flags
    ipco = iprp and _child(data, iprp[0], iprp[1], b"ipco")
    if not ipco:
        return None
    best: Size | None = None
    for kind, content, content_end in _boxes(data, ipco[0], ipco[1]):
        if kind == b"ispe" and content_end - content >= 12:  # full box, then width and height
            width, height = struct.unpack_from(">II", data, content + 4)
            if best is None or width * height > best[0] * best[1]:
                best = width, height
    return best


# (offset, magic, reader): the first match reads the header
_SIGNATURES: tuple[tuple[int, bytes, Callable[[bytes], Size | None]], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", _png),
    (0, b"\xff\xd8", _jpeg),
    (0, b"BM", _bmp),
    (0, b"GIF87a", _gif),
    (0, b"GIF89a", _gif),
    (0, b"RIFF", _webp),
    (0, b"II*\x00", _tiff),
    (0, b"MM\x00*", _tiff),
    (0, b"II+\x00", _tiff),
    (0, b"MM\x00+", _tiff),
    (0, b"P7", _pam),
    (0, b"P", _pnm),
    (0, b"#?RADIANCE", _radiance),
    (0, b"#?RGBE", _radiance),
    (0, b"\x59\xa6\x6a\x95", _sun_raster),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", _jp2),
    (0, b"\xff\x4f\xff\x51", _j2k),
    (4, b"ftyp", _heif),
)
