"""Corporate actions once a day, after the close (New York time)."""

import dagster as dg

from quote_pipeline.defs.corporate_actions.jobs import REFRESH_CORPORATE_ACTIONS
from quote_pipeline.defs.fetching import unless_quota_held
from quote_pipeline.defs.metadata import OWNERS
from quote_pipeline.defs.resources import DatabaseResource
from quote_pipeline.defs.settings import ScheduleOptions
from quote_pipeline.market_calendar import NEW_YORK_TZ
from quote_pipeline.run_policy import code_version_tags

CORPORATE_ACTIONS_SCHEDULE = "corporate_actions_after_close"
# After the daily bars (17:00): a split that went ex today is listed by then, and the
# adjusted history is re-based the same evening (an action applies from its ex-date on).
CORPORATE_ACTIONS_CRON = "30 17 * * 1-5"


def build_corporate_actions_schedule(
    options: ScheduleOptions | None = None,
) -> dg.ScheduleDefinition:
    options = options or ScheduleOptions()

    @dg.schedule(
        name=CORPORATE_ACTIONS_SCHEDULE,
        cron_schedule=CORPORATE_ACTIONS_CRON,
        execution_timezone=NEW_YORK_TZ,
        job_name=REFRESH_CORPORATE_ACTIONS,
        default_status=options.default_status,
        owners=OWNERS,
        tags=code_version_tags(),
        description=(
            "Refresh splits and dividends on weekdays at 17:30 New York time (two requests "
            "per ticker). Stopped by default, like every schedule that spends API calls."
        ),
    )
    def corporate_actions_after_close(
        context: dg.ScheduleEvaluationContext, database: DatabaseResource
    ) -> dg.RunRequest | dg.SkipReason:
        tick = context.scheduled_execution_time
        key = f"{CORPORATE_ACTIONS_SCHEDULE}:{tick:%Y-%m-%d}" if tick else None
        return unless_quota_held(database, dg.RunRequest(run_key=key))

    return corporate_actions_after_close
