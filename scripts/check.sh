#!/usr/bin/env bash
# The project's checks, as CI runs them: set up, lint, import contracts, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/lint-imports
.venv/bin/python -m pytest -q "$@"
# The DirectML flavor's generation (onnxruntime-genai 0.14.1) in a second environment: the architecture matrix and
# the repairs only (the rest of the suite ran above). Skipped when the run was narrowed to some tests.
if [ $# -eq 0 ]; then
    scripts/setup.sh --generation 0.14.1
    .venv-0.14.1/bin/python -m pytest -q tests/test_architecture_matrix.py tests/test_repairs.py
fi
