"""Jobs of the price history, one per asset, as the schedules launch them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # what define_asset_job returns; Dagster does not export the name
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from quote_pipeline.defs.metadata import code_version_tags
from quote_pipeline.defs.quotes.jobs import JOB_TAG

# One evening's partition is one request per ticker; an hour is far beyond a healthy run.
DAILY_PRICES_MAX_RUNTIME_SECONDS = 60 * 60
# A refresh every 5 minutes: one stuck for 20 has long been overtaken (the next ones queue
# behind it, one run per job at a time), so run monitoring fails it.
INTRADAY_BARS_MAX_RUNTIME_SECONDS = 20 * 60

DAILY_PRICES_JOB = "daily_prices_job"
INTRADAY_BARS_JOB = "intraday_bars_job"


def build_daily_prices_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        DAILY_PRICES_JOB,
        selection=dg.AssetSelection.assets("daily_prices"),
        description=(
            "Fetch and store one trading day (or a range: one run, one request per ticker) of "
            f"daily bars. One run at a time (tag `{JOB_TAG}`)."
        ),
        # Definition tags, not run_tags: runs launched over GraphQL (the UI, backfills) get
        # only these, and the run queue and run monitoring read them.
        tags={
            JOB_TAG: "daily_prices_job",
            "dagster/max_runtime": str(DAILY_PRICES_MAX_RUNTIME_SECONDS),
            **code_version_tags(),
        },
    )


def build_intraday_bars_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        INTRADAY_BARS_JOB,
        selection=dg.AssetSelection.assets("intraday_bars"),
        description=(
            "Fetch today's 5-minute bars of every tracked ticker (one request each) and upsert "
            f"them. One run at a time (tag `{JOB_TAG}`)."
        ),
        # Definition tags, not run_tags: runs launched over GraphQL (the UI, backfills) get
        # only these, and the run queue and run monitoring read them.
        tags={
            JOB_TAG: "intraday_bars_job",
            "dagster/max_runtime": str(INTRADAY_BARS_MAX_RUNTIME_SECONDS),
            **code_version_tags(),
        },
    )
