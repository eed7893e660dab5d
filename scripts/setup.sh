#!/usr/bin/env bash
# Create .venv with everything the studio and its tests need. Safe to run again.
# `scripts/setup.sh --generation 0.14.1` makes .venv-0.14.1 beside it instead: the studio on another onnxruntime-genai
# generation (the pins of scripts/genai-0.14.1.txt: the DirectML flavor's), with pytest, for the architecture matrix.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ "${1:-}" = "--generation" ]; then
    PINS="scripts/genai-${2:?usage: scripts/setup.sh [--generation VERSION]}.txt"
    if [ ! -f "$PINS" ]; then
        echo "error: there is no $PINS; the generations with pins are: $(ls scripts/genai-*.txt | xargs -n1 basename)" >&2
        exit 2
    fi
    VENV=".venv-$2"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q torch==2.13.0
    # pip constraints cannot loosen an == pin, so the project's requirements are listed with the generation's pins.
    "$VENV/bin/python" scripts/pinned_requirements.py "$PINS" >"$VENV/requirements.txt"
    "$VENV/bin/python" -m pip install -q -r "$VENV/requirements.txt" "pytest>=8"
    OVERRIDES=$(sed -n 's/^override //p' "$PINS")
    if [ -n "$OVERRIDES" ]; then
        printf '%s\n' "$OVERRIDES" >"$VENV/overrides.txt"
        "$VENV/bin/python" -m pip install -q --no-deps -r "$VENV/overrides.txt"
    fi
    "$VENV/bin/python" -m pip install -q --no-deps -e .
    exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: this version's CPU build is what the builder needs; an unpinned torch pulls a CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[test,quantize,package]"
# makensis compiles the Windows installer script in tests/test_installer_script.py; Debian's nsis package has it.
if ! command -v makensis >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get install -y -q nsis || { apt-get update -q && apt-get install -y -q nsis; }; } >/dev/null 2>&1 ||
        echo "note: nsis could not be installed; the installer script's test will be skipped" >&2
fi
