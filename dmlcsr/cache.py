"""A per-user cache of files that take minutes to make and never change for a given key:
the demo checkpoint and the artefacts exported from it (see dmlcsr.export.demo).

Where: ``$XDG_CACHE_HOME/dmlcsr`` (an absolute XDG_CACHE_HOME only, as the XDG spec says),
else ``~/.cache/dmlcsr``; ``DMLCSR_CACHE_DIR`` overrides both. The caller puts into a
file's name everything that changes its content (toolkit version, sizes, a hash of the
recipe...), so a stale file is never found, only left behind.

Each entry is written under a temporary name and renamed (atomic_target), then a sidecar
``NAME.sha256`` records its digest; a file without a sidecar, or whose bytes no longer
match it (a disk error, a hand edit, a copy cut short), is a miss and gets rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dmlcsr.runtime.output_files import atomic_target, write_atomic

CACHE_ENV = "DMLCSR_CACHE_DIR"
DIGEST_SUFFIX = ".sha256"
#: hidden temporaries older than this are left by killed builds and removed
STALE_TEMPORARY_S = 24 * 3600


def cache_dir() -> Path:
    """The dmlcsr cache folder (not created here)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "dmlcsr"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def short_hash(*parts: bytes | str) -> str:
    """12 hex digits of the sha256 over ``parts`` (each length-prefixed, so no two lists collide)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:12]


@dataclass
class CachedFile:
    path: Path
    sha256: str
    hit: bool  # found in the cache (True) or built now (False)


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + DIGEST_SUFFIX)


def lookup(path: str | os.PathLike) -> CachedFile | None:
    """The entry at ``path`` if it is whole: present, with a sidecar its bytes match."""
    path = Path(path)
    try:
        recorded = _digest_path(path).read_text().strip()
        if path.is_file() and file_sha256(path) == recorded:
            return CachedFile(path, recorded, hit=True)
    except (OSError, UnicodeDecodeError):
        pass
    return None


def cached_file(name: str, build: Callable[[Path], None], directory: str | os.PathLike | None = None,
                enabled: bool = True) -> CachedFile:
    """The cache entry ``name``: found whole, or made by ``build(partial_path)`` (which
    writes the file there) and stored. ``enabled=False`` rebuilds and overwrites it."""
    path = Path(directory) if directory is not None else cache_dir()
    path = path / name
    if enabled and (found := lookup(path)):
        return found
    _remove_stale_temporaries(path.parent)
    _digest_path(path).unlink(missing_ok=True)  # no moment where a new file meets an old digest
    with atomic_target(path) as partial:
        build(partial)
        digest = file_sha256(partial)
    write_atomic(_digest_path(path), digest + "\n")
    return CachedFile(path, digest, hit=False)


def _remove_stale_temporaries(directory: Path) -> None:
    """Temporaries of builds that were killed (atomic_target names them with a leading dot)."""
    if not directory.is_dir():
        return
    now = time.time()
    for entry in directory.iterdir():
        try:
            if entry.name.startswith(".") and entry.is_file() and now - entry.stat().st_mtime > STALE_TEMPORARY_S:
                entry.unlink()
        except OSError:
            pass


def place(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """``target`` with ``source``'s bytes: a hard link where the file system allows (no
    second copy on disk; dmlcsr's tools replace files by renaming, never write into them,
    and a cache entry changed in place fails its digest and is rebuilt), else a copy;
    renamed into place either way."""
    target = Path(target)
    if target.exists() and os.path.samefile(source, target):
        return target
    with atomic_target(target) as partial:
        try:
            os.link(source, partial)
        except OSError:
            shutil.copyfile(source, partial)
    return target
