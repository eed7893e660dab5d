#!/usr/bin/env bash
# Create .venv with everything the studio and its tests need. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
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
