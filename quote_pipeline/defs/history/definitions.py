"""The price-history domain: daily bars (one partition per NYSE session), 5-minute bars,
their schedules and the daily bars' retry sensor."""

import dagster as dg

from quote_pipeline.defs.history.assets import (
    build_daily_prices,
    daily_partitions_from,
    intraday_bars,
)
from quote_pipeline.defs.history.jobs import build_daily_prices_job, build_intraday_bars_job
from quote_pipeline.defs.history.schedules import build_history_schedules
from quote_pipeline.defs.history.sensors import build_daily_retry_sensor
from quote_pipeline.defs.metadata import beta_parameters_accepted
from quote_pipeline.defs.settings import DeploymentSettings


@dg.definitions
def history_definitions() -> dg.Definitions:
    settings = DeploymentSettings.from_env()
    with beta_parameters_accepted():
        return dg.Definitions(
            assets=[
                build_daily_prices(daily_partitions_from(settings.history_start)),
                intraday_bars,
            ],
            jobs=[build_daily_prices_job(), build_intraday_bars_job()],
            schedules=build_history_schedules(settings.schedules.default_status),
            sensors=[build_daily_retry_sensor()],
        )
