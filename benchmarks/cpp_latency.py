"""C++ runtime (runtime/cpp, dmlcsr_parse) against the Python FaceParser: same model, same engine.

``python -m dmlcsr.benchmarks.cpp_latency MODEL [MODEL...] --binary build/cpp/dmlcsr_parse``
times one whole-image parse of each example photo already in memory, stage by stage:
pre (crop, warp, normalise), inference, post (upsample, argmax, inverse warp). Python:
FaceParser on OpenVINO (FP32 compute, as the C++ asks for), staged with the functions parse
calls (dmlcsr.benchmarks.overhead.time_stages, which checks the staged labels equal parse's).
C++: ``dmlcsr_parse MODEL PHOTO OUT --bench N`` (its own medians of N parses after the first).
Both also report how many label pixels agree. Medians over repeats, then over photos; JSON
to --out. Build the binary first (cmake -S runtime/cpp -B build/cpp && cmake --build build/cpp).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
from pathlib import Path

import click
import cv2
import numpy as np

from dmlcsr.benchmarks.environment import describe_environment, finish_environment
from dmlcsr.benchmarks.overhead import time_stages
from dmlcsr.demo_model import example_face_paths
from dmlcsr.runtime.output_files import write_atomic

STAGES = ("pre", "infer", "post", "total")


def python_row(model: Path, photo: Path, repeats: int, threads: int | None) -> tuple[dict, np.ndarray]:
    """Median ms per stage of FaceParser on OpenVINO, and its labels."""
    from dmlcsr.runtime import FaceParser

    parser = FaceParser(model, device="cpu", engine="openvino", threads=threads)
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    parser.parse(image)  # warm-up: the first request allocates
    stages = time_stages(parser, image, repeats)
    median = {key: statistics.median(stages[name]) * 1000
              for key, name in zip(STAGES, ("pre", "inference", "post", "frame"), strict=True)}
    return {"backend": parser.backend.name, **{f"{k}_ms": round(v, 2) for k, v in median.items()}}, parser.parse(image)


def cpp_row(binary: Path, model: Path, photo: Path, repeats: int, threads: int | None) -> tuple[dict, np.ndarray]:
    """Median ms per stage of dmlcsr_parse --bench (its first parse is the warm-up), and its labels."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "labels.png"
        command = [str(binary), str(model), str(photo), str(out), "--bench", str(repeats)]
        if threads:
            command += ["--threads", str(threads)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise click.ClickException(f"dmlcsr_parse failed on {photo.name}: {result.stderr.strip()}")
        timing = json.loads(result.stdout)
        labels = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    return {"backend": timing["backend"], **{f"{k}_ms": round(timing[f"{k}_ms"], 2) for k in STAGES}}, labels


def summary(rows: list[dict]) -> dict:
    return {f"{k}_ms": round(statistics.median(row[f"{k}_ms"] for row in rows), 2) for k in STAGES}


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--binary", default=Path("build/cpp/dmlcsr_parse"), show_default=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="the built dmlcsr_parse")
@click.option("--repeats", default=5, show_default=True, help="timed parses per photo (after one warm-up)")
@click.option("--threads", type=int, default=None, help="OpenVINO CPU threads (default: the engine's)")
@click.option("--out", default=Path("."), show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--tag", default="", help="appended to the JSON's name")
def main(models: tuple[Path, ...], binary: Path, repeats: int, threads: int | None, out: Path, tag: str) -> None:
    """Time the C++ and the Python runtime on MODELS (.onnx / OpenVINO .xml) and the example photos."""
    environment = describe_environment(with_torch=False)
    report: dict = {"section": "cpp_latency", "settings": {"repeats": repeats, "threads": threads}, "models": []}
    for model in models:
        entry: dict = {"model": model.name, "photos": []}
        for photo in example_face_paths():
            python, python_labels = python_row(model, photo, repeats, threads)
            cpp, cpp_labels = cpp_row(binary, model, photo, repeats, threads)
            entry["photos"].append({"image": photo.name, "python": python, "cpp": cpp,
                                    "agreement": round(float((python_labels == cpp_labels).mean()), 6)})
            click.echo(f"{model.name} {photo.name}: C++ {cpp['total_ms']} ms, Python {python['total_ms']} ms, "
                       f"agreement {entry['photos'][-1]['agreement']:.4%}")
        entry["median"] = {side: summary([p[side] for p in entry["photos"]]) for side in ("cpp", "python")}
        entry["backend"] = {side: entry["photos"][0][side]["backend"] for side in ("cpp", "python")}
        report["models"].append(entry)
    report["environment"] = finish_environment(environment)
    out.mkdir(parents=True, exist_ok=True)
    # not named like the dmlcsr-bench reports (date first): tests/test_bench_report.py reads those
    cores = environment["cpu"].get("logical_cores", "?")
    path = out / f"cpp_latency-{cores}-cores-{environment['date'][:10]}{'-' + tag if tag else ''}.json"
    write_atomic(path, json.dumps(report, indent=2))
    click.echo(table(report))
    click.echo(f"wrote {path}")


def table(report: dict) -> str:
    """Markdown: one row per model and runtime, median over photos of the per-photo medians."""
    lines = ["| model | runtime | pre ms | infer ms | post ms | end-to-end ms |", "|---|---|---|---|---|---|"]
    for entry in report["models"]:
        for side, name in (("cpp", "C++ dmlcsr_parse"), ("python", "Python FaceParser")):
            m = entry["median"][side]
            lines.append(f"| {entry['model']} | {name} | {m['pre_ms']} | {m['infer_ms']} | {m['post_ms']} | "
                         f"{m['total_ms']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
