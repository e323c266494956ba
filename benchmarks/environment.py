"""What a figure was measured on, recorded the same way by every section: date, CPU model
and the instruction sets that decide bf16/INT8 speed, GPU and driver, library versions,
and how loaded the machine was at the start and at the end (2 shared cores run slower)."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import shutil
import subprocess

from dmlcsr.core.cpu import this_cpu

LIBRARIES = ("torch", "onnxruntime", "onnxruntime-gpu", "onnx", "openvino", "nncf", "tensorrt", "numpy",
             "opencv-python-headless", "dmlcsr")


def library_versions() -> dict[str, str]:
    """Installed versions, read from package metadata (nothing imported)."""
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


def describe_environment(with_torch: bool = True) -> dict:
    """Everything above plus the date, OS and Python. ``with_torch=False`` for the runtime
    sections: they must run where torch is absent and must not load it beside the runtime
    they time, so the GPU (named by the backend instead) and torch's threads are left out."""
    environment = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(), "python": platform.python_version(), "cpu": dict(this_cpu()),
        "libraries": library_versions(),
    }
    if with_torch:
        import torch

        environment.update(gpu=gpu_info(), torch_threads=torch.get_num_threads())
    environment["load_average_start"] = load_average()
    return environment


def finish_environment(environment: dict) -> dict:
    """Stamp the load average at the end of the run (the start's is taken first)."""
    environment["load_average_end"] = load_average()
    return environment


def device_label(environment: dict) -> str:
    """Short name for tables and file names: the GPU if any, else the CPU."""
    gpu = environment.get("gpu")
    if gpu:
        return gpu["name"]
    cpu = environment["cpu"]
    return f"{cpu['model']} ({cpu['logical_cores']} cores)"
