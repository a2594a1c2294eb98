"""The quote refresh's jobs, built when the definitions load (their tags name the code
version, read then, not at import)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # what define_asset_job returns; Dagster does not export the name
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from quote_pipeline.run_policy import REFRESH_QUOTES_POLICY, code_version_tags, run_tags_for_job

# Why 30 minutes: see REFRESH_QUOTES_POLICY. Run monitoring fails a run still going after it.
REFRESH_QUOTES_MAX_RUNTIME_SECONDS = REFRESH_QUOTES_POLICY.max_runtime_seconds

FRESHNESS_CHECK = dg.AssetCheckKey(dg.AssetKey("stocks"), "freshness")
REFRESH_QUOTES = REFRESH_QUOTES_POLICY.job
CHECK_STOCKS_FRESHNESS = "check_stocks_freshness"


def build_refresh_quotes_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        REFRESH_QUOTES,
        # With every check of the four, freshness included: each refresh leaves all of
        # stocks' checks current (freshness asks the market calendar only when a row is
        # stale). Its own schedule (check_stocks_freshness) notices refreshes that stopped.
        selection=dg.AssetSelection.assets("tickers", "raw_quotes", "stocks", "quote_snapshots"),
        description=(
            "Refresh the stocks table: read the tickers, fetch their quotes from the FMP API "
            "in a few mapped steps, write them, check them. One run at a time; run monitoring "
            f"fails a run still going after {REFRESH_QUOTES_MAX_RUNTIME_SECONDS // 60} min."
        ),
        # Definition tags double as run tags (no separate run_tags): launches through the
        # GraphQL API merge only these into the run, and every run needs all three (the job
        # tag, of which dagster.yaml allows one run per value at a time; the run-time limit;
        # the code version). The run coordinator gives the same ones, from the same policy,
        # to runs of these assets launched without the job.
        tags=run_tags_for_job(REFRESH_QUOTES),
    )


def build_check_stocks_freshness_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        CHECK_STOCKS_FRESHNESS,
        selection=dg.AssetSelection.checks(FRESHNESS_CHECK),
        description=(
            "Run the `freshness` check of `stocks` on its own, outside any refresh: it is what "
            "notices that refreshes stopped (a schedule turned off, runs that never launch)."
        ),
        tags=code_version_tags(),
    )
