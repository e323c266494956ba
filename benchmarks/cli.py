"""dmlcsr-bench: one harness for every timing the toolkit publishes. Its sections share the
environment record, the table header and the result files (--out, default: the current
folder); options without a section name run the latency section, as dmlcsr-bench always did."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from dmlcsr.benchmarks.harness import Schedule
from dmlcsr.cli_options import device_option, input_size_option, threads_option
from dmlcsr.errors import DmlcsrError

QUICK = Schedule(warmup=1, iterations=3)
QUICK_PARTS = Schedule(warmup=1, iterations=3)
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
LATENCY_EXAMPLES = """\b
Examples:
  dmlcsr-bench --quick          # ~30 min on 2 CPU cores (exports, INT8 calibration, emulated bf16)
  dmlcsr-bench --backends ort-cpu-fp32,ov-cpu-fp32,ov-cpu-int8 --quick   # which CPU engine to deploy
  dmlcsr-bench --backends torch-cpu-fp32,ort-cpu-fp32 --batch-sizes 1,4
  dmlcsr-bench --backends torch-cuda-fp16-graph,tensorrt-fp16 --min-seconds 20
  dmlcsr-bench --list-backends
"""
OVERHEAD_EXAMPLES = """\b
Examples:
  dmlcsr-bench overhead --model demo-fp32.onnx        # the seven example photos, 3 frames each
  dmlcsr-bench overhead --model m.onnx --images me.jpg --repeats 10 --out results/
  dmlcsr-bench overhead                               # exports the demo model first (needs torch)
"""
PHOTO_EXAMPLES = """\b
Examples:
  dmlcsr-bench photo --model demo-fp32.onnx           # the shipped six-person t1.jpg
  dmlcsr-bench photo --model m.onnx --photo team.jpg --threads 2 --tag threads2
"""
RAY_EXAMPLES = """\b
Examples:
  dmlcsr-bench ray --model demo-473.onnx --model small.onnx     # 40 images: alone, Ray 1 and 2 actors
  dmlcsr-bench ray --model small.onnx --images 40,200 --rounds 3 --tag toy  # + marginal s/image, start-up
"""
CPP_EXAMPLES = """\b
Examples:
  dmlcsr-bench cpp --model demo-fp32.onnx --model demo-int8.xml   # C++ and Python, same OpenVINO
"""
SECTIONS_EPILOG = """\b
Examples:
  dmlcsr-bench --quick                          # latency: DML-CSR vs EAGRNet, every backend here
  dmlcsr-bench --backends ort-cpu-fp32,ov-cpu-fp32,ov-cpu-int8 --quick   # which CPU engine to deploy
  dmlcsr-bench --list-backends
  dmlcsr-bench overhead --model demo-fp32.onnx  # runtime import time, pre+post share of a frame
  dmlcsr-bench photo --model demo-fp32.onnx     # detect / parse / composite on a photo of six
  dmlcsr-bench ray --model demo-fp32.onnx       # images/s alone and on Ray actors (needs dmlcsr[ray])
  dmlcsr-bench cpp --model demo-fp32.onnx       # the C++ runtime (runtime/cpp) against FaceParser
  dmlcsr-bench photo --help                     # a section's own options and examples

