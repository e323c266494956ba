"""C++ runtime (runtime/cpp, dmlcsr_parse) against the Python FaceParser: same model, same engine.

``dmlcsr-bench cpp --model MODEL [--model MODEL...] --binary build/cpp/dmlcsr_parse``
times one whole-image parse of each example photo already in memory, stage by stage:
pre (crop, warp, normalise), inference, post (upsample, argmax, inverse warp). Python:
FaceParser on OpenVINO (FP32 compute, as the C++ asks for), staged with the functions parse
calls (dmlcsr.benchmarks.overhead.time_stages, which checks the staged labels equal parse's).
C++: ``dmlcsr_parse MODEL PHOTO OUT --bench N`` (its own medians of N parses after the first).
Both also report how many label pixels agree. Medians over repeats, then over photos; the
report is the frame every dmlcsr-bench section writes. Build the binary first
(cmake -S runtime/cpp -B build/cpp && cmake --build build/cpp).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dmlcsr.benchmarks.environment import describe_environment, finish_environment
from dmlcsr.benchmarks.overhead import time_stages
from dmlcsr.benchmarks.report import CPP, new_report
from dmlcsr.benchmarks.runtime_inputs import example_photos
from dmlcsr.errors import DmlcsrError

STAGES = ("pre", "infer", "post", "total")


@dataclass
class CppSettings:
    """The models to time, the built binary, parses per photo, OpenVINO threads, the file tag."""

    models: list[Path] = field(default_factory=list)
    binary: Path = Path("build/cpp/dmlcsr_parse")
    repeats: int = 5
    threads: int | None = None
    tag: str = ""


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
            raise DmlcsrError(f"dmlcsr_parse failed on {photo.name}: {result.stderr.strip()}")
        timing = json.loads(result.stdout)
        labels = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    return {"backend": timing["backend"], **{f"{k}_ms": round(timing[f"{k}_ms"], 2) for k in STAGES}}, labels


def summary(rows: list[dict]) -> dict:
    return {f"{k}_ms": round(statistics.median(row[f"{k}_ms"] for row in rows), 2) for k in STAGES}


def run_cpp_bench(settings: CppSettings, log: Callable[[str], None] = print) -> dict:
    """Both runtimes on every model and example photo; the report for dmlcsr-bench."""
    if not settings.binary.is_file():
        raise DmlcsrError(f"{settings.binary} is not built; cmake -S runtime/cpp -B build/cpp && "
                          "cmake --build build/cpp (docs/cpp.md)")
    report = new_report(CPP, describe_environment(with_torch=False), settings)
    report["models"] = []
    for model in settings.models:
        entry: dict = {"model": model.name, "photos": []}
        for photo in example_photos():
            python, python_labels = python_row(model, photo, settings.repeats, settings.threads)
            cpp, cpp_labels = cpp_row(settings.binary, model, photo, settings.repeats, settings.threads)
            entry["photos"].append({"image": photo.name, "python": python, "cpp": cpp,
                                    "agreement": round(float((python_labels == cpp_labels).mean()), 6)})
            log(f"{model.name} {photo.name}: C++ {cpp['total_ms']} ms, Python {python['total_ms']} ms, "
                f"agreement {entry['photos'][-1]['agreement']:.4%}")
        entry["median"] = {side: summary([p[side] for p in entry["photos"]]) for side in ("cpp", "python")}
        entry["backend"] = {side: entry["photos"][0][side]["backend"] for side in ("cpp", "python")}
        report["models"].append(entry)
    finish_environment(report["environment"])
    return report
