"""Declarative automation shared by the domains whose tables are derived in the database."""

from collections.abc import Sequence

import dagster as dg

from quote_pipeline.market_calendar import NEW_YORK_TZ


def after_upstream_updates() -> dg.AutomationCondition:
    """Dagster's eager(), except that an upstream update committed while the asset is being
    computed is followed by one more run.

    eager() counts the asset's own materialization as handling every upstream update before
    it, even one committed after that run had read its inputs (a daily_prices run finishing
    while an evening catch-up of the adjusted prices is still running): the table would miss
    that update until the next day's catch-up. Here only a request of the asset handles an
    update, so such a run is followed by another, which finds the new rows. Missing upstream
    partitions never hold it back; a run in progress upstream or of the asset does, until
    it ends.
    """
    handled = dg.AutomationCondition.newly_requested() | dg.AutomationCondition.initial_evaluation()
    return (
        (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated())
        .since(handled)
        .with_label("upstream_updated_since_last_request")
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("after_upstream_updates")


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