Each section writes OUT/<date>_<device>[_<section>][_quick][_<tag>].json (--out, default: the
current folder; the latency section adds a PNG) and prints its table after the same header:
device, CPU model and flags, load average at the start and at the end of the run.
"""


class DefaultSection(click.Group):
    """A group whose bare options go to the latency section: ``dmlcsr-bench --quick`` is
    ``dmlcsr-bench latency --quick``."""

    default_section = "latency"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = [self.default_section, *args]
        return super().parse_args(ctx, args)


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


def output_options(command: Callable) -> Callable:
    """--out and --tag, the same for every section."""
    command = click.option("--tag", default="", help="Appended to the result file name, e.g. --tag threads1.")(command)
    return click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                        help="Folder for the JSON result (and the latency PNG) [default: the current folder]."
                        )(command)


def runtime_options(command: Callable) -> Callable:
    """The model, device and repeats of the sections that time dmlcsr.runtime."""
    for option in reversed([
        click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     help="Exported DML-CSR (.onnx/.engine/.xml) [default: export the demo model at 473, needs "
                          "torch]."),
        click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
                     help="Timed runs per photo (medians are reported)."),
        device_option("As dmlcsr-parse: auto takes TensorRT/CUDA when present.", default="cpu"),
        threads_option("CPU threads for the runtime [default: the backend's]."),
    ]):
        command = option(command)
    return command


def write_section(measure: Callable[[], dict], out: Path, plot: bool = False) -> None:
    """Run one section, write its JSON (and PNG) under ``out`` and print its table; a
    DmlcsrError is one line and exit status 2, with nothing written."""
    from dmlcsr.benchmarks.report import write_json
    from dmlcsr.benchmarks.tables import format_report

    try:
        report = measure()
        written = [write_json(report, out)]
        if plot:
            from dmlcsr.benchmarks.plot import plot_report

            written.append(plot_report(report, written[0].with_suffix(".png")))
    except DmlcsrError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(format_report(report))
    click.echo(f"\nwrote {' and '.join(str(path) for path in written)}")


@click.group(cls=DefaultSection, context_settings=CONTEXT, epilog=SECTIONS_EPILOG)
def main() -> None:
    """Time DML-CSR as deployed: against EAGRNet on every backend (latency, the default:
    options without a section name go there), the runtime's own overhead, and a whole
    photo of several faces."""


@main.command(context_settings=CONTEXT, epilog=LATENCY_EXAMPLES,
              short_help="DML-CSR vs EAGRNet on every backend present (the default section).")
@click.option("--quick", is_flag=True, help="Short run: 1 warm-up + 3 timed rounds, batch 1 only.")
@click.option("--backends", default=None, metavar="A,B,...",
              help="Backends to time (default: all; see --list-backends). Missing ones are skipped with the reason.")
@click.option("--batch-sizes", default=None, metavar="1,2,...",
              help="Batch sizes for the throughput table [default: 1,2 on CPU backends, 1,8,32 on GPU ones].")
@input_size_option("Network input H,W, or one number for a square (the paper's is 473).")
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
@threads_option("CPU threads for torch and ONNX Runtime [default: theirs].")
@click.option("--work-dir", type=click.Path(path_type=Path), default=Path(".dmlcsr-bench"), show_default=True,
              help="Where exported ONNX files and engines go (reused when the weights match).")
@output_options
@click.option("--cpu-summary/--no-cpu-summary", default=True, show_default=True,
              help="Compare every CPU engine timed: speed-up over ort-cpu-fp32 and label agreement with PyTorch "
                   "on the example photos (DML-CSR then runs the demo checkpoint unless --dmlcsr-ckpt is given).")
@click.option("--list-backends", is_flag=True, help="List the backends and exit.")
def latency(quick: bool, backends: str | None, batch_sizes: str | None, input_size: tuple[int, int], num_classes: int,
            warmup: int, iterations: int, min_seconds: float, modules: bool, end_to_end: bool, photo: Path | None,
            dmlcsr_ckpt: Path | None, eagrnet_ckpt: Path | None, threads: int | None, work_dir: Path, out: Path,
            tag: str, cpu_summary: bool, list_backends: bool) -> None:
    """Time deployed DML-CSR against the full EAGRNet on every backend present (the default).

    Both networks run in the same process, interleaved call by call, at 1x3x473x473 by
    default; the table gives median/p90 latency, the EAGRNet/DML-CSR ratio beside the
    paper's 2.87, throughput per batch size, each network's parts timed alone, and the
    runtime's end-to-end latency. Results go to OUT/<date>_<device>.json with a PNG plot.
    """
    if list_backends:
        from dmlcsr.benchmarks.registry import listing

        click.echo(listing())
        return

    def measure() -> dict:
        from dmlcsr.benchmarks.run import BenchSettings, run_bench
        from dmlcsr.export.onnx_export import check_input_size

        check_input_size(input_size)  # both networks are exported at it: refuse before building them
        settings = BenchSettings(
            input_size=input_size, num_classes=num_classes,
            targets=[b.strip() for b in backends.split(",") if b.strip()] if backends else None,
            batch_sizes=parse_ints(batch_sizes, "--batch-sizes") or ((1,) if quick else None),
            schedule=QUICK if quick else Schedule(warmup, iterations, min_seconds),
            module_schedule=QUICK_PARTS if quick else Schedule(1, max(3, iterations // 2)),
            modules=modules, end_to_end=end_to_end, photo=photo, dmlcsr_ckpt=dmlcsr_ckpt,
            eagrnet_ckpt=eagrnet_ckpt, work_dir=work_dir, threads=threads, quick=quick, tag=tag,
            cpu_summary=cpu_summary)
        return run_bench(settings, log=lambda message: click.echo(message, err=True))

    write_section(measure, out, plot=True)


@main.command(context_settings=CONTEXT, epilog=OVERHEAD_EXAMPLES,
              short_help="The runtime's import time and pre+post share of a frame, per photo.")
@runtime_options
@click.option("--images", "image_paths", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Photos to time (repeatable) [default: the example faces shipped with dmlcsr].")
@click.option("--import-runs", type=click.IntRange(min=1), default=9, show_default=True,
              help="Fresh interpreters that time `import dmlcsr.runtime`.")
@output_options
def overhead(model: Path | None, repeats: int, device: str, threads: int | None, image_paths: tuple[Path, ...],
             import_runs: int, out: Path, tag: str) -> None:
    """The runtime's budgets: import time (<= 0.3 s), pre+post share of a frame (<= 5 %).

    Each photo's frame is what FaceParser.parse does to an image in memory, timed stage by
    stage with the functions it calls (pre: crop, warp, normalise; inference; post:
    upsample, argmax, inverse warp); the staged labels must equal parse's.
    """
    from dmlcsr.benchmarks.overhead import OverheadSettings, run_overhead

    settings = OverheadSettings(model=model, images=image_paths, repeats=repeats, import_runs=import_runs,
                                device=device, threads=threads, tag=tag)
    write_section(lambda: run_overhead(settings), out)


@main.command(context_settings=CONTEXT, epilog=PHOTO_EXAMPLES,
              short_help="Detect, parse and composite every face of one photo, per stage.")
@runtime_options
@click.option("--photo", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Photo to time [default: the shipped six-person t1.jpg].")
@output_options
def photo(model: Path | None, repeats: int, device: str, threads: int | None, photo: Path | None, out: Path,
          tag: str) -> None:
    """A whole photo, per stage: detect every face (CenterFace), parse them in one batch,
    composite one label map (medians after one warm-up run)."""
    from dmlcsr.benchmarks.photo import PhotoSettings, run_photo

    settings = PhotoSettings(model=model, photo=photo, repeats=repeats, device=device, threads=threads, tag=tag)
    write_section(lambda: run_photo(settings), out)


@main.command(context_settings=CONTEXT, epilog=RAY_EXAMPLES,
              short_help="Images/s of dmlcsr-parse alone and on Ray actors; Ray's cost per image.")
@click.option("--model", "models", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Exported model to time (repeatable): a DML-CSR, and a small one to show the overhead.")
@click.option("--images", default="40", show_default=True, metavar="N[,M]",
              help="Images per run (the example photos repeated); two counts add marginal s/image and start-up.")
@click.option("--actors", default="1,2", show_default=True, metavar="1,2,...", help="Ray actor counts to time.")
@click.option("--rounds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Rounds; the configurations take turns in each, and each gets its median time.")
@output_options
def ray(models: tuple[Path, ...], images: str, actors: str, rounds: int, out: Path, tag: str) -> None:
    """dmlcsr-parse --faces whole alone, then with --ray on 1, 2, ... actors (a local Ray
    instance over this machine's CPUs, CPUs split between the actors), each a fresh process
    on the same images; the label maps of every run must be byte-identical."""
    from dmlcsr.benchmarks.ray_throughput import RaySettings, run_ray_bench

    def measure() -> dict:
        settings = RaySettings(list(models), parse_ints(images, "--images"), parse_ints(actors, "--actors"), tag,
                               rounds)
        return run_ray_bench(settings, log=lambda message: click.echo(message, err=True))

    write_section(measure, out)


@main.command(context_settings=CONTEXT, epilog=CPP_EXAMPLES,
              short_help="The C++ runtime against FaceParser: ms per stage on the same engine.")
@click.option("--model", "models", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Exported DML-CSR to time (repeatable): .onnx or OpenVINO .xml.")
@click.option("--binary", type=click.Path(dir_okay=False, path_type=Path), default=Path("build/cpp/dmlcsr_parse"),
              show_default=True, help="The built dmlcsr_parse (docs/cpp.md).")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed parses per photo after one warm-up (medians are reported).")
@threads_option("OpenVINO CPU threads [default: its own].")
@output_options
def cpp(models: tuple[Path, ...], binary: Path, repeats: int, threads: int | None, out: Path, tag: str) -> None:
    """dmlcsr_parse --bench and FaceParser on OpenVINO, per example photo: pre, inference and
    post ms, and how many label pixels agree."""
    from dmlcsr.benchmarks.cpp_latency import CppSettings, run_cpp_bench

    def measure() -> dict:
        settings = CppSettings(list(models), binary, repeats, threads, tag)
        return run_cpp_bench(settings, log=lambda message: click.echo(message, err=True))

    write_section(measure, out)


if __name__ == "__main__":
    main()
