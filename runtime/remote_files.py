"""Inputs named by URI (s3://bucket/photos, gs://..., file:///data/photos) for dmlcsr-parse --ray.

Listed once by the driver and read by each actor through pyarrow's filesystems, which Ray
Data itself reads with, so any store pyarrow reaches (S3, GCS, HDFS, Azure through fsspec)
needs nothing more than its credentials on every node. Outputs still go to a local or
shared --out folder. pyarrow is imported here only, when a URI is given.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.images import IMAGE_SUFFIXES, decode_image, max_file_bytes

URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_uri(text: str | Path) -> bool:
    return isinstance(text, str) and URI.match(text) is not None


def _filesystem(uri: str) -> tuple[Any, str]:
    try:
        from pyarrow import fs
    except ImportError:
        raise DmlcsrError(f"reading {uri} needs pyarrow: pip install \"dmlcsr[ray]\"") from None
    try:
        return fs.FileSystem.from_uri(uri)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for an unknown scheme or bucket
        raise DmlcsrError(f"cannot open {uri} ({str(exc).strip().splitlines()[0][:200]})") from None


def _child(uri: str, path: str) -> str:
    """The URI of ``path`` (as the filesystem lists it) on the store ``uri`` names, its query kept."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{path if parts.scheme != 'file' else '/' + path.lstrip('/')}" + \
        (f"?{parts.query}" if parts.query else "")


def list_uri(uri: str, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[tuple[str, Path]]:
    """(file URI, output name) for a file URI, or for the images under a folder URI
    (recursively, hidden files left out), named as collect_jobs names a local folder's."""
    from pyarrow import fs

    filesystem, root = _filesystem(uri)
    try:
        info = filesystem.get_file_info(root)
        if info.type == fs.FileType.File:
            return [(uri, Path(PurePosixPath(root).stem))]
        if info.type != fs.FileType.Directory:
            raise DmlcsrError(f"input not found: {uri}")
        listed = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    except OSError as exc:
        raise DmlcsrError(f"cannot list {uri} ({str(exc).strip().splitlines()[0][:200]})") from None
    base = PurePosixPath(root)
    files = sorted(PurePosixPath(item.path) for item in listed if item.type == fs.FileType.File)
    chosen = [path for path in files if path.suffix.lower() in suffixes
              and not any(part.startswith(".") for part in path.relative_to(base).parts)]
    if not chosen:
        raise DmlcsrError(f"no images in {uri}; image types: {' '.join(IMAGE_SUFFIXES)}")
    return [(_child(uri, str(path)), Path(base.name) / Path(str(path.relative_to(base).with_suffix(""))))
            for path in chosen]


def read_uri(uri: str, max_pixels: int) -> np.ndarray:
    """The image at ``uri``, decoded as read_image decodes a local file (the same errors)."""
    from pyarrow import ArrowException

    filesystem, path = _filesystem(uri)
    try:
        with filesystem.open_input_file(path) as file:
            if file.size() > max_file_bytes(max_pixels):
                raise DmlcsrError(f"{uri} is {file.size() / 2**30:.1f} GiB, more than any image under the "
                                  f"{max_pixels / 1e6:.0f} MP limit takes; downscale it or raise max_pixels")
            data = file.read()
    except FileNotFoundError:
        raise DmlcsrError(f"image not found: {uri}") from None
    except (OSError, ArrowException) as exc:
        raise DmlcsrError(f"cannot read {uri} ({str(exc).strip().splitlines()[0][:200]})") from None
    return decode_image(bytes(data), uri, max_pixels)
