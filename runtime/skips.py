"""A batch survives any single input: each failure becomes a counted, reported skip.

Used around every per-input step of dmlcsr-parse (decode, checks, detection, inference,
overlay, writing). Library errors that escape the toolkit's own checks are caught as
well, so one odd file cannot end a run of thousands; they are reported as such, with
the request to report them, because each one is a missing check.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import cv2
from tqdm import tqdm

from dmlcsr.errors import DmlcsrError

#: what a library may raise on a bad input that the toolkit's checks did not foresee
UNFORESEEN = (cv2.error, ValueError, TypeError, OverflowError, MemoryError, IndexError, KeyError)


@dataclass
class Skips:
    """The inputs (or frames) skipped so far, each with its reason."""

    messages: list[str] = field(default_factory=list)
    echo: bool = True  # print each skip as it happens (frames of a video are summed up instead)
    reasons: list[tuple[object, str]] = field(default_factory=list)  # (source, reason): for a manifest

    def add(self, source: object, reason: str) -> None:
        self.messages.append(f"{source}: {reason}")
        self.reasons.append((source, reason))
        if self.echo:
            tqdm.write(f"skipped {source}: {reason}", file=sys.stderr)

    def add_error(self, source: object, exc: BaseException) -> None:
        """Record ``exc`` as the reason ``source`` was skipped."""
        if isinstance(exc, DmlcsrError):
            self.add(source, str(exc))
        else:
            detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
            self.add(source, f"unexpected {type(exc).__name__} ({detail[:200]}); please report it with the file")

    @contextmanager
    def guard(self, source: object) -> Iterator[None]:
        """Run the block; a failure inside it is recorded as a skip of ``source`` and the run goes on."""
        try:
            yield
        except (DmlcsrError, *UNFORESEEN) as exc:
            self.add_error(source, exc)

    def __len__(self) -> int:
        return len(self.messages)
