"""Declarative automation shared by the domains whose tables are derived in the database."""

from collections.abc import Sequence

import dagster as dg

from quote_pipeline.market_calendar import NEW_YORK_TZ


def weekday_catch_up(cron_schedule: str) -> dg.AutomationCondition:
    """True once after each tick of ``cron_schedule`` (New York time) unless a run is in
    progress: an update the eager condition could not see (committed while the asset was
    running, or by a run that failed after writing most tickers) then waits a day at most.
    For an asset whose refresh with nothing to do costs a couple of queries."""
    return (
        dg.AutomationCondition.cron_tick_passed(cron_schedule, cron_timezone=NEW_YORK_TZ)
        & ~dg.AutomationCondition.in_progress()
    ).with_label("weekday_evening_catch_up")


def missed_update_catch_up(cron_schedule: str) -> dg.AutomationCondition:
    """After each tick of ``cron_schedule`` (New York time), if an upstream update has not
    been followed (it landed while the asset was running, when eager cannot fire) or the
    asset's latest run failed: a day's delay at most, and no run when all is current."""
    missed = (
        dg.AutomationCondition.any_deps_updated()
        .since_last_handled()
        .with_label("upstream_updated_since_last_run")
    )
    return (
        dg.AutomationCondition.cron_tick_passed(cron_schedule, cron_timezone=NEW_YORK_TZ)
        & ~dg.AutomationCondition.in_progress()
        & (missed | dg.AutomationCondition.execution_failed())
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
