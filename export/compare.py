"""Compare two runners' logits on the same inputs: |logit difference| and label agreement.

Agreement is measured twice: at the network's output (h x w, e.g. 119 x 119) and after
the official upsample to the input size (dmlcsr.core.geometry.labels_from_logits). The
thresholds apply to the second, the labels users get; the first is reported (at small
inputs it is coarse: one pixel of 7 x 33 x 33 is 0.013 %). Per-class agreement is the
share of each reference class's pixels the artefact labels the same (at the input size),
so a class that vanishes cannot hide behind a large background.

FP32 tolerance: max |diff| <= 1e-4 x max(1, max |reference logit|). An absolute 1e-4 is
below float32's own noise over DML-CSR's 101 layers: on the demo model (logits up to
~28) PyTorch fp32 itself is 1e-3 away from a float64 run, and ONNX Runtime fp32 5.7e-4 -
so the bound is relative to the logits' scale, and equals 1e-4 for logits within +-1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from dmlcsr.core.geometry import labels_from_logits


@dataclass(frozen=True)
class Thresholds:
    """Pass/fail bounds for one precision (None: not checked)."""

    max_relative_diff: float | None
    min_agreement: float


THRESHOLDS = {
    "fp32": Thresholds(max_relative_diff=1e-4, min_agreement=0.9999),
    "fp16": Thresholds(max_relative_diff=None, min_agreement=0.999),
    "int8-qdq": Thresholds(max_relative_diff=None, min_agreement=0.99),
    "int8-nncf": Thresholds(max_relative_diff=None, min_agreement=0.99),
    # an FP32 model computed in bf16 (OpenVINO on AMX / AVX512-BF16 CPUs): 8 mantissa bits to FP16's 11
    "bf16": Thresholds(max_relative_diff=None, min_agreement=0.995),
}


@dataclass
class ClassAgreement:
    """How many pixels the reference gives a class, and the share the artefact agrees on."""

    name: str
    reference_pixels: int
    agreement: float | None  # None when the reference never predicts the class


@dataclass
class ParityReport:
    """One artefact against the reference over a set of images."""

    artefact: str
    precision: str
    images: int
    max_abs_diff: float
    mean_abs_diff: float
    max_abs_reference: float
    agreement_logits: float  # at the network's output resolution
    agreement_labels: float  # after the official upsample to the input size
    per_class: list[ClassAgreement]
    thresholds: Thresholds
    notes: list[str] = field(default_factory=list)
    #: reported for comparison only, never failing a run (ONNX Runtime's int8 CPU kernels)
    informational: bool = False

    @property
    def relative_diff(self) -> float:
        return self.max_abs_diff / max(1.0, self.max_abs_reference)

    @property
    def failures(self) -> list[str]:
        """Each threshold this report misses, in words."""
        out = []
        limit = self.thresholds.max_relative_diff
        if limit is not None and not self.relative_diff <= limit:
            out.append(f"max |diff| {self.max_abs_diff:.3g} is over {limit:g} x max(1, max |logit| "
                       f"{self.max_abs_reference:.3g})")
        if not self.agreement_labels >= self.thresholds.min_agreement:
            out.append(f"label agreement {self.agreement_labels:.4%} (after the official upsample) is under "
                       f"{self.thresholds.min_agreement:.2%}")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def gates(self) -> bool:
        """Whether this report decides a run's exit status (it fails the run when not passed)."""
        return not self.informational

    def to_dict(self) -> dict:
        return {**asdict(self), "relative_diff": self.relative_diff, "passed": self.passed,
                "failures": self.failures}


