#!/usr/bin/env bash
# Install, then run every benchmark case and print the table (figures also go to
# benchmarks/results/latest.json). Arguments go to `python -m benchmarks.run`
# (e.g. --cases refresh_5000,upsert_50k_postgres). Takes about 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m benchmarks.run "$@"
