"""The profiles job, as its schedule and the new-ticker sensor launch it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # what define_asset_job returns; Dagster does not export the name
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from quote_pipeline.run_policy import REFRESH_PROFILES_POLICY, run_tags_for_job

REFRESH_PROFILES = REFRESH_PROFILES_POLICY.job


def build_refresh_profiles_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        REFRESH_PROFILES,
        selection=dg.AssetSelection.assets("company_profiles"),
        description="Fetch the profile of every tracked ticker (or of only_symbols): one "
        "request each. One run at a time.",
        tags=run_tags_for_job(REFRESH_PROFILES),
    )
