"""Parameters and FLOPs of the networks at a given input size (``dmlcsr-size``).

FLOPs are counted by torch's own FlopCounterMode on a real forward pass (2 FLOPs per
multiply-add; convolutions and matrix products, which are >99.9 % of the work), so the
figure follows the code that runs rather than a hand-kept table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import click
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dmlcsr.cli_options import input_size_option
from dmlcsr.core.geometry import INPUT_SIZE

PAPER_FIGURES = {"DML-CSR": (59.67, 48.54), "EAGRNet": (66.72, 51.63)}  # M params, G "FLOPs"


@dataclass
class SizeRow:
    """One network build's size at one input size."""

    name: str
    params_m: float
    gflops: float
    input_size: tuple[int, int]

    @property
    def gmacs(self) -> float:
        return self.gflops / 2


def count_parameters(model: nn.Module) -> int:
    """Learnable parameters (buffers such as running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_size: tuple[int, int] = INPUT_SIZE, batch: int = 1) -> float:
    """FLOPs (2 per multiply-add) of one eval forward at batch x 3 x H x W."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(batch, 3, *input_size))
    return float(counter.get_total_flops())


def measure(name: str, model: nn.Module, input_size: tuple[int, int] = INPUT_SIZE) -> SizeRow:
    """Size of one build; the forward runs once on zeros, on the CPU."""
    return SizeRow(name, count_parameters(model) / 1e6, count_flops(model, input_size) / 1e9, input_size)


def default_builds(num_classes: int) -> list[tuple[str, nn.Module]]:
    """The builds docs/reference-model.md reports: DML-CSR deploy and training, and EAGRNet as the paper
    timed it (its edge module runs at inference)."""
    from dmlcsr.networks.dml_csr import DML_CSR
    from dmlcsr.networks.eagrnet import EAGRNet

    builds: list[tuple[str, nn.Module]] = [
        ("DML-CSR deploy", DML_CSR(num_classes, trained=False)),
        ("DML-CSR training", DML_CSR(num_classes, trained=True)),
        ("EAGRNet", EAGRNet(num_classes)),
    ]
    return builds


def format_table(rows: list[SizeRow]) -> str:
    """A plain-text table with the paper's figures beside ours."""
    lines = [f"{'network':<22}{'params (M)':>12}{'GFLOP':>10}{'GMAC':>9}{'paper M / G':>16}"]
    for row in rows:
        paper = PAPER_FIGURES.get(row.name.split()[0])
        paper_text = f"{paper[0]:.2f} / {paper[1]:.2f}" if paper else "-"
        lines.append(f"{row.name:<22}{row.params_m:>12.2f}{row.gflops:>10.1f}{row.gmacs:>9.1f}{paper_text:>16}")
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--num-classes", default=19, show_default=True, help="19 = CelebAMask-HQ, 11 = LaPa/Helen.")
@input_size_option("Input H,W in pixels, or one number for a square.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def main(num_classes: int, input_size: tuple[int, int], as_json: bool) -> None:
    """Report parameters and FLOPs of DML-CSR (deploy and training builds) and EAGRNet.

    Example: dmlcsr-size --num-classes 11
    """
    rows = [measure(name, model, input_size) for name, model in default_builds(num_classes)]
    if as_json:
        import json

        click.echo(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        click.echo(f"at 1x3x{input_size[0]}x{input_size[1]}, {num_classes} classes")
        click.echo(format_table(rows))


if __name__ == "__main__":
    main()
