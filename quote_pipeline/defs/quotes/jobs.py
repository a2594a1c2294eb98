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

JOB_TAG = "quote_pipeline/job"
# A healthy refresh takes a minute or two (one pass, at most one read timeout, the retry
# budget); the fetch steps' own retries for an unreachable API (3, exponential from 30 s,
# jittered) add under 10 minutes. Run monitoring fails a run still going after this.
REFRESH_QUOTES_MAX_RUNTIME_SECONDS = 30 * 60

FRESHNESS_CHECK = dg.AssetCheckKey(dg.AssetKey("stocks"), "freshness")
REFRESH_QUOTES = "refresh_quotes"
CHECK_STOCKS_FRESHNESS = "check_stocks_freshness"


def build_refresh_quotes_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        REFRESH_QUOTES,
        # Without `freshness`: right after a refresh it can only restate what `coverage` says,
        # and the market calendar it needs costs ~0.5 s of every run. It runs on its own
        # schedule (check_stocks_freshness), which is what notices refreshes that stopped.
        selection=dg.AssetSelection.assets("tickers", "raw_quotes", "stocks")
        - dg.AssetSelection.checks(FRESHNESS_CHECK),
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
            **code_version_tags(),
        },
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
