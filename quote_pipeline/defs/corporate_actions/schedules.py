"""Corporate actions once a day, after the close (New York time)."""

import dagster as dg

from quote_pipeline.defs.corporate_actions.jobs import REFRESH_CORPORATE_ACTIONS
from quote_pipeline.defs.fetching import build_fetch_schedule
from quote_pipeline.defs.settings import ScheduleOptions

CORPORATE_ACTIONS_SCHEDULE = "corporate_actions_after_close"
# After the daily bars (17:00): a split that went ex today is listed by then, and the
# adjusted history is re-based the same evening (an action applies from its ex-date on).
CORPORATE_ACTIONS_CRON = "30 17 * * 1-5"


def build_corporate_actions_schedule(
    options: ScheduleOptions | None = None,
) -> dg.ScheduleDefinition:
    return build_fetch_schedule(
        CORPORATE_ACTIONS_SCHEDULE,
        cron_schedule=CORPORATE_ACTIONS_CRON,
        job_name=REFRESH_CORPORATE_ACTIONS,
        default_status=(options or ScheduleOptions()).default_status,
        description=(
            "Refresh splits and dividends on weekdays at 17:30 New York time (two requests "
            "per ticker). Stopped by default, like every schedule that spends API calls."
        ),
    )
