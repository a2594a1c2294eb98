"""The hourly quote refresh on the NYSE's calendar (the Celery beat schedule, done right).

The beat schedule ran ``1 * * * 1-5`` in UTC, so "Monday" began at Sunday 20:00 in New
York and Friday evening's hours were missed; it also ran on exchange holidays. Here the
cron is evaluated in New York time and each tick asks the exchange calendar first.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from quote_pipeline.defs.fetching import providers_or_fmp, quota_skip_reason
from quote_pipeline.defs.metadata import OWNERS
from quote_pipeline.defs.quotes.jobs import CHECK_STOCKS_FRESHNESS, REFRESH_QUOTES
from quote_pipeline.defs.resources import DatabaseResource, ProviderChoice
from quote_pipeline.defs.settings import DEFAULT_STATUS_ENV, MARKET_HOURS_ONLY_ENV, ScheduleOptions
from quote_pipeline.market_calendar import EXCHANGE, NEW_YORK, market_day, refresh_window
from quote_pipeline.run_policy import code_version_tags

SCHEDULE_NAME = "refresh_quotes_hourly"
CRON_SCHEDULE = "1 * * * 1-5"
EXECUTION_TIMEZONE = "America/New_York"


def skip_reason_for(tick: datetime, *, market_hours_only: bool) -> str | None:
    """Why the tick at ``tick`` (aware) should not refresh, or None when it should."""
    local = tick.astimezone(NEW_YORK)
    at = f"{local:%a %Y-%m-%d %H:%M %Z}"
    day = market_day(local.date())
    if not day.is_session:
        if day.closed_reason == "weekend":
            return f"No NYSE session at the weekend ({at}): nothing to refresh."
        return f"NYSE holiday: {day.closed_reason} ({at}). The market is closed; no refresh."
    window = refresh_window(day)
    if market_hours_only and window and not window[0] <= tick <= window[1]:
        return (
            f"Outside market hours ({at}): this schedule refreshes from the "
            f"{window[0]:%H:%M} open to {window[1]:%H:%M}, one hour after the close "
            f"({MARKET_HOURS_ONLY_ENV} is set)."
        )
    return None


def build_refresh_quotes_schedule(options: ScheduleOptions | None = None) -> dg.ScheduleDefinition:
    """The ``refresh_quotes_hourly`` schedule.

    Default status STOPPED, on purpose: the daemon starts ticking as soon as `dagster dev`
    runs, and every tick spends calls from a paid FMP plan, so a fresh checkout or a
    developer's laptop never calls the API on its own. Production turns it on once, in the
    UI or with `dagster schedule start refresh_quotes_hourly` (the instance remembers), or
    deploys with ``QUOTE_PIPELINE_SCHEDULE_DEFAULT_STATUS=running``.
    """
    options = options or ScheduleOptions()
    hours = (
        "10:01 to 16:01 (13:01 on early-close days)"
        if options.market_hours_only
        else "every hour of a session day"
    )

    @dg.schedule(
        name=SCHEDULE_NAME,
        cron_schedule=CRON_SCHEDULE,
        execution_timezone=EXECUTION_TIMEZONE,
        job_name=REFRESH_QUOTES,
        default_status=options.default_status,
        owners=OWNERS,
        tags=code_version_tags(),
        metadata={
            "exchange_calendar": EXCHANGE,
            "market_hours_only": options.market_hours_only,
            "default_status": options.default_status.value,
            "timezone": EXECUTION_TIMEZONE,
            "configured_by": f"{DEFAULT_STATUS_ENV}, {MARKET_HOURS_ONLY_ENV}",
        },
        # Short and plain: the Automation page shows it beside the cron, without the time
        # zone, and renders no markdown.
        description=(
            f"Refresh quotes at :01 past each hour, Monday to Friday, New York time "
            f"({EXECUTION_TIMEZONE}, following DST), {hours}. Skips NYSE holidays and while "
            "the API quota is spent, with the reason in the tick. Stopped by default, so "
            "nothing spends paid API calls until someone turns it on."
        ),
    )
    def refresh_quotes_hourly(
        context: dg.ScheduleEvaluationContext, database: DatabaseResource
    ) -> dg.RunRequest | dg.SkipReason:
        tick = context.scheduled_execution_time or datetime.now(UTC)
        if reason := skip_reason_for(tick, market_hours_only=options.market_hours_only):
            return dg.SkipReason(reason)
        if held := quota_skip_reason(database, providers_or_fmp(ProviderChoice().quote_order)):
            return dg.SkipReason(f"Skipped: {held}")
        local = tick.astimezone(NEW_YORK)
        return dg.RunRequest(
            # One run per tick, even when the daemon retries an interrupted tick.
            run_key=f"{SCHEDULE_NAME}:{tick.astimezone(UTC):%Y-%m-%dT%H:%MZ}",
            tags={"quote_pipeline/session": local.date().isoformat()},
        )

    return refresh_quotes_hourly


FRESHNESS_SCHEDULE_NAME = "check_stocks_freshness_in_market_hours"
FRESHNESS_CRON = "31 9-17 * * 1-5"


def build_freshness_check_schedule(options: ScheduleOptions | None = None) -> dg.ScheduleDefinition:
    """Check `stocks` freshness at :31 past each hour of a session, half-way between two
    refreshes, so a refresh that did not happen shows up as a failed check within the hour."""
    options = options or ScheduleOptions()

    @dg.schedule(
        name=FRESHNESS_SCHEDULE_NAME,
        cron_schedule=FRESHNESS_CRON,
        execution_timezone=EXECUTION_TIMEZONE,
        job_name=CHECK_STOCKS_FRESHNESS,
        default_status=options.default_status,
        owners=OWNERS,
        tags=code_version_tags(),
        description=(
            f"Check that the stocks rows are fresh at :31 past 9 to 17, Monday to Friday, New "
            f"York time ({EXECUTION_TIMEZONE}); skips NYSE holidays. Stopped by default."
        ),
    )
    def check_stocks_freshness_in_market_hours(
        context: dg.ScheduleEvaluationContext,
    ) -> dg.RunRequest | dg.SkipReason:
        tick = context.scheduled_execution_time or datetime.now(UTC)
        if reason := skip_reason_for(tick, market_hours_only=False):
            return dg.SkipReason(reason)
        return dg.RunRequest(
            run_key=f"{FRESHNESS_SCHEDULE_NAME}:{tick.astimezone(UTC):%Y-%m-%dT%H:%MZ}"
        )

    return check_stocks_freshness_in_market_hours
