"""Schedules of the price history, on the NYSE calendar (New York time, holidays skipped)."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from quote_pipeline.defs.fetching import providers_or_fmp, unless_quota_held
from quote_pipeline.defs.history.jobs import DAILY_PRICES_JOB, INTRADAY_BARS_JOB
from quote_pipeline.defs.metadata import OWNERS
from quote_pipeline.defs.resources import DatabaseResource, ProviderChoice
from quote_pipeline.market_calendar import (
    EXCHANGE,
    NEW_YORK,
    NEW_YORK_TZ,
    is_session,
    last_closed_session,
    session_hours,
)
from quote_pipeline.run_policy import code_version_tags

# An hour after the regular close (three after an early one): time for the closing auction
# prints to settle into the API's end-of-day bar.
DAILY_PRICES_CRON = "0 17 * * 1-5"
# Every 5 minutes from 09:00 to 16:55 on weekdays; ticks outside the session are skipped.
INTRADAY_BARS_CRON = "*/5 9-16 * * 1-5"
# One tick after the close completes the last bar (15:55-16:00), one more catches late prints.
INTRADAY_AFTER_CLOSE = timedelta(minutes=5)


def _tick(context: dg.ScheduleEvaluationContext) -> datetime:
    return context.scheduled_execution_time or datetime.now(UTC)


def daily_prices_request(tick: datetime) -> dg.RunRequest | dg.SkipReason:
    """The run for the session that closed before ``tick`` on ``tick``'s New York date."""
    day = tick.astimezone(NEW_YORK).date()
    if not is_session(day):
        return dg.SkipReason(f"The NYSE is closed on {day}: no daily bar to fetch.")
    if last_closed_session(tick) != day:
        return dg.SkipReason(f"The NYSE session of {day} has not closed yet.")
    return dg.RunRequest(run_key=f"daily_prices:{day}", partition_key=day.isoformat())


def intraday_bars_request(tick: datetime) -> dg.RunRequest | dg.SkipReason:
    """A refresh of today's 5-minute bars while the session is open (and just after)."""
    day = tick.astimezone(NEW_YORK).date()
    if not is_session(day):
        return dg.SkipReason(f"The NYSE is closed on {day}.")
    opens_at, closes_at = session_hours(day)
    if not opens_at < tick <= closes_at + INTRADAY_AFTER_CLOSE:
        return dg.SkipReason(
            f"Outside market hours ({opens_at.astimezone(NEW_YORK):%H:%M} to "
            f"{closes_at.astimezone(NEW_YORK):%H:%M} New York time on {day})."
        )
    return dg.RunRequest(
        run_key=f"intraday_bars:{tick.astimezone(UTC).isoformat()}",
        run_config={
            "ops": {
                "intraday_bars": {
                    "config": {"from_date": day.isoformat(), "to_date": day.isoformat()}
                }
            }
        },
    )


def build_history_schedules(
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> list[dg.ScheduleDefinition]:
    """The two price-history schedules.

    Stopped by default, like the quote refresh, so that a fresh checkout never spends calls
    of a paid plan on its own (the intraday schedule asks once per ticker every 5 minutes);
    turn them on in the UI, with `dagster schedule start`, or deploy with
    ``QUOTE_PIPELINE_SCHEDULE_DEFAULT_STATUS=running``.
    """
    tags = code_version_tags()

    @dg.schedule(
        job_name=DAILY_PRICES_JOB,
        cron_schedule=DAILY_PRICES_CRON,
        execution_timezone=NEW_YORK_TZ,
        default_status=default_status,
        owners=OWNERS,
        tags=tags,
        metadata={"exchange_calendar": EXCHANGE},
        # Plain text: the Automation page renders no markdown.
        description=(
            "Materializes the day's daily_prices partition at 17:00 New York time, after the "
            f"close, on NYSE sessions only (the {EXCHANGE} calendar, as the partitions): "
            "weekday holidays are skipped, early closes included."
        ),
    )
    def daily_prices_after_close(
        context: dg.ScheduleEvaluationContext, database: DatabaseResource
    ) -> dg.RunRequest | dg.SkipReason:
        """Materialize the day's `daily_prices` partition at 17:00 New York time on NYSE
        sessions (weekday holidays are skipped, early closes included)."""
        return unless_quota_held(
            database,
            daily_prices_request(_tick(context)),
            providers_or_fmp(ProviderChoice().history_order),
        )

    @dg.schedule(
        job_name=INTRADAY_BARS_JOB,
        cron_schedule=INTRADAY_BARS_CRON,
        execution_timezone=NEW_YORK_TZ,
        default_status=default_status,
        owners=OWNERS,
        tags=tags,
        metadata={"exchange_calendar": EXCHANGE},
        description=(
            "Refreshes today's intraday_bars every 5 minutes while the NYSE is open, New York "
            "time (ticks outside the session are skipped), until 5 minutes after the close so "
            "the last bar is stored complete. One request per ticker per tick."
        ),
    )
    def intraday_bars_every_5_minutes(
        context: dg.ScheduleEvaluationContext, database: DatabaseResource
    ) -> dg.RunRequest | dg.SkipReason:
        """Refresh today's 5-minute bars every 5 minutes while the NYSE is open, and until 5
        minutes after the close so the last bar is stored complete; holidays are skipped."""
        return unless_quota_held(database, intraday_bars_request(_tick(context)))

    return [daily_prices_after_close, intraday_bars_every_5_minutes]
