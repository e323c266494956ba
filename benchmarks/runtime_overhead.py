"""Runtime budgets, measured: import time, pre+post-processing share of a frame, frame latency.

The issue's budgets: ``import dmlcsr.runtime`` <= 0.3 s; pre- plus post-processing <= 5 %
of a frame's total time on CPU at 473x473. A frame here is what ``FaceParser.parse`` does
to an image already in memory, timed stage by stage with the functions it calls:
pre (crop, official warp, normalisation), inference (backend.run), post (upsample +
argmax at 473x473, inverse warp to the image's own size). Medians over repeats, per real
photo; one table, one JSON under benchmarks/results/.

    python -m dmlcsr.benchmarks.runtime_overhead --model demo-fp32.onnx
    python -m dmlcsr.benchmarks.runtime_overhead            # exports the demo model first (needs torch)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import cv2
import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
IMPORT_SNIPPET = "import time; t = time.perf_counter(); import dmlcsr.runtime; print(time.perf_counter() - t)"


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (family/model too: virtual machines often say
    no more than the brand), with the logical CPU count."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        name = f"{fields['model name']}, family {fields.get('cpu family', '?')} model {fields.get('model', '?')}"
    except (OSError, KeyError):
        name = platform.processor() or platform.machine()
    return f"{name} ({os.cpu_count()} logical CPUs)"


def import_seconds(runs: int) -> list[float]:
    """Wall time of ``import dmlcsr.runtime`` in fresh interpreters (nothing cached in-process)."""
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", IMPORT_SNIPPET], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip()))
    return times


def demo_model_onnx(folder: Path, input_size: int) -> Path:
    """The seeded demo DML-CSR exported with dmlcsr.export (torch needed only here)."""
    from dmlcsr.demo_model import make_demo_model
    from dmlcsr.export.onnx_export import deploy_metadata, export_onnx

    model = make_demo_model(19, seed=0, input_size=225)
    return export_onnx(model, folder / "demo-fp32.onnx", deploy_metadata(19, input_size=input_size),
                       input_size=input_size)


def time_stages(parser, image: np.ndarray, repeats: int) -> dict[str, list[float]]:
    """Seconds per stage of parse(image), each repeat running the whole frame once; one plain
    parse(image) first, timed as a whole, whose labels the staged frames must reproduce."""
    from dmlcsr.runtime.images import load_image
    from dmlcsr.runtime.pipeline import crop_for, labels_at_image, preprocess

    stages: dict[str, list[float]] = {"pre": [], "inference": [], "post": [], "frame": [], "parse": []}
    meta = parser.metadata
    start = time.perf_counter()
    whole = parser.parse(image)
    stages["parse"].append(time.perf_counter() - start)
    for _ in range(repeats):
        start = time.perf_counter()
        checked = load_image(image)
        crop = crop_for(checked.shape[:2], None, parser.input_size)
        batch = preprocess(checked, [crop], parser.input_size)
        after_pre = time.perf_counter()
        logits = parser.backend.run({meta.input_name: batch})[meta.output_name]
        after_inference = time.perf_counter()
        labels = labels_at_image(logits[0], crop, checked.shape[:2], parser.input_size)
        end = time.perf_counter()
        stages["pre"].append(after_pre - start)
        stages["inference"].append(after_inference - after_pre)
        stages["post"].append(end - after_inference)
        stages["frame"].append(end - start)
        assert np.array_equal(whole, labels), "the staged frame must be exactly what parse returns"
    return stages


@click.command()
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Exported DML-CSR (.onnx/.engine); default: export the demo model (needs torch).")
@click.option("--images", "image_paths", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Photos to time (repeatable); default: the example faces shipped with dmlcsr.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True, help="Frames per photo.")
@click.option("--import-runs", type=click.IntRange(min=1), default=9, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="JSON path (default under results/).")
def main(model: Path | None, image_paths: tuple[Path, ...], repeats: int, import_runs: int, device: str,
         out: Path | None) -> None:
    """Measure the runtime's import time, pre+post overhead and per-frame latency."""
    from dmlcsr.demo_model import example_face_paths
    from dmlcsr.runtime import FaceParser

    load_at_start = os.getloadavg()[0]  # other work on the machine slows every stage: recorded, not hidden
    imports = import_seconds(import_runs)
    with tempfile.TemporaryDirectory() as scratch:
        path = model or demo_model_onnx(Path(scratch), 473)
        parser = FaceParser(path, device=device)
        paths = list(image_paths) or example_face_paths()
        parser.parse(cv2.imread(str(paths[0])))  # warm-up: first run allocates
        rows = []
        for photo in paths:
            image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
            stages = time_stages(parser, image, repeats)
            median = {k: statistics.median(v) for k, v in stages.items()}
            rows.append({"image": photo.name, "size": f"{image.shape[1]}x{image.shape[0]}",
                         **{f"{k}_ms": round(v * 1000, 2) for k, v in median.items()},
                         "overhead_pct": round(100 * (median["pre"] + median["post"]) / median["frame"], 2)})
    overhead = [r["overhead_pct"] for r in rows]
    summary = {
        "device": cpu_name(), "backend": parser.backend.name, "model": Path(path).name,
        "input_size": list(parser.input_size), "python": platform.python_version(),
        "onnxruntime": _version("onnxruntime"), "opencv": cv2.__version__, "numpy": np.__version__,
        "load_average_1min": {"start": round(load_at_start, 2), "end": round(os.getloadavg()[0], 2)},
        "repeats": repeats,
        "import_s": {"median": round(statistics.median(imports), 4), "min": round(min(imports), 4),
                     "runs": len(imports), "budget": 0.3},
        "frame_ms_median": round(statistics.median(r["frame_ms"] for r in rows), 1),
        "overhead_pct": {"median": round(statistics.median(overhead), 2), "max": max(overhead), "budget": 5.0},
        "images": rows,
    }
    _print_table(summary)
    out = out or RESULTS / f"runtime_overhead-{_slug(summary['device'])}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    click.echo(f"wrote {out}")


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except ImportError:
        return "absent"


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def _print_table(summary: dict) -> None:
    click.echo(f"device: {summary['device']}; backend {summary['backend']}; input {summary['input_size']}; "
               f"1-min load average {summary['load_average_1min']['start']} -> {summary['load_average_1min']['end']}")
    imp = summary["import_s"]
    click.echo(f"import dmlcsr.runtime: median {imp['median']:.3f} s, min {imp['min']:.3f} s "
               f"over {imp['runs']} fresh interpreters (budget {imp['budget']} s)")
    header = f"{'image':<22}{'size':>11}{'pre ms':>9}{'infer ms':>10}{'post ms':>9}{'frame ms':>10}" \
             f"{'parse ms':>10}{'pre+post %':>12}"
    click.echo(header)
    click.echo("-" * len(header))
    for r in summary["images"]:
        click.echo(f"{r['image']:<22}{r['size']:>11}{r['pre_ms']:>9.1f}{r['inference_ms']:>10.1f}{r['post_ms']:>9.1f}"
                   f"{r['frame_ms']:>10.1f}{r['parse_ms']:>10.1f}{r['overhead_pct']:>12.2f}")
    over = summary["overhead_pct"]
    click.echo(f"median frame {summary['frame_ms_median']:.0f} ms; pre+post median {over['median']:.2f} % "
               f"(max {over['max']:.2f} %, budget {over['budget']} %)")


if __name__ == "__main__":
    main()
