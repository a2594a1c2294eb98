"""The quote refresh's jobs, built when the definitions load (their tags name the code
version, read then, not at import)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # what define_asset_job returns; Dagster does not export the name
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from quote_pipeline.defs.metadata import code_version_tags

# JOB_TAG stays importable from here: other modules name the tag through this module.
from quote_pipeline.run_policy import JOB_TAG, REFRESH_QUOTES_POLICY, run_tags_for_job

# Why 30 minutes: see REFRESH_QUOTES_POLICY. Run monitoring fails a run still going after it.
REFRESH_QUOTES_MAX_RUNTIME_SECONDS = REFRESH_QUOTES_POLICY.max_runtime_seconds

FRESHNESS_CHECK = dg.AssetCheckKey(dg.AssetKey("stocks"), "freshness")
REFRESH_QUOTES = REFRESH_QUOTES_POLICY.job
CHECK_STOCKS_FRESHNESS = "check_stocks_freshness"


def build_refresh_quotes_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        REFRESH_QUOTES,
        # Without `freshness`: right after a refresh it can only restate what `coverage` says,
        # and the market calendar it needs costs ~0.5 s of every run. It runs on its own
        # schedule (check_stocks_freshness), which is what notices refreshes that stopped.
        selection=dg.AssetSelection.assets("tickers", "raw_quotes", "stocks", "quote_snapshots")
        - dg.AssetSelection.checks(FRESHNESS_CHECK),
        description=(
            "Refresh the stocks table: read the tickers, fetch their quotes from the FMP API "
            "(mapped steps in pool `fmp_api`), write them. One run at a time (tag "
            f"`{JOB_TAG}`); run monitoring fails a run still going after "
            f"{REFRESH_QUOTES_MAX_RUNTIME_SECONDS // 60} min."
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
