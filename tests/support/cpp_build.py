"""Build the C++ runtime (runtime/cpp) for the tests and the C++ latency benchmark.

One CMake build folder, ``build/cpp`` in the checkout, reused between sessions (CMake
rebuilds only what changed), so the C++ costs a minute once and seconds after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "runtime" / "cpp"
BUILD = ROOT / "build" / "cpp"
BINARY = BUILD / "dmlcsr_parse"
#: what .ci/run installs with apt-get; without them the C++ cannot be built
APT_PACKAGES = "libopencv-dev nlohmann-json3-dev"


def missing_prerequisite() -> str | None:
    """Why the C++ runtime cannot be built here, or None when it can."""
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install cmake g++)"
    for header, package in (("/usr/include/opencv4/opencv2/core.hpp", "libopencv-dev"),
                            ("/usr/include/nlohmann/json.hpp", "nlohmann-json3-dev")):
        if not Path(header).is_file():
            return f"{header} is missing (apt-get install {package}; .ci/run installs {APT_PACKAGES})"
    try:
        import openvino
    except ImportError:
        return "the openvino wheel is not installed (pip install 'dmlcsr[openvino]')"
    if not (Path(openvino.__file__).parent / "cmake" / "OpenVINOConfig.cmake").is_file():
        return "the openvino wheel ships no CMake package (openvino/cmake/OpenVINOConfig.cmake)"
    return None


def build_cpp(jobs: int = 2, timeout: float = 900) -> Path:
    """Configure (Release) and build dmlcsr_parse in build/cpp; returns the binary's path.

    OpenVINO is taken from the wheel of the Python running this (OpenVINO_DIR), so the
    binary and the Python runtime under test share one OpenVINO."""
    import openvino

    openvino_dir = Path(openvino.__file__).parent / "cmake"
    env = {**os.environ, "VIRTUAL_ENV": os.environ.get("VIRTUAL_ENV", "")}
    for command in (["cmake", "-S", str(SOURCE), "-B", str(BUILD), "-DCMAKE_BUILD_TYPE=Release",
                     f"-DOpenVINO_DIR={openvino_dir}"],
                    ["cmake", "--build", str(BUILD), "--parallel", str(jobs)]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return BINARY
