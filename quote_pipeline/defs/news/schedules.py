"""News every 30 minutes in market hours, hourly otherwise (New York time)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from quote_pipeline.defs.fetching import quota_skip_reason
from quote_pipeline.defs.metadata import OWNERS
from quote_pipeline.defs.news.jobs import REFRESH_NEWS
from quote_pipeline.defs.resources import DatabaseResource
from quote_pipeline.defs.settings import ScheduleOptions
from quote_pipeline.market_calendar import NEW_YORK, within_market_hours
from quote_pipeline.run_policy import code_version_tags

NEWS_SCHEDULE_NAME = "refresh_news_every_30_minutes"
NEWS_CRON = "0,30 * * * *"
EXECUTION_TIMEZONE = "America/New_York"


def news_skip_reason(tick: datetime) -> str | None:
    """Why the tick at ``tick`` (aware) should not fetch news, or None when it should: the
    half-hour ticks run only in market hours (news moves prices most then)."""
    local = tick.astimezone(NEW_YORK)
    if local.minute == 30 and not within_market_hours(tick):
        return (
            f"Outside market hours ({local:%a %Y-%m-%d %H:%M %Z}): news is fetched hourly "
            "then, every 30 minutes from the open to an hour after the close."
        )
    return None


def build_news_schedule(options: ScheduleOptions | None = None) -> dg.ScheduleDefinition:
    options = options or ScheduleOptions()

    @dg.schedule(
        name=NEWS_SCHEDULE_NAME,
        cron_schedule=NEWS_CRON,
        execution_timezone=EXECUTION_TIMEZONE,
        job_name=REFRESH_NEWS,
        default_status=options.default_status,
        owners=OWNERS,
        tags=code_version_tags(),
        description=(
            f"Fetch news every 30 minutes in NYSE market hours and hourly otherwise, New "
            f"York time ({EXECUTION_TIMEZONE}), every day. Needs FMP's Starter plan. "
            "Stopped by default, so nothing spends paid API calls until someone turns it on."
        ),
    )
    def refresh_news_every_30_minutes(
        context: dg.ScheduleEvaluationContext, database: DatabaseResource
    ) -> dg.RunRequest | dg.SkipReason:
        tick = context.scheduled_execution_time or datetime.now(UTC)
        if reason := news_skip_reason(tick):
            return dg.SkipReason(reason)
        if held := quota_skip_reason(database):
            return dg.SkipReason(f"Skipped: {held}")
        return dg.RunRequest(run_key=f"{NEWS_SCHEDULE_NAME}:{tick.astimezone(UTC):%Y-%m-%dT%H:%MZ}")

    return refresh_news_every_30_minutes
