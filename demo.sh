#!/usr/bin/env bash
# One command on a fresh machine: set up a virtual environment, install dmlcsr with its
# export and test extras (CPU torch pinned), then run the main job on the built-in demo
# model: export to ONNX, parse the example photos and write overlays, INT8, parity against
# PyTorch. Everything lands in ./dmlcsr-demo (or the folder given as $1).
# The install runs again only when setup.cfg, pyproject.toml or the torch pin change; the
# demo checkpoint and its ONNX files are kept in the user cache (~/.cache/dmlcsr), so a
# second run takes well under a minute.
set -euo pipefail
cd "$(dirname "$0")"
TORCH_PIN="torch==2.13.0"

ticking() {  # ticking COMMAND...: run it, printing the time spent every 10 s
    local start=$SECONDS rc=0 ticker
    ( while sleep 10; do echo "   ... $((SECONDS - start)) s"; done ) &
    ticker=$!
    "$@" || rc=$?
    kill "$ticker" 2>/dev/null || true
    wait "$ticker" 2>/dev/null || true
    return "$rc"
}

pip_install() {  # pip install, without the one warning per package that a pip configuration
    # naming absent package folders (find-links) prints; pip's other messages pass through
    python -m pip install "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
stamp=.venv/.dmlcsr-demo-install
wanted=$( (cat setup.cfg pyproject.toml; echo "$TORCH_PIN") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ] || ! command -v dmlcsr-demo >/dev/null; then
    echo "== installing dmlcsr[export,test] and CPU PyTorch into .venv"
    start=$SECONDS
    ticking pip_install -q --upgrade pip
    # setuptools prints a notice on every editable install of this layout (a meta path
    # finder maps export/ and runtime/ into the package); it warns of nothing
    PYTHONWARNINGS="ignore:Editable installation" ticking pip_install -q "$TORCH_PIN" -e ".[export,test]"
    echo "$wanted" > "$stamp"
    echo "   installed ($((SECONDS - start)) s)"
else
    echo "== .venv is up to date (delete $stamp to reinstall)"
fi
dmlcsr-demo --out "${1:-dmlcsr-demo}"
