#!/usr/bin/env bash
# One command on a fresh machine: set up a virtual environment, install dmlcsr with its
# export extras (CPU torch pinned), then run the main job on the built-in demo model:
# export to ONNX (FP32 + INT8), verify parity against PyTorch, parse the example photos
# and write overlays. Everything lands in ./dmlcsr-demo (or the folder given as $1).
set -euo pipefail
cd "$(dirname "$0")"
[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[export,test]"
dmlcsr-demo --out "${1:-dmlcsr-demo}"
