#!/usr/bin/env bash
# Install, start the sandbox API on loopback, run refresh_quotes on the SQLite default and
# print the stocks table; then six months of daily history, its adjusted prices and
# daily_metrics: a few metrics printed and one chart written (the output names the file).
# Extra arguments go to `quote-pipeline demo` (e.g. --premium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/quote-pipeline demo "$@"
