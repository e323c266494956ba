"""What this CPU can do fast: the instruction sets that decide whether INT8 and bf16 pay.

Torch-free and cheap (one read of /proc/cpuinfo, cached), so the runtime can warn before
it runs INT8 on a CPU without int8 dot products, and benchmarks can name the CPU beside
every figure.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

#: CPU features that change which kernels run: bf16 is native only with AMX or
#: AVX512-BF16; INT8 is fast only with VNNI (AVX512-VNNI or AVX-VNNI) or AMX
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


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
            "native_bf16": bool(flags & set(BF16_FLAGS)),
            "native_int8_dot": bool(flags & set(INT8_DOT_FLAGS))}


@functools.cache
def this_cpu() -> dict:
    """cpu_info() of the machine this process runs on, read once."""
    return cpu_info()


def describe_cpu(cpu: dict) -> str:
    """'AMD EPYC (family 26 model 2), 2 cores, avx512_vnni avx_vnni avx512_bf16': for notes and tables."""
    generation = f" (family {cpu['family']} model {cpu['model_id']})" if cpu.get("family") else ""
    return f"{cpu['model']}{generation}, {cpu['logical_cores']} cores, {' '.join(cpu['flags']) or 'no AVX2'}"


def int8_note(cpu: dict) -> str:
    """What to say next to CPU INT8 figures."""
    if cpu["native_int8_dot"]:
        return f"int8 dot products in hardware ({', '.join(f for f in cpu['flags'] if f in INT8_DOT_FLAGS)})"
    return "this CPU has no VNNI: int8 convolutions gain little over fp32"


def bf16_note(cpu: dict) -> str:
    """What to say next to CPU bf16 figures."""
    if cpu["native_bf16"]:
        return f"native bf16 ({', '.join(f for f in cpu['flags'] if f in BF16_FLAGS)})"
    return "this CPU has neither AMX nor AVX512-BF16: bf16 is emulated and slower than fp32"
