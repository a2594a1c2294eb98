"""The news job, as its schedule launches it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # what define_asset_job returns; Dagster does not export the name
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from quote_pipeline.run_policy import REFRESH_NEWS_POLICY, run_tags_for_job

REFRESH_NEWS = REFRESH_NEWS_POLICY.job


def build_refresh_news_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        REFRESH_NEWS,
        selection=dg.AssetSelection.assets("news_articles"),
        description=(
            "Fetch the news of every tracked ticker since its newest stored article, score "
            "it and store it; daily_sentiment follows by declarative automation. One run at "
            "a time."
        ),
        tags=run_tags_for_job(REFRESH_NEWS),
    )
