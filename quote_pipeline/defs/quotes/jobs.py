"""The quote refresh job, in its own module so that schedules and definitions share it."""

import warnings

import dagster as dg

from quote_pipeline.defs.code_version import CODE_VERSION_TAG, code_version
from quote_pipeline.defs.quotes.assets import OWNERS, raw_quotes, stocks, tickers

# Owners on jobs and schedules are beta in Dagster 1.13; they are wanted in the UI, and the
# warning would otherwise be printed at every code-location load, so only it is silenced.
warnings.filterwarnings("ignore", message="Parameter `owners` of ", category=dg.BetaWarning)

JOB_TAG = "quote_pipeline/job"
# Longer than the fetch steps' worst-case retry waits (5 retries, exponential from 60 s with
# ±60 s jitter: up to ~62 min) plus the fetching itself; run monitoring fails a run past it.
REFRESH_QUOTES_MAX_RUNTIME_SECONDS = 90 * 60

refresh_quotes = dg.define_asset_job(
    "refresh_quotes",
    selection=dg.AssetSelection.assets(tickers, raw_quotes, stocks),
    description=(
        "Refresh the stocks table: read the tickers, fetch their quotes from the FMP API "
        "(mapped steps in pool `fmp_api`), write them. One run at a time (tag "
        f"`{JOB_TAG}`); run monitoring fails a run still going after "
        f"{REFRESH_QUOTES_MAX_RUNTIME_SECONDS // 60} min."
    ),
    # Definition tags double as run tags (no separate run_tags): launches through the
    # GraphQL API merge only these into the run, and every run needs all three.
    tags={
        # dagster.yaml allows one run per value of this tag at a time.
        JOB_TAG: "refresh_quotes",
        "dagster/max_runtime": str(REFRESH_QUOTES_MAX_RUNTIME_SECONDS),
        CODE_VERSION_TAG: code_version(),
    },
    owners=OWNERS,
)

check_stocks_freshness = dg.define_asset_job(
    "check_stocks_freshness",
    selection=dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey("stocks"), "freshness")),
    description=(
        "Run the `freshness` check of `stocks` on its own, outside any refresh: it is what "
        "notices that refreshes stopped (a schedule turned off, runs that never launch)."
    ),
    tags={CODE_VERSION_TAG: code_version()},
)
