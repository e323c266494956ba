"""The picture of a run: batch-1 latency per backend for both networks (ratio written on
each pair), and where each network's time goes, part by part."""

from __future__ import annotations

from pathlib import Path

from dmlcsr.benchmarks.environment import device_label
from dmlcsr.benchmarks.paper import DMLCSR, EAGRNET, PAPER_RATIO
from dmlcsr.runtime.output_files import atomic_target

COLORS = {DMLCSR: "#1f77b4", EAGRNET: "#d62728"}


def plot_report(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modules = next(iter(report.get("modules", {}).items()), None)
    fig, axes = plt.subplots(1, 2 if modules else 1, figsize=(13 if modules else 7, 4.8), squeeze=False)
    latency_panel(axes[0][0], report)
    if modules:
        parts_panel(axes[0][1], *modules)
    fig.suptitle(f"dmlcsr-bench on {device_label(report['environment'])}, "
                 "x".join(str(side) for side in report["settings"]["input_size"]), fontsize=11)
    fig.tight_layout()
    with atomic_target(path) as partial:
        fig.savefig(partial, dpi=110)
    plt.close(fig)
    return path


def latency_panel(ax, report: dict) -> None:
    ratios = [r for r in report["ratios"] if r["batch"] == 1]
    names = [r["backend"] for r in ratios]
    ys = range(len(ratios))
    ax.barh([y - 0.2 for y in ys], [r["dmlcsr_ms"] for r in ratios], 0.4, color=COLORS[DMLCSR], label=DMLCSR)
    ax.barh([y + 0.2 for y in ys], [r["eagrnet_ms"] for r in ratios], 0.4, color=COLORS[EAGRNET], label=EAGRNET)
    for y, r in zip(ys, ratios, strict=True):
        ax.text(max(r["dmlcsr_ms"], r["eagrnet_ms"]), y, f"  x{r['ratio']:.2f}", va="center", fontsize=9)
    ax.set_yticks(list(ys), names)
    ax.invert_yaxis()
    if ratios and max(r["eagrnet_ms"] for r in ratios) > 20 * min(r["dmlcsr_ms"] for r in ratios):
        ax.set_xscale("log")
    ax.set_xlabel("median latency, batch 1 (ms)")
    ax.set_title(f"EAGRNet / DML-CSR ratio (paper: x{PAPER_RATIO})", fontsize=10)
    ax.legend(loc="lower right", fontsize=9)
    ax.margins(x=0.15)


def parts_panel(ax, backend: str, summary: dict) -> None:
    """Stacked bars: the shared backbone, then each network's own parts."""
    parts = [p for p in summary["parts"] if p["part_of"] is None]
    backbone = next(p for p in parts if p["model"] == "backbone")
    tallest = max(sum(p["median_ms"] for p in parts if p["model"] in (m, "backbone")) for m in (DMLCSR, EAGRNET))
    for x, model in enumerate((DMLCSR, EAGRNET)):
        bottom = backbone["median_ms"]
        ax.bar(x, bottom, 0.6, color="#bbbbbb", label="backbone (shared)" if x == 0 else None)
        for index, part in enumerate(p for p in parts if p["model"] == model):
            ax.bar(x, part["median_ms"], 0.6, bottom=bottom, color=COLORS[model], alpha=0.9 if index % 2 else 0.55,
                   edgecolor="white")
            if part["median_ms"] > 0.035 * tallest:  # small parts stay unlabelled rather than overlap
                ax.text(x, bottom + part["median_ms"] / 2, f"{part['part']} {part['median_ms']:.0f}", ha="center",
                        va="center", fontsize=8)
            bottom += part["median_ms"]
    ax.set_xticks([0, 1], [DMLCSR, EAGRNET])
    ax.set_ylabel("median ms, each part timed alone")
    ax.set_title(f"where the time goes ({backend})", fontsize=10)
    ax.legend(loc="lower right", fontsize=9)
