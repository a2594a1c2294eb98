#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install the project with its dev tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "quote_pipeline needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
# The example Django site (examples/django_site) and its tests: Django only, the rest is ours.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r examples/django_site/requirements.txt
