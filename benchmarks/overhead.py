"""Runtime budgets, measured: import time, pre+post-processing share of a frame, frame latency.

The issue's budgets: ``import dmlcsr.runtime`` <= 0.3 s; pre- plus post-processing <= 5 %
of a frame's total time on CPU at 473x473. A frame here is what ``FaceParser.parse`` does
to an image already in memory, timed stage by stage with the functions it calls:
pre (crop, official warp, normalisation), inference (backend.run), post (upsample +
argmax at 473x473, inverse warp to the image's own size). Medians over repeats, per real
photo (``dmlcsr-bench overhead``).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dmlcsr.benchmarks.environment import describe_environment, finish_environment
from dmlcsr.benchmarks.report import OVERHEAD, new_report
from dmlcsr.benchmarks.runtime_inputs import RuntimeSettings, example_photos, model_file
from dmlcsr.errors import DmlcsrError

IMPORT_SNIPPET = "import time; t = time.perf_counter(); import dmlcsr.runtime; print(time.perf_counter() - t)"
IMPORT_BUDGET_S = 0.3
OVERHEAD_BUDGET_PCT = 5.0


@dataclass
class OverheadSettings(RuntimeSettings):
    """The photos (none: the shipped examples) and how many fresh interpreters time the import."""

    images: tuple[Path, ...] = ()
    import_runs: int = 9


def import_seconds(runs: int) -> list[float]:
    """Wall time of ``import dmlcsr.runtime`` in fresh interpreters (nothing cached in-process)."""
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", IMPORT_SNIPPET], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip()))
    return times


def time_stages(parser, image: np.ndarray, repeats: int) -> dict[str, list[float]]:
    """Seconds per stage of parse(image), each repeat running the whole frame once; one plain
    parse(image) first, timed as a whole, whose labels the staged frames must reproduce."""
    from dmlcsr.core.pipeline import crop_for, labels_at_image, preprocess
    from dmlcsr.runtime.images import load_image

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
        if not np.array_equal(whole, labels):
            raise DmlcsrError("the staged frame differs from what FaceParser.parse returns: the stages timed are "
                              "not the runtime's")
    return stages


def photo_row(photo: Path, image: np.ndarray, stages: dict[str, list[float]]) -> dict:
    """One photo's medians in ms and its pre+post share of the frame."""
    median = {k: statistics.median(v) for k, v in stages.items()}
    return {"image": photo.name, "size": f"{image.shape[1]}x{image.shape[0]}",
            **{f"{k}_ms": round(v * 1000, 2) for k, v in median.items()},
            "overhead_pct": round(100 * (median["pre"] + median["post"]) / median["frame"], 2)}


def run_overhead(settings: OverheadSettings) -> dict:
    """Import time in fresh interpreters, then every photo's staged frames (after one warm-up
    parse: the first run allocates)."""
    from dmlcsr.runtime import FaceParser

    environment = describe_environment(with_torch=False)  # load at the start: other work slows every stage
    imports = import_seconds(settings.import_runs)
    with model_file(settings.model) as path:
        parser = FaceParser(path, device=settings.device, threads=settings.threads)
        paths = list(settings.images) or example_photos()
        parser.parse(cv2.imread(str(paths[0])))
        rows = []
        for photo in paths:
            image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
            rows.append(photo_row(photo, image, time_stages(parser, image, settings.repeats)))
    overhead = [r["overhead_pct"] for r in rows]
    return {
        **new_report(OVERHEAD, finish_environment(environment), settings),
        "backend": parser.backend.name, "model": Path(path).name, "input_size": list(parser.input_size),
        "import_s": {"median": round(statistics.median(imports), 4), "min": round(min(imports), 4),
                     "runs": len(imports), "budget": IMPORT_BUDGET_S},
        "frame_ms_median": round(statistics.median(r["frame_ms"] for r in rows), 1),
        "overhead_pct": {"median": round(statistics.median(overhead), 2), "max": max(overhead),
                         "budget": OVERHEAD_BUDGET_PCT},
        "images": rows,
    }