class ParityAccumulator:
    """Running statistics over batches, so nothing but two confusion matrices is kept."""

    def __init__(self, num_classes: int, input_size: tuple[int, int]) -> None:
        self.num_classes = num_classes
        self.input_size = input_size
        self.images = 0
        self.max_abs_diff = 0.0
        self.sum_abs_diff = 0.0
        self.values = 0
        self.max_abs_reference = 0.0
        self.logit_agree = 0
        self.logit_pixels = 0
        self.confusion = np.zeros((num_classes, num_classes), np.int64)  # reference x candidate, input size

    def update(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        if reference.shape != candidate.shape:
            raise ValueError(f"logit shapes differ: reference {reference.shape}, candidate {candidate.shape}")
        diff = np.abs(candidate.astype(np.float64) - reference)
        finite = np.isfinite(diff).all()
        self.max_abs_diff = max(self.max_abs_diff, float(diff.max()) if finite else float("inf"))
        self.sum_abs_diff += float(diff.sum()) if finite else float("inf")
        self.values += diff.size
        self.max_abs_reference = max(self.max_abs_reference, float(np.abs(reference).max()))
        self.logit_agree += int((reference.argmax(1) == candidate.argmax(1)).sum())
        self.logit_pixels += reference.shape[0] * reference.shape[2] * reference.shape[3]
        ref_labels = labels_from_logits(reference, self.input_size).astype(np.int64)
        cand_labels = labels_from_logits(np.nan_to_num(candidate), self.input_size).astype(np.int64)
        pairs = ref_labels.ravel() * self.num_classes + cand_labels.ravel()
        self.confusion += np.bincount(pairs, minlength=self.num_classes**2).reshape(self.confusion.shape)
        self.images += reference.shape[0]

    def report(self, artefact: str, precision: str, label_names: Sequence[str],
               thresholds: Thresholds | None = None) -> ParityReport:
        per_class_pixels = self.confusion.sum(1)
        per_class = [ClassAgreement(name, int(pixels), float(self.confusion[c, c] / pixels) if pixels else None)
                     for c, (name, pixels) in enumerate(zip(label_names, per_class_pixels, strict=True))]
        return ParityReport(
            artefact=artefact, precision=precision, images=self.images, max_abs_diff=self.max_abs_diff,
            mean_abs_diff=self.sum_abs_diff / max(1, self.values), max_abs_reference=self.max_abs_reference,
            agreement_logits=self.logit_agree / max(1, self.logit_pixels),
            agreement_labels=float(np.trace(self.confusion) / max(1, self.confusion.sum())),
            per_class=per_class, thresholds=thresholds or THRESHOLDS[precision])


def compare(pairs: Iterable[tuple[np.ndarray, np.ndarray]], artefact: str, precision: str,
            label_names: Sequence[str], input_size: tuple[int, int]) -> ParityReport:
    """A report over (reference logits, candidate logits) batch pairs."""
    accumulator = ParityAccumulator(len(label_names), input_size)
    for reference, candidate in pairs:
        accumulator.update(reference, candidate)
    return accumulator.report(artefact, precision, label_names)


def format_report(report: ParityReport) -> str:
    """A summary line block plus the per-class agreement table, for the terminal."""
    verdict = ("PASS" if report.passed else "FAIL") + (" (for information: does not gate)" if report.informational
                                                         else "")
    limit = report.thresholds.max_relative_diff
    lines = [
        f"{report.artefact}  precision={report.precision}  images={report.images}  {verdict}",
        f"  max |logit diff|   {report.max_abs_diff:.3e}  (relative {report.relative_diff:.2e}"
        + (f", limit {limit:g})" if limit is not None else ", not checked for this precision)"),
        f"  mean |logit diff|  {report.mean_abs_diff:.3e}   (max |reference logit| {report.max_abs_reference:.2f})",
        f"  label agreement    {report.agreement_labels:.4%} at input size (limit "
        f"{report.thresholds.min_agreement:.2%}), {report.agreement_logits:.4%} at output size",
        "  class            ref pixels  agreement",
    ]
    for item in report.per_class:
        if item.agreement is not None:
            lines.append(f"  {item.name:<15} {item.reference_pixels:>11}  {item.agreement:9.4%}")
    absent = [c.name for c in report.per_class if c.agreement is None]
    if absent:
        lines.append(f"  (not predicted by the reference on these images: {', '.join(absent)})")
    lines += [f"  note: {note}" for note in report.notes]
    lines += [f"  FAIL: {failure}" for failure in report.failures]
    return "\n".join(lines)
