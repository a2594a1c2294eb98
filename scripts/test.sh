#!/usr/bin/env bash
# Install everything, lint, and run the whole test suite (PostgreSQL is found, started or
# created by the tests themselves; see quote_pipeline_tests/support/postgres.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check quote_pipeline quote_pipeline_tests benchmarks scripts examples
# Two workers, whole files each (a file's fixtures and servers stay in one process);
# QUOTE_PIPELINE_TEST_WORKERS=0 runs everything in this process.
.venv/bin/python -m pytest -n "${QUOTE_PIPELINE_TEST_WORKERS:-2}" --dist loadfile "$@"
