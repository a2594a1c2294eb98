"""Profiles weekly, and for a ticker as soon as it is tracked."""

import hashlib
from datetime import UTC, datetime

import dagster as dg

from quote_pipeline.defs.fetching import build_fetch_schedule, unless_quota_held
from quote_pipeline.defs.metadata import names_summary
from quote_pipeline.defs.reference_data.jobs import REFRESH_PROFILES
from quote_pipeline.defs.resources import DatabaseResource
from quote_pipeline.defs.settings import ScheduleOptions
from quote_pipeline.market_calendar import NEW_YORK
from quote_pipeline.storage.corporate_actions import tickers_without_profile

PROFILES_SCHEDULE = "company_profiles_weekly"
# Saturday morning in New York: markets closed, the week's changes in, the quota fresh.
PROFILES_CRON = "0 7 * * 6"
NEW_TICKERS_SENSOR = "profiles_for_new_tickers"


def build_profiles_schedule(options: ScheduleOptions | None = None) -> dg.ScheduleDefinition:
    return build_fetch_schedule(
        PROFILES_SCHEDULE,
        cron_schedule=PROFILES_CRON,
        job_name=REFRESH_PROFILES,
        default_status=(options or ScheduleOptions()).default_status,
        description=(
            "Refresh every tracked company's profile on Saturdays at 07:00 New York time "
            "(one request per ticker). Stopped by default, like every schedule that spends "
            "API calls."
        ),
    )


def build_new_tickers_sensor(options: ScheduleOptions | None = None) -> dg.SensorDefinition:
    options = options or ScheduleOptions()
    # A sensor's status enum is its own type; it follows the schedules' default.
    status = dg.DefaultSensorStatus(options.default_status.value)

    @dg.sensor(
        name=NEW_TICKERS_SENSOR,
        job_name=REFRESH_PROFILES,
        minimum_interval_seconds=60,
        default_status=status,
        description=(
            "Fetch the profile of each newly tracked ticker (every tracked ticker without a "
            "stored profile), one run per new set and day: a ticker the API cannot answer is "
            "asked again the next day."
        ),
    )
    def profiles_for_new_tickers(
        context: dg.SensorEvaluationContext, database: DatabaseResource
    ) -> dg.RunRequest | dg.SkipReason:
        missing = tickers_without_profile(database.get_engine())
        if not missing:
            return dg.SkipReason("Every tracked ticker has a profile.")
        # The same set twice on one day is one run (Dagster skips a repeated run key): a
        # ticker the API cannot answer is asked again the next day, not every minute.
        digest = hashlib.sha256(",".join(missing).encode()).hexdigest()[:16]
        day = datetime.now(UTC).astimezone(NEW_YORK).date()
        request = dg.RunRequest(
            run_key=f"{NEW_TICKERS_SENSOR}:{day}:{digest}",
            run_config={"ops": {"company_profiles": {"config": {"only_symbols": missing}}}},
            tags={"quote_pipeline/new_tickers": names_summary(missing, limit=5)},
        )
        return unless_quota_held(database, request)

    return profiles_for_new_tickers
