"""The quotes domain: tickers → raw_quotes → stocks and quote_snapshots, their checks, jobs,
schedules and sensor."""

import dagster as dg

from quote_pipeline.defs.metadata import beta_parameters_accepted
from quote_pipeline.defs.quotes.assets import (
    build_raw_quotes,
    stocks,
    stocks_refresh_outcome,
    tickers,
)
from quote_pipeline.defs.quotes.checks import quote_checks
from quote_pipeline.defs.quotes.jobs import (
    build_check_stocks_freshness_job,
    build_refresh_quotes_job,
)
from quote_pipeline.defs.quotes.schedules import (
    build_freshness_check_schedule,
    build_refresh_quotes_schedule,
)
from quote_pipeline.defs.quotes.sensors import build_quote_retry_sensor
from quote_pipeline.defs.settings import DeploymentSettings


@dg.definitions
def quote_definitions() -> dg.Definitions:
    settings = DeploymentSettings.from_env()
    with beta_parameters_accepted():
        return dg.Definitions(
            assets=[tickers, build_raw_quotes(settings.step_retry_policy()), stocks],
            asset_checks=[stocks_refresh_outcome, *quote_checks],
            jobs=[build_refresh_quotes_job(), build_check_stocks_freshness_job()],
            schedules=[
                build_refresh_quotes_schedule(settings.schedules),
                build_freshness_check_schedule(settings.schedules),
            ],
            sensors=[build_quote_retry_sensor()],
        )
