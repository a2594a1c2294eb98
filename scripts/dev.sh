#!/usr/bin/env bash
# Start the Dagster UI and daemon (`dagster dev -w workspace.yaml`) on the right instance:
#   - DAGSTER_HOME set: that instance, as configured there;
#   - DAGSTER_PG_HOST set: the production instance, ./dagster.yaml (PostgreSQL, from the
#     DAGSTER_PG_* variables), with DAGSTER_HOME at the project root;
#   - neither: a SQLite instance in ./.dagster_home (made here, its runs kept across
#     restarts), configured as production: its dagster.yaml is rewritten at every start
#     from ./dagster.yaml without the `storage` block (quote_pipeline/deployment.py), so the
#     run queue, the fmp_api pool, run monitoring, telemetry and nux are the same.
# `dagster dev` reads ./dagster.yaml when DAGSTER_HOME is unset, so running it bare in the
# project root without the DAGSTER_PG_* variables fails: this script is the no-set-up way.
# Extra arguments go to `dagster dev` (e.g. -p 3001).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
if [ -z "${DAGSTER_HOME:-}" ]; then
    if [ -n "${DAGSTER_PG_HOST:-}" ]; then
        export DAGSTER_HOME="$root"
    else
        export DAGSTER_HOME="$root/.dagster_home"
        echo "No DAGSTER_PG_HOST: using a local SQLite instance in $DAGSTER_HOME" >&2
        .venv/bin/python -m quote_pipeline.deployment dev-instance "$DAGSTER_HOME" \
            --production "$root/dagster.yaml"
    fi
fi
# The UI opens the global lineage with its groups collapsed (its default when there are
# several); this address opens both.
port=3000
previous=""
for arg in "$@"; do
    if [ "$previous" = "-p" ] || [ "$previous" = "--port" ]; then port="$arg"; fi
    previous="$arg"
done
echo "Lineage with every group open: http://127.0.0.1:${port}/asset-groups?expanded=global@global:quotes,global@global:price_history,global@global:news,global@global:reference_data,global@global:corporate_actions" >&2
exec .venv/bin/dagster dev -w workspace.yaml "$@"
