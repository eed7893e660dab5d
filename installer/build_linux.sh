#!/usr/bin/env bash
# Build the Linux one-folder bundle with the same spec the Windows build uses, check it, and smoke-test it.
#   installer/build_linux.sh            -> build/dist/onnx-forge/onnx-forge
# BUILD_DIR (default build/) holds PyInstaller's work folder, so a rebuild only redoes what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
BUILD_DIR=${BUILD_DIR:-build}
"$PYTHON" installer/check_env.py --flavor cpu
"$PYTHON" -c "import PyInstaller" 2>/dev/null || {
    echo "error: PyInstaller is not installed; run scripts/setup.sh (it installs the package extra)." >&2
    exit 2
}
FORGE_FLAVOR=cpu "$PYTHON" -m PyInstaller installer/onnx-forge.spec --noconfirm --log-level WARN \
    --distpath "$BUILD_DIR/dist" --workpath "$BUILD_DIR/work"
"$PYTHON" installer/check_bundle.py "$BUILD_DIR/dist/onnx-forge"
"$PYTHON" installer/smoke_test.py "$BUILD_DIR/dist/onnx-forge"
