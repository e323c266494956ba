"""Every output file is written under a temporary name in its own folder, then renamed.

A full disk, a crash or a kill mid-write therefore leaves either the old file or the new
one, never half an image: the rename is atomic within one filesystem, which is why the
temporary name lives in the destination folder and not in /tmp.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dmlcsr.errors import DmlcsrError


@contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, for writers that pick the format by
    it) that becomes ``path`` when the block ends without an exception, and is removed
    when it raises."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DmlcsrError(f"cannot create {path.parent} ({exc.strerror}); pass a writable --out") from None
    temporary = path.with_name(f".{path.stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as exc:
        raise DmlcsrError(f"cannot write {path} ({exc.strerror}); free some space or pass a writable --out") from None
    finally:
        temporary.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file and a rename."""
    path = Path(path)
    with atomic_target(path) as temporary:
        temporary.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def write_group(files: Sequence[tuple[Path, bytes | str]]) -> None:
    """Write one input's outputs (label PNG, faces JSON, overlay): all of them, or, when one
    write fails, none (those already written are removed), so a skip leaves nothing behind."""
    written: list[Path] = []
    try:
        for path, data in files:
            written.append(write_atomic(path, data))
    except DmlcsrError:
        for path in written:
            path.unlink(missing_ok=True)
        raise
