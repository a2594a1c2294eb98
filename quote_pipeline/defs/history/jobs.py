"""Jobs of the price history, one per asset, as the schedules launch them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # what define_asset_job returns; Dagster does not export the name
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from quote_pipeline.run_policy import (
    DAILY_PRICES_POLICY,
    INTRADAY_BARS_POLICY,
    run_tags_for_job,
)

# Why this limit: see the policy. Run monitoring fails a run still going after it.
DAILY_PRICES_MAX_RUNTIME_SECONDS = DAILY_PRICES_POLICY.max_runtime_seconds

DAILY_PRICES_JOB = DAILY_PRICES_POLICY.job
INTRADAY_BARS_JOB = INTRADAY_BARS_POLICY.job


def build_daily_prices_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        DAILY_PRICES_JOB,
        selection=dg.AssetSelection.assets("daily_prices"),
        description=(
            "Fetch and store one trading day (or a range: one run, one request per ticker) of "
            "daily bars. One run at a time."
        ),
        # Definition tags, not run_tags: runs launched over GraphQL get only these, and the
        # run queue and run monitoring read them. Runs of the asset without this job (the
        # Partitions tab's backfills) get the same ones from the run coordinator.
        tags=run_tags_for_job(DAILY_PRICES_JOB),
    )


def build_intraday_bars_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        INTRADAY_BARS_JOB,
        selection=dg.AssetSelection.assets("intraday_bars"),
        description=(
            "Fetch today's 5-minute bars of every tracked ticker (one request each) and upsert "
            "them. One run at a time."
        ),
        # Definition tags, not run_tags: runs launched over GraphQL get only these, and the
        # run queue and run monitoring read them. Runs of the asset without this job get the
        # same ones from the run coordinator.
        tags=run_tags_for_job(INTRADAY_BARS_JOB),
    )
