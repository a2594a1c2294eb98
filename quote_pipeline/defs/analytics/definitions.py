"""The analytics domain: daily_metrics, kept current by its own automation sensor."""

import dagster as dg

from quote_pipeline.defs.analytics.assets import daily_metrics
from quote_pipeline.defs.automation import derived_tables_sensor

AUTOMATION_SENSOR = "analytics_automation"


@dg.definitions
def analytics_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[daily_metrics],
        sensors=[
            derived_tables_sensor(
                AUTOMATION_SENSOR,
                [daily_metrics],
                "Recompute daily_metrics (and its watchlist charts) after "
                "daily_prices_adjusted is materialized (declarative automation). Calls no API.",
            )
        ],
    )
