"""Declarative automation shared by the domains whose tables are derived in the database."""

from collections.abc import Sequence

import dagster as dg

from quote_pipeline.market_calendar import NEW_YORK_TZ


def weekday_catch_up(cron_schedule: str) -> dg.AutomationCondition:
    """True once after each tick of ``cron_schedule`` (New York time) unless a run is in
    progress: an update the eager condition could not see (committed while the asset was
    running, or a failed run of the asset itself) then waits a day at most."""
    return (
        dg.AutomationCondition.cron_tick_passed(cron_schedule, cron_timezone=NEW_YORK_TZ)
        & ~dg.AutomationCondition.in_progress()
    ).with_label("weekday_evening_catch_up")


def derived_tables_sensor(
    name: str, assets: Sequence[dg.AssetsDefinition], description: str
) -> dg.AutomationConditionSensorDefinition:
    """An automation sensor for assets computed in the database (no API call).

    Running by default, unlike Dagster's default automation sensor: what it launches costs
    no API quota, and a derived table left behind its inputs is a silent bug.
    """
    return dg.AutomationConditionSensorDefinition(
        name,
        target=dg.AssetSelection.assets(*assets),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description=description,
    )
