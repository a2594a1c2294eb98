"""The corporate-actions domain: stock_splits and dividends, their daily job and schedule,
and daily_prices_adjusted with the automation sensor that keeps it current."""

import dagster as dg

from quote_pipeline.defs.automation import derived_tables_sensor
from quote_pipeline.defs.corporate_actions.assets import (
    build_corporate_action_assets,
    daily_prices_adjusted,
)
from quote_pipeline.defs.corporate_actions.jobs import build_corporate_actions_job
from quote_pipeline.defs.corporate_actions.schedules import build_corporate_actions_schedule
from quote_pipeline.defs.metadata import beta_parameters_accepted
from quote_pipeline.defs.settings import DeploymentSettings

AUTOMATION_SENSOR = "adjusted_prices_automation"


@dg.definitions
def corporate_actions_definitions() -> dg.Definitions:
    settings = DeploymentSettings.from_env()
    with beta_parameters_accepted():
        return dg.Definitions(
            assets=[*build_corporate_action_assets(), daily_prices_adjusted],
            jobs=[build_corporate_actions_job()],
            schedules=[build_corporate_actions_schedule(settings.schedules)],
            sensors=[
                derived_tables_sensor(
                    AUTOMATION_SENSOR,
                    [daily_prices_adjusted],
                    "Re-derive daily_prices_adjusted after daily_prices, stock_splits or "
                    "dividends are materialized (declarative automation). Calls no API.",
                )
            ],
        )
