"""The reference-data domain: company_profiles, its weekly schedule and new-ticker sensor."""

import dagster as dg

from quote_pipeline.defs.metadata import beta_parameters_accepted
from quote_pipeline.defs.reference_data.assets import company_profiles
from quote_pipeline.defs.reference_data.jobs import build_refresh_profiles_job
from quote_pipeline.defs.reference_data.schedules import (
    build_new_tickers_sensor,
    build_profiles_schedule,
)
from quote_pipeline.defs.settings import DeploymentSettings


@dg.definitions
def reference_data_definitions() -> dg.Definitions:
    settings = DeploymentSettings.from_env()
    with beta_parameters_accepted():
        return dg.Definitions(
            assets=[company_profiles],
            jobs=[build_refresh_profiles_job()],
            schedules=[build_profiles_schedule(settings.schedules)],
            sensors=[build_new_tickers_sensor(settings.schedules)],
        )
