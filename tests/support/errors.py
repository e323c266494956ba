"""How the tests read the one-line errors the toolkit promises."""

from __future__ import annotations

import pytest


def one_line_message(exc: pytest.ExceptionInfo) -> str:
    """The raised error's text, which must be a single line (no traceback-like dumps)."""
    assert "\n" not in str(exc.value)
    return str(exc.value)
