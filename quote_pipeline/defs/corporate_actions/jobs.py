"""The corporate-actions job, as its schedule launches it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # what define_asset_job returns; Dagster does not export the name
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from quote_pipeline.run_policy import REFRESH_CORPORATE_ACTIONS_POLICY, run_tags_for_job

REFRESH_CORPORATE_ACTIONS = REFRESH_CORPORATE_ACTIONS_POLICY.job


def build_corporate_actions_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        REFRESH_CORPORATE_ACTIONS,
        selection=dg.AssetSelection.assets("stock_splits", "dividends"),
        description="Fetch the splits and dividends of every tracked ticker (one request per "
        "ticker per endpoint); daily_prices_adjusted follows by declarative automation. One "
        "run at a time.",
        tags=run_tags_for_job(REFRESH_CORPORATE_ACTIONS),
    )
