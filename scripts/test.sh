#!/usr/bin/env bash
# Install everything, lint, and run the whole test suite (PostgreSQL is found, started or
# created by the tests themselves; see quote_pipeline_tests/support/postgres.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check quote_pipeline quote_pipeline_tests benchmarks scripts
.venv/bin/python -m pytest "$@"
