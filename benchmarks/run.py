"""The latency section (dmlcsr-bench's default): both networks on every selected target
that can run here, then the CPU summary, the per-part timings and the runtime's
end-to-end latency; returns one JSON-ready dict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from dmlcsr.benchmarks.environment import describe_environment, finish_environment
from dmlcsr.benchmarks.exported_targets import RuntimeCpu
from dmlcsr.benchmarks.harness import Schedule, measure_interleaved
from dmlcsr.benchmarks.models import BenchModel, load_models
from dmlcsr.benchmarks.paper import DMLCSR, EAGRNET, PAPER_MS, PAPER_RATIO
from dmlcsr.benchmarks.registry import select_targets
from dmlcsr.benchmarks.report import LATENCY, new_report
from dmlcsr.benchmarks.targets import BenchContext, Target, example_batch
from dmlcsr.core.geometry import INPUT_SIZE
from dmlcsr.errors import DmlcsrError
from dmlcsr.size_report import PAPER_FIGURES

DEFAULT_BATCHES = {"cpu": (1, 2), "cuda": (1, 8, 32)}


@dataclass
class BenchSettings:
    """Everything that decides what is measured (recorded in the JSON as is)."""

    input_size: tuple[int, int] = INPUT_SIZE
    num_classes: int = 19
    targets: list[str] | None = None
    batch_sizes: tuple[int, ...] | None = None
    schedule: Schedule = field(default_factory=Schedule)
    module_schedule: Schedule = field(default_factory=lambda: Schedule(warmup=1, iterations=5))
    modules: bool = True
    end_to_end: bool = True
    photo: Path | None = None
    dmlcsr_ckpt: Path | None = None
    eagrnet_ckpt: Path | None = None
    work_dir: Path = Path(".dmlcsr-bench")
    threads: int | None = None
    quick: bool = False
    tag: str = ""
    cpu_summary: bool = True

    def batches_for(self, target: Target) -> tuple[int, ...]:
        return self.batch_sizes or DEFAULT_BATCHES[target.device]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:240]


def time_target(target: Target, models: list[BenchModel], batch: int, ctx: BenchContext, schedule: Schedule,
                progress: tqdm) -> list[dict]:
    """Both networks at ``batch`` on ``target``, timed interleaved."""
    prepared = [target.prepare(model, batch, ctx) for model in models]
    latencies = measure_interleaved([p.run for p in prepared], schedule, [p.clock for p in prepared],
                                    on_sample=lambda: progress.update(1))
    return [{"backend": target.name, "device": target.device, "model": model.name, "batch": batch,
             "latency": asdict(latency), "throughput_ips": batch * 1e3 / latency.median_ms, "note": p.note}
            for model, p, latency in zip(models, prepared, latencies, strict=True)]


def ratios(results: list[dict]) -> list[dict]:
    """EAGRNet / DML-CSR median latency per backend and batch, beside the paper's."""
    by_key = {(r["backend"], r["batch"], r["model"]): r["latency"]["median_ms"] for r in results}
    rows = []
    for backend, batch, model in by_key:
        if model == DMLCSR and (backend, batch, EAGRNET) in by_key:
            dml, eagr = by_key[(backend, batch, DMLCSR)], by_key[(backend, batch, EAGRNET)]
            rows.append({"backend": backend, "batch": batch, "dmlcsr_ms": dml, "eagrnet_ms": eagr,
                         "ratio": eagr / dml, "paper_ratio": PAPER_RATIO})
    return rows


