"""Every target the bench knows, in table order, and the choice of them by name. The only
module that imports both target families: they import the base (targets.py), never this."""

from __future__ import annotations

from dmlcsr.benchmarks.exported_targets import exported_targets
from dmlcsr.benchmarks.targets import Target
from dmlcsr.benchmarks.torch_targets import torch_targets
from dmlcsr.errors import DmlcsrError


def all_targets() -> list[Target]:
    """Every target, in table order: PyTorch, then exported artefacts (fresh instances)."""
    return [*torch_targets(), *exported_targets()]


def select_targets(names: list[str] | None) -> list[Target]:
    """The targets named (all when None), in table order; unknown names are an error."""
    targets = all_targets()
    if names is None:
        return targets
    known = {t.name for t in targets}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DmlcsrError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    return [t for t in targets if t.name in names]


def listing() -> str:
    """One line per target: name, device, what runs (--list-backends)."""
    return "\n".join(f"{t.name:24}{t.device:6}{t.description}" for t in all_targets())
