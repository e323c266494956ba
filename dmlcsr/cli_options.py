"""The options every dmlcsr command shares, declared once: --device, --threads, --input-size.

Each CLI used to declare these itself, with three different types for --device; now they
parse and refuse alike everywhere (one type, one range, one message).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from dmlcsr.core.geometry import INPUT_SIZE
from dmlcsr.runtime.backends.base import DEVICES, MAX_THREADS

#: the smallest input DML-CSR's stride-8 backbone and its stride-4 head can run at
MIN_INPUT_SIDE = 17

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def device_option(help_text: str = "auto: TensorRT/CUDA when present, else CPU.", default: str = "auto") -> Decorator:
    return click.option("--device", type=click.Choice(DEVICES), default=default, show_default=True, help=help_text)


def threads_option(help_text: str = "CPU threads for the engine [default: its own].") -> Decorator:
    return click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=None, help=help_text)


class InputSize(click.ParamType):
    """'473' (a square) or 'H,W' -> (height, width): input sizes are tuples everywhere."""

    name = "H,W"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        try:
            parts = [int(v) for v in str(value).replace("x", ",").split(",") if v.strip()]
        except ValueError:
            parts = []
        if len(parts) == 1:
            parts *= 2
        if len(parts) != 2 or min(parts) < MIN_INPUT_SIDE:
            self.fail(f"{value!r}: give H,W (or one number for a square), each at least {MIN_INPUT_SIDE}", param, ctx)
        return parts[0], parts[1]


def input_size_option(help_text: str = "Network input H,W (one number: a square).",
                      default: tuple[int, int] | None = INPUT_SIZE) -> Decorator:
    shown = None if default is None else f"{default[0]},{default[1]}"  # as typed, not "(473, 473)"
    return click.option("--input-size", type=InputSize(), default=shown, show_default=default is not None,
                        help=help_text)

