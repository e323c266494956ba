"""What every section's result shares, written once: the JSON frame (tool, section,
environment, settings), the header lines that say what it ran on, and the file name
(date, device, section, tag) under --out."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

from dmlcsr.benchmarks.environment import device_label
from dmlcsr.core.cpu import describe_cpu
from dmlcsr.runtime.output_files import write_atomic

SCHEMA_VERSION = 1
TOOL = "dmlcsr-bench"
#: the sections of dmlcsr-bench; results written before sections existed are latency ones
LATENCY, OVERHEAD, PHOTO, RAY, CPP = "latency", "overhead", "photo", "ray", "cpp"


def section_of(report: dict) -> str:
    return report.get("section", LATENCY)


def new_report(section: str, environment: dict, settings: object) -> dict:
    """The frame every section's JSON starts with; ``settings`` is the section's dataclass."""
    return {"schema_version": SCHEMA_VERSION, "tool": TOOL, "section": section, "environment": environment,
            "settings": settings_dict(settings)}


def settings_dict(settings: object) -> dict:
    """A settings dataclass as JSON-ready values (paths as text)."""
    def plain(value: object) -> object:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return {key: plain(value) for key, value in asdict(settings).items()}


def header(report: dict) -> list[str]:
    """Device, CPU (model, generation, the flags that decide INT8/bf16 speed) and load."""
    env = report["environment"]
    gpu = env.get("gpu")
    return [f"device: {device_label(env)}" + (f", driver {gpu.get('driver', '?')}" if gpu else ""),
            f"cpu: {describe_cpu(env['cpu'])}; "
            f"load average {env.get('load_average_start')} -> {env.get('load_average_end')}"]


def result_stem(report: dict) -> str:
    """e.g. 2026-11-24_amd-epyc-2-cores_quick, 2026-12-05_amd-epyc-2-cores_photo: date,
    device, the section (latency, the default, unnamed), the run's kind and its tag."""
    settings, section = report["settings"], section_of(report)
    parts = [report["environment"]["date"][:10], slug(device_label(report["environment"]))]
    parts += [section] if section != LATENCY else []
    parts += ["quick"] if settings.get("quick") else []
    parts += [slug(settings["tag"])] if settings.get("tag") else []
    return "_".join(parts)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def write_json(report: dict, out_dir: Path) -> Path:
    """OUT_DIR/<result_stem>.json, written through a temporary name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{result_stem(report)}.json"
    write_atomic(path, json.dumps(report, indent=2) + "\n")
    return path