def run_bench(settings: BenchSettings, log: Callable[[str], None] = print) -> dict:
    """Measure per ``settings``; messages (skips, failures) go to ``log``."""
    targets = select_targets(settings.targets)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    environment = describe_environment()
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    summarise = settings.cpu_summary and any(isinstance(t, RuntimeCpu) for t in targets)
    dmlcsr_ckpt = settings.dmlcsr_ckpt
    if summarise and dmlcsr_ckpt is None:  # label agreement needs confident logits (see cpu_summary)
        from dmlcsr.export.artefacts import make_demo_checkpoint

        dmlcsr_ckpt = make_demo_checkpoint(settings.work_dir, settings.input_size, log, settings.num_classes)
    log(f"building both networks at {settings.input_size[0]}x{settings.input_size[1]} (FLOPs counted on one forward)")
    models = load_models(settings.num_classes, settings.input_size, dmlcsr_ckpt, settings.eagrnet_ckpt)
    ctx = BenchContext(settings.input_size, settings.work_dir, environment["cpu"], settings.threads)
    results, skipped = [], []
    for target in targets:
        reason = target.skip_reason(ctx)
        if reason:
            log(f"skipping {target.name}: {reason}")
            skipped.append({"backend": target.name, "reason": reason})
            continue
        batches = settings.batches_for(target)
        rounds = settings.schedule.warmup + settings.schedule.iterations
        with tqdm(total=len(batches) * len(models) * rounds, desc=target.name, unit="run", leave=False) as progress:
            for batch in batches:
                try:
                    results += time_target(target, models, batch, ctx, settings.schedule, progress)
                except (DmlcsrError, RuntimeError, ImportError, OSError, ValueError) as exc:
                    reason = f"failed at batch {batch}: {first_line(exc)}"
                    log(f"skipping {target.name}: {reason}")
                    skipped.append({"backend": target.name, "reason": reason})
                    break
        target.release()
    report = {
        **new_report(LATENCY, environment, settings),
        "models": {m.name: {"params": m.params, "gflops": m.gflops, "weights": m.weights,
                            "paper_ms": PAPER_MS[m.name], "paper_params_m": PAPER_FIGURES[m.name][0],
                            "paper_gflops": PAPER_FIGURES[m.name][1]} for m in models},
        "results": results, "ratios": ratios(results), "skipped": skipped,
    }
    if summarise:
        from dmlcsr.benchmarks.cpu_summary import cpu_summary

        report["cpu_summary"] = cpu_summary(models[0], targets, results, ctx, log)
    if settings.modules:
        report["modules"] = module_report(models, settings, results, environment)
    if settings.end_to_end:
        report["end_to_end"] = end_to_end_report(models[0], ctx, settings, log)
    finish_environment(environment)
    return report


def module_report(models: list[BenchModel], settings: BenchSettings, results: list[dict], environment: dict
                  ) -> dict:
    """Per-part timings on torch fp32 (the CPU, and the GPU where there is one)."""
    from dmlcsr.benchmarks.module_timing import PARTS, summarize, time_parts

    report = {}
    devices = ["cpu"] + (["cuda"] if environment.get("gpu") else [])
    x = torch.from_numpy(example_batch(1, settings.input_size))
    for device in devices:
        backend = f"torch-{device}-fp32"
        calls = (1 + sum(len(parts) for parts in PARTS.values())) * (
            settings.module_schedule.warmup + settings.module_schedule.iterations)
        with tqdm(total=calls, desc=f"parts on {device}", unit="run", leave=False) as progress:
            rows = time_parts(models, x, settings.module_schedule, device, on_sample=lambda: progress.update(1))
        whole = {r["model"]: r["latency"]["median_ms"] for r in results if r["backend"] == backend
                 and r["batch"] == 1}
        report[backend] = summarize(rows, whole)
    return report


def end_to_end_report(model: BenchModel, ctx: BenchContext, settings: BenchSettings, log: Callable[[str], None]
                      ) -> dict | None:
    """FaceParser over DML-CSR's FP32 ONNX on a real photo (the best device present)."""
    from dmlcsr.benchmarks.artefacts import fp32_onnx
    from dmlcsr.benchmarks.end_to_end import time_end_to_end
    from dmlcsr.benchmarks.runtime_inputs import example_photo

    photo = settings.photo or example_photo("astronaut.png")
    try:
        path = fp32_onnx(model, ctx)
        with tqdm(total=4 * (settings.schedule.warmup + settings.schedule.iterations), desc="end to end",
                  unit="run", leave=False) as progress:
            return time_end_to_end(path, photo, settings.schedule, threads=settings.threads,
                                   on_sample=lambda: progress.update(1))
    except (DmlcsrError, ImportError, RuntimeError, OSError) as exc:
        log(f"skipping the end-to-end latency: {first_line(exc)}")
        return {"skipped": first_line(exc)}

