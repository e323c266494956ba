"""Which CPU path to deploy: every CPU engine's DML-CSR latency beside its speed-up over
ONNX Runtime FP32 and its label agreement with PyTorch FP32 on the real example photos,
all from one run on one machine.

Agreement needs a model whose labels vary in space and whose logits are confident (a
seeded DML-CSR's barely vary, and INT8 rounding flips most of them), so the bench runs
DML-CSR with the demo checkpoint, or the user's, whenever this summary is made.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dmlcsr.benchmarks.exported_targets import RuntimeCpu
from dmlcsr.benchmarks.models import BenchModel
from dmlcsr.benchmarks.paper import DMLCSR
from dmlcsr.benchmarks.targets import BenchContext, Target
from dmlcsr.errors import DmlcsrWarning
from dmlcsr.export.compare import THRESHOLDS, ParityAccumulator

BASELINE = "ort-cpu-fp32"
#: the folder job: the example photos repeated this many times, parsed whole (--faces whole)
FOLDER_REPEATS = 4
FOLDER_BATCH = 4


def cpu_summary(model: BenchModel, targets: list[Target], results: list[dict], ctx: BenchContext,
                log: Callable[[str], None]) -> dict:
    """One row per CPU runtime target that was timed: median ms at batch 1, speed-up over
    BASELINE, agreement at the output size and after the official upsample, worst class,
    and whether dmlcsr-verify's threshold for that precision holds."""
    from dmlcsr.export.face_inputs import default_image_dir, list_images, preprocess_file

    medians = {r["backend"]: r["latency"]["median_ms"] for r in results
               if r["model"] == DMLCSR and r["batch"] == 1 and r["device"] == "cpu"}
    timed = [t for t in targets if isinstance(t, RuntimeCpu) and t.name in medians]
    photos = list_images(default_image_dir())
    inputs = [preprocess_file(path, ctx.input_size)[None] for path in photos]
    with torch.inference_mode():
        reference = [model.network(torch.from_numpy(x)).numpy() for x in inputs]
    rows = []
    for target in timed:
        backend = target.open(model, ctx)
        accumulator = ParityAccumulator(model.num_classes, ctx.input_size)
        for x, expected in zip(inputs, reference, strict=True):
            accumulator.update(expected, np.asarray(backend.run_single(x), np.float32))
        precision = "bf16" if backend.inference_precision == "bf16" else backend.precision
        report = accumulator.report(target.name, precision, backend.metadata.label_names)
        classes = [c for c in report.per_class if c.agreement is not None]
        worst = min(classes, key=lambda c: c.agreement)
        rows.append({"backend": target.name, "engine": backend.name, "median_ms": medians[target.name],
                     "speedup": medians[BASELINE] / medians[target.name] if BASELINE in medians else None,
                     "agreement_output": report.agreement_logits, "agreement_labels": report.agreement_labels,
                     "worst_class": worst.name, "worst_class_agreement": worst.agreement,
                     "threshold": THRESHOLDS[precision].min_agreement, "passes_verify": report.passed,
                     "per_class": {c.name: c.agreement for c in classes}})
        log(f"cpu summary: {target.name} agrees on {report.agreement_labels:.3%} of the labels")
    return {"model_weights": model.weights, "photos": [p.name for p in photos], "baseline": BASELINE, "rows": rows,
            "folder": folder_throughput(model, timed, ctx, photos, log)}


def folder_throughput(model: BenchModel, targets: list[RuntimeCpu], ctx: BenchContext, photos: list[Path],
                      log: Callable[[str], None]) -> dict:
    """Images per second parsing a folder (the photos x FOLDER_REPEATS, whole-image crops) as
    dmlcsr-parse does: FaceParser.parse_batch in throughput mode, FOLDER_BATCH images per call,
    beside the baseline of one image at a time on ONNX Runtime FP32 (decoding included)."""
    from dmlcsr.runtime import FaceParser, load_image

    images = [load_image(path) for path in photos] * FOLDER_REPEATS
    rows = []
    for target in targets:
        for throughput, batch in ((False, 1), (True, FOLDER_BATCH)):
            if target.name != BASELINE and not throughput:
                continue  # the baseline's sequential row is the reference; others run as dmlcsr-parse does
            with warnings.catch_warnings():  # the INT8-on-CPU advice: this table is where it is measured
                warnings.simplefilter("ignore", DmlcsrWarning)
                parser = FaceParser(target.artefact(model, ctx), "cpu", ctx.threads, engine=target.engine,
                                    inference_precision=target.inference_precision, throughput=throughput)
            parser.parse(images[0])  # warm-up: first-call allocations
            began = time.perf_counter()
            parser.parse_batch(images, batch_size=batch)
            seconds = time.perf_counter() - began
            rows.append({"backend": target.name, "engine": parser.backend.name, "batch": batch,
                         "throughput_mode": throughput, "images": len(images), "seconds": seconds,
                         "images_per_s": len(images) / seconds})
            log(f"folder: {parser.backend.name}, batch {batch}: {len(images) / seconds:.2f} images/s")
    base = next((r for r in rows if r["backend"] == BASELINE and not r["throughput_mode"]), None)
    for row in rows:
        row["speedup"] = row["images_per_s"] / base["images_per_s"] if base else None
    return {"images": len(images), "batch": FOLDER_BATCH, "rows": rows}
