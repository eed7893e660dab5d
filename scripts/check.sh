#!/usr/bin/env bash
# The project's checks, as CI runs them: set up, lint, import contracts, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/lint-imports
.venv/bin/python -m pytest -q "$@"
