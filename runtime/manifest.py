"""The manifest of a resumable run: one JSON line per image, appended as each is written.

``OUT/manifest.jsonl`` says, per image, whether it was parsed (``ok``, with its face count)
or not (``failed``, with the reason), so a collection of millions can be audited and
resumed. Lines are appended after the image's outputs are renamed into place, so a line
``ok`` always has complete outputs; a run killed between the two leaves outputs without a
line, and the rerun parses that image again (its files come out the same). The last line
for an image wins; a half-written last line (a killed run) is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from dmlcsr.errors import DmlcsrError

MANIFEST = "manifest.jsonl"
OK, FAILED = "ok", "failed"


@dataclass(frozen=True)
class Entry:
    """What the manifest records of one image: its source, its output name (relative to
    --out, no suffix), the status, faces parsed, the error and any note."""

    source: str
    name: str
    status: str
    faces: int = 0
    error: str = ""
    note: str = ""


def read_manifest(path: Path) -> dict[str, Entry]:
    """Output name -> the last entry written for it; damaged lines (a killed run's last) skipped."""
    entries: dict[str, Entry] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return entries
    except OSError as exc:
        raise DmlcsrError(f"cannot read {path} ({exc.strerror}); move it away to start the run afresh") from None
    for line in lines:
        try:
            record = json.loads(line)
            entry = Entry(**{key: record[key] for key in Entry.__dataclass_fields__ if key in record})
        except (ValueError, TypeError):
            continue
        entries[entry.name] = entry
    return entries


class ManifestWriter:
    """Appends entries, each line whole: every line goes to the OS as it is added, to the disk
    (fsync) every ``sync_every`` lines and on close; a line left half-written by a killed run
    is ended before the next."""

    def __init__(self, path: Path, sync_every: int = 16) -> None:
        self.path, self.sync_every, self._pending = path, sync_every, 0
        self._file: IO[str] | None = None  # opened by the first entry: a run that records nothing creates nothing

    def _open(self) -> IO[str]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            ended = _ends_a_line(self.path)
            file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise DmlcsrError(f"cannot write {self.path} ({exc.strerror}); pass a writable --out") from None
        if not ended:
            file.write("\n")
        return file

    def add(self, entry: Entry) -> None:
        if self._file is None:
            self._file = self._open()
        self._file.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
        self._file.flush()  # to the OS at once: a killed process loses no line; fsync (power loss) less often
        self._pending += 1
        if self._pending >= self.sync_every:
            self.flush()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
        self._pending = 0

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self.flush()
            self._file.close()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_a_line(path: Path) -> bool:
    """True for a missing or empty file, or one whose last byte ends a line."""
    try:
        with path.open("rb") as file:
            if file.seek(0, os.SEEK_END) == 0:
                return True
            file.seek(-1, os.SEEK_END)
            return file.read(1) == b"\n"
    except FileNotFoundError:
        return True
