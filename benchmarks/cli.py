"""dmlcsr-bench: does the paper's 2.87x (EAGRNet 89 ms vs DML-CSR 31 ms) hold on this
machine, and which backend should be deployed here?"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dmlcsr.benchmarks.harness import Schedule
from dmlcsr.errors import DmlcsrError

QUICK = Schedule(warmup=1, iterations=3)
QUICK_PARTS = Schedule(warmup=1, iterations=3)


def parse_ints(text: str | None, option: str) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise DmlcsrError(f"{option} takes comma-separated whole numbers such as 1,2,8, not {text!r}") from None
    if any(v < 1 for v in values):
        raise DmlcsrError(f"{option} values must be at least 1, not {text!r}")
    return values


def list_targets() -> str:
    from dmlcsr.benchmarks.targets import all_targets

    return "\n".join(f"{t.name:24}{t.device:6}{t.description}" for t in all_targets())


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--quick", is_flag=True, help="Short run: 1 warm-up + 3 timed rounds, batch 1 only.")
@click.option("--backends", default=None, metavar="A,B,...",
              help="Backends to time (default: all; see --list-backends). Missing ones are skipped with the reason.")
@click.option("--batch-sizes", default=None, metavar="1,2,...",
              help="Batch sizes for the throughput table [default: 1,2 on CPU backends, 1,8,32 on GPU ones].")
@click.option("--input-size", default=473, show_default=True, help="Square input side (the paper's is 473).")
@click.option("--num-classes", default=19, show_default=True, help="19 = CelebAMask-HQ, 11 = LaPa/Helen.")
@click.option("--warmup", default=2, show_default=True, help="Untimed rounds first (ignored with --quick).")
@click.option("--iterations", default=10, show_default=True, help="At least this many timed rounds.")
@click.option("--min-seconds", default=10.0, show_default=True,
              help="...and keep timing for at least this long (a stable median on fast GPUs).")
@click.option("--modules/--no-modules", default=True, show_default=True,
              help="Time each network's parts alone (explains the ratio).")
@click.option("--end-to-end/--no-end-to-end", default=True, show_default=True,
              help="Time the runtime (FaceParser: pre-process + inference + post-process) on a real photo.")
@click.option("--photo", type=click.Path(path_type=Path), default=None,
              help="Photo for --end-to-end [default: the shipped astronaut.png, 512x512].")
@click.option("--dmlcsr-ckpt", type=click.Path(path_type=Path), default=None,
              help="Time a real DML-CSR checkpoint instead of seeded random weights (same speed).")
@click.option("--eagrnet-ckpt", type=click.Path(path_type=Path), default=None,
              help="An official EAGRNet checkpoint instead of seeded random weights.")
@click.option("--threads", type=int, default=None, help="CPU threads for torch and ONNX Runtime [default: theirs].")
@click.option("--work-dir", type=click.Path(path_type=Path), default=Path(".dmlcsr-bench"), show_default=True,
              help="Where exported ONNX files and engines go (reused when the weights match).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("benchmarks/results"), show_default=True,
              help="Folder for the JSON results and the PNG plot.")
@click.option("--tag", default="", help="Appended to the result file names, e.g. --tag threads1.")
@click.option("--cpu-summary/--no-cpu-summary", default=True, show_default=True,
              help="Compare every CPU engine timed: speed-up over ort-cpu-fp32 and label agreement with PyTorch "
                   "on the example photos (DML-CSR then runs the demo checkpoint unless --dmlcsr-ckpt is given).")
@click.option("--list-backends", is_flag=True, help="List the backends and exit.")
def main(quick: bool, backends: str | None, batch_sizes: str | None, input_size: int, num_classes: int, warmup: int,
         iterations: int, min_seconds: float, modules: bool, end_to_end: bool, photo: Path | None,
         dmlcsr_ckpt: Path | None, eagrnet_ckpt: Path | None, threads: int | None, work_dir: Path, out: Path,
         tag: str, cpu_summary: bool, list_backends: bool) -> None:
    """Time deployed DML-CSR against the full EAGRNet on every backend present.

    Both networks run in the same process, interleaved call by call, at 1x3x473x473 by
    default; the table gives median/p90 latency, the EAGRNet/DML-CSR ratio beside the
    paper's 2.87, throughput per batch size, each network's parts timed alone, and the
    runtime's end-to-end latency. Results go to OUT/<date>_<device>.json with a PNG plot.

    \b
    Examples:
      dmlcsr-bench --quick          # ~30 min on 2 CPU cores (exports, INT8 calibration, emulated bf16)
      dmlcsr-bench --backends ort-cpu-fp32,ov-cpu-fp32,ov-cpu-int8 --quick   # which CPU engine to deploy
      dmlcsr-bench --backends torch-cpu-fp32,ort-cpu-fp32 --batch-sizes 1,4
      dmlcsr-bench --backends torch-cuda-fp16-graph,tensorrt-fp16 --min-seconds 20
      dmlcsr-bench --list-backends
    """
    if list_backends:
        click.echo(list_targets())
        return
    from dmlcsr.benchmarks.plot import plot_report
    from dmlcsr.benchmarks.report import format_report, write_json
    from dmlcsr.benchmarks.run import BenchSettings, run_bench

    try:
        if input_size < 64:
            raise DmlcsrError(f"--input-size {input_size} is too small for the stride-8 backbones; use 473 (the "
                              "paper's) or at least 64")
        settings = BenchSettings(
            input_size=input_size, num_classes=num_classes,
            targets=[b.strip() for b in backends.split(",") if b.strip()] if backends else None,
            batch_sizes=parse_ints(batch_sizes, "--batch-sizes") or ((1,) if quick else None),
            schedule=QUICK if quick else Schedule(warmup, iterations, min_seconds),
            module_schedule=QUICK_PARTS if quick else Schedule(1, max(3, iterations // 2)),
            modules=modules, end_to_end=end_to_end, photo=photo, dmlcsr_ckpt=dmlcsr_ckpt,
            eagrnet_ckpt=eagrnet_ckpt, work_dir=work_dir, threads=threads, quick=quick, tag=tag,
            cpu_summary=cpu_summary)
        report = run_bench(settings, log=lambda message: click.echo(message, err=True))
        path = write_json(report, out)
        plot = plot_report(report, path.with_suffix(".png"))
    except DmlcsrError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(format_report(report))
    click.echo(f"\nwrote {path} and {plot}")


if __name__ == "__main__":
    main()
