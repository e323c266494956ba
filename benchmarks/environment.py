"""What a latency figure was measured on: CPU model and the instruction sets that decide
bf16/INT8 speed, GPU and driver, library versions, and how loaded the machine was."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path

#: CPU features that change which kernels run: bf16 is native only with AMX or
#: AVX512-BF16; INT8 is fast only with VNNI (AVX512-VNNI or AVX-VNNI)
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
LIBRARIES = ("torch", "onnxruntime", "onnxruntime-gpu", "onnx", "tensorrt", "numpy", "opencv-python-headless",
             "dmlcsr")


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """Model name, family/model, logical cores and the CPU_FLAGS present (Linux)."""
    fields: dict[str, str] = {}
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            fields.setdefault(key, value)  # the first processor's
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name") or platform.processor() or "unknown",
            # virtual machines often show a bare "AMD EPYC": family/model pin the generation down
            "family": fields.get("cpu family"), "model_id": fields.get("model"),
            "logical_cores": os.cpu_count(), "flags": [f for f in CPU_FLAGS if f in flags],
            "native_bf16": bool(flags & {"avx512_bf16", "amx_bf16"}),
            "native_int8_dot": bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})}


def bf16_note(cpu: dict) -> str:
    """What to say next to CPU bf16 figures."""
    if cpu["native_bf16"]:
        return f"native bf16 ({', '.join(f for f in cpu['flags'] if 'bf16' in f)})"
    return "this CPU has neither AMX nor AVX512-BF16: bf16 is emulated and slower than fp32"


def int8_note(cpu: dict) -> str:
    if cpu["native_int8_dot"]:
        found = [f for f in cpu["flags"] if "vnni" in f or "int8" in f]
        return f"int8 dot products in hardware ({', '.join(found)})"
    return "this CPU has no VNNI: int8 convolutions gain little over fp32"


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def gpu_info() -> dict | None:
    """The CUDA device torch sees, with driver and cuDNN versions; None without a GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    info = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
            "compute_capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()}
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                              "--format=csv,noheader"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            driver, clock, power = (v.strip() for v in out.stdout.splitlines()[0].split(","))
            info.update(driver=driver, max_sm_clock=clock, power_limit=power)
    return info


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: above the core count, other work shared the CPU."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def describe_environment() -> dict:
    """Everything above plus the date, OS, Python and torch's thread count."""
    import torch

    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(), "python": platform.python_version(),
        "cpu": cpu_info(), "gpu": gpu_info(), "libraries": library_versions(),
        "torch_threads": torch.get_num_threads(), "load_average_start": load_average(),
    }


def device_label(environment: dict) -> str:
    """Short name for tables and file names: the GPU if any, else the CPU."""
    gpu = environment.get("gpu")
    if gpu:
        return gpu["name"]
    cpu = environment["cpu"]
    return f"{cpu['model']} ({cpu['logical_cores']} cores)"
