"""Every output file is written under a temporary name in its own folder, then renamed.

A full disk, a crash or a kill mid-write therefore leaves either the old file or the new
one, never half an image: the rename is atomic within one filesystem, which is why the
temporary name lives in the destination folder and not in /tmp.
"""

from __future__ import annotations

import os
import re
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
    check_name_length(path)
    temporary = temporary_name(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as exc:
        raise DmlcsrError(f"cannot write {path} ({exc.strerror}); free some space or pass a writable --out") from None
    finally:
        _remove(temporary)


def check_name_length(path: Path) -> None:
    """Refuse a file name longer than its file system takes (255 bytes on most)."""
    try:
        limit = os.pathconf(path.parent if path.parent.exists() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(path.name)) > limit:
        raise DmlcsrError(f"cannot write {path.name[:40]}... ({len(os.fsencode(path.name))} bytes, over the file "
                          f"system's {limit}-byte name limit); shorten the input's name")


def temporary_name(path: Path) -> Path:
    """A short hidden name in ``path``'s folder (a long output name plus a tag would
    overflow the file system's 255-byte limit), with ``path``'s suffix."""
    return path.with_name(f".dmlcsr-{os.getpid()}-{secrets.token_hex(4)}{path.suffix[:16]}")


#: what temporary_name makes: the writing process's id, 8 hex digits, the suffix
TEMPORARY = re.compile(r"\.dmlcsr-(\d+)-[0-9a-f]{8}(\.\w{1,16})?")


def remove_stale_temporaries(out: Path) -> int:
    """Delete the temporary files (temporary_name) that killed runs left anywhere under ``out``:
    those of processes on this machine that no longer run. Returns how many went."""
    removed = 0
    for folder, _, names in os.walk(out):
        for name in names:
            match = TEMPORARY.fullmatch(name)
            if match and not _running(int(match[1])):
                try:
                    os.unlink(os.path.join(folder, name))
                    removed += 1
                except OSError:
                    pass
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: running
        return True
    return True


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # nothing was created under that name
        pass


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file and a rename."""
    path = Path(path)
    with atomic_target(path) as temporary:
        temporary.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def write_group(files: Sequence[tuple[Path, bytes | str]]) -> None:
    """Write one input's outputs (label PNG, faces JSON, overlay) all together: every file
    goes to its temporary name first and the renames follow only when all are written, so
    a failure leaves neither a partial file nor a mix of old and new outputs."""
    for path, _ in files:  # refused before anything is written: a rename that fails half-way cannot be undone
        check_name_length(path)
        if path.is_dir():
            raise DmlcsrError(f"cannot write {path}: a folder has that name; move it, or pass another --out")
    staged: list[tuple[Path, Path]] = []
    current = None
    try:
        for current, data in files:
            current.parent.mkdir(parents=True, exist_ok=True)
            staged.append((temporary_name(current), current))
            staged[-1][0].write_bytes(data.encode() if isinstance(data, str) else data)
        for temporary, current in staged:
            os.replace(temporary, current)
    except OSError as exc:
        raise DmlcsrError(f"cannot write {current} ({exc.strerror}); free some space or pass a writable "
                          "--out") from None
    finally:
        for temporary, _ in staged:
            _remove(temporary)
