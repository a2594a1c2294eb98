#!/usr/bin/env bash
# Install, then run every benchmark case and print the table (figures also go to
# benchmarks/results/latest.json). Arguments go to `python -m benchmarks.run`
# (e.g. --cases refresh_5000,upsert_50k_postgres). Takes about 5 minutes, plus up to
# 15 minutes for refresh_400_straggler while a hung symbol holds the run up (its hard
# timeout; --timeout-seconds changes it).
#
# Against another commit, side by side in one invocation (the ratios are what to quote, as
# this machine's speed varies from day to day):
#   bash scripts/benchmark.sh --baseline HEAD~1 --cases refresh_5000 --repeats 3
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m benchmarks.run "$@"
