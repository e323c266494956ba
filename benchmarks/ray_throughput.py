"""Images per second of dmlcsr-parse alone, and on Ray with 1 and with N actors.

Each configuration is one run of the command as a user would start it (a fresh process:
import, model load, and for Ray the connection and the actors' start-up), on the example
photos repeated to ``images`` files, --faces whole; over several rounds the configurations
take turns and each gets its median. The Ray instance is started once by the section and
joined by every run (``--ray ADDRESS``), as a cluster would be. The label PNGs
of every configuration must be byte-identical; each configuration runs once untimed on 2
images first (the model file in the page cache, Ray's worker processes started). With two
image counts (e.g. 40,200) each configuration also gets its marginal seconds per image (the
slope) and its fixed start-up (the intercept): on a small model, the slope difference is
Ray's overhead per image.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from dmlcsr.benchmarks.environment import describe_environment, finish_environment
from dmlcsr.benchmarks.report import RAY, new_report
from dmlcsr.benchmarks.runtime_inputs import example_photos
from dmlcsr.errors import DmlcsrError

CLI = "from dmlcsr.runtime.cli import main; main()"
SINGLE = "dmlcsr-parse"


@dataclass
class RaySettings:
    """The models to time, image counts, actor counts, the file tag, rounds (medians)."""

    models: list[Path] = field(default_factory=list)
    images: tuple[int, ...] = (40,)
    actors: tuple[int, ...] = (1, 2)
    tag: str = ""
    rounds: int = 1


def photo_folder(folder: Path, count: int) -> Path:
    """The example photos repeated (copied) to ``count`` files, names unique."""
    photos = example_photos()
    folder.mkdir(parents=True)
    for index in range(count):
        source = photos[index % len(photos)]
        shutil.copy(source, folder / f"{index:04d}_{source.name}")
    return folder


def run_config(model: Path, photos: Path, out: Path, address: str | None, actors: int, cpus: int) -> float:
    """Wall seconds of one dmlcsr-parse run (``address`` None: without Ray)."""
    command = [sys.executable, "-c", CLI, str(model), str(photos), "--faces", "whole", "--device", "cpu",
               "--out", str(out)]
    if address is not None:
        command += ["--ray", address, "--actors", str(actors), "--cpus-per-actor", str(max(1, cpus // actors))]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise DmlcsrError(f"{' '.join(command[3:])} failed ({done.returncode}): "
                          f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return seconds


def label_pngs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.png"))}


def time_model(model: Path, settings: RaySettings, address: str, cpus: int, work: Path, log) -> dict:
    """Every configuration at every image count for one model; outputs checked equal."""
    configs = [(SINGLE, None, 0)] + [(f"ray, {n} actor{'s' * (n > 1)}", address, n) for n in settings.actors]
    warm = photo_folder(work / "warm-up", 2)
    for _, config_address, actors in configs:  # untimed: Ray's worker processes and the OS page cache start warm
        run_config(model, warm, work / f"warm-up-out-{actors}", config_address, actors, cpus)
    runs = []
    for count in settings.images:
        photos = photo_folder(work / f"photos-{count}", count)
        walls: dict[str, list[float]] = {name: [] for name, _, _ in configs}
        for round_ in range(settings.rounds):  # configurations interleaved: load from other jobs hits all alike
            reference = None
            for name, config_address, actors in configs:
                out = work / f"out-{model.stem}-{count}-{actors}"
                log(f"{model.name}: {name}, {count} images, round {round_ + 1} of {settings.rounds} ...")
                seconds = run_config(model, photos, out, config_address, actors, cpus)
                pngs = label_pngs(out)
                if len(pngs) != count or (reference is not None and pngs != reference):
                    raise DmlcsrError(f"{name} wrote {len(pngs)} label maps for {count} images, or other bytes "
                                      f"than {SINGLE}; the figures would compare different work")
                reference = reference or pngs
                shutil.rmtree(out)
                walls[name].append(seconds)
                log(f"  {seconds:.1f} s, {count / seconds:.2f} images/s")
        for name, _, actors in configs:
            seconds = statistics.median(walls[name])
            runs.append({"config": name, "actors": actors, "images": count, "wall_s": round(seconds, 2),
                         "wall_s_rounds": [round(v, 2) for v in walls[name]],
                         "images_per_s": round(count / seconds, 3), "s_per_image": round(seconds / count, 4)})
        shutil.rmtree(photos)
    return {"model": model.name, "runs": runs, "per_config": per_config(runs, settings.images)}


def per_config(runs: list[dict], counts: tuple[int, ...]) -> list[dict]:
    """Per configuration: seconds per image at the smallest count and, with two counts, the
    marginal seconds per image and the fixed start-up they imply; each against dmlcsr-parse alone."""
    low, high = min(counts), max(counts)
    rows = []
    for config in dict.fromkeys(run["config"] for run in runs):
        at = {run["images"]: run for run in runs if run["config"] == config}
        row = {"config": config, "images_per_s": at[low]["images_per_s"], "s_per_image": at[low]["s_per_image"]}
        if high > low:
            slope = (at[high]["wall_s"] - at[low]["wall_s"]) / (high - low)
            row.update(marginal_s_per_image=round(slope, 4), startup_s=round(at[low]["wall_s"] - low * slope, 2))
        rows.append(row)
    base = rows[0]
    for row in rows[1:]:
        row["overhead_s_per_image"] = round(row["s_per_image"] - base["s_per_image"], 4)
        if "marginal_s_per_image" in row:
            row["marginal_overhead_s_per_image"] = round(row["marginal_s_per_image"] - base["marginal_s_per_image"],
                                                         4)
    return rows


def run_ray_bench(settings: RaySettings, log=print) -> dict:
    """The section: a local Ray instance over this machine's CPUs, each model timed."""
    try:
        import ray
    except ImportError:
        raise DmlcsrError('the ray section needs Ray Data: pip install "dmlcsr[ray]"') from None
    if not settings.models:
        raise DmlcsrError("name the models to time with --model (e.g. the demo at 473 and a small one)")
    environment = describe_environment(with_torch=False)
    cpus = os.cpu_count() or 1
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        address = ray.get_runtime_context().gcs_address
        with tempfile.TemporaryDirectory() as scratch:
            models = [time_model(model, settings, address, cpus, Path(scratch) / str(index), log)
                      for index, model in enumerate(settings.models)]
    finally:
        ray.shutdown()
    return {**new_report(RAY, finish_environment(environment), settings), "cpus": cpus, "faces": "whole",
            "models": models}
