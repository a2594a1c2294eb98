"""The alerts domain: its two sensors, each off (skipping) while no webhook is configured."""

import dagster as dg

from quote_pipeline.defs.alerts.sensors import (
    build_check_failure_alert_sensor,
    build_run_failure_alert_sensor,
)


@dg.definitions
def alert_definitions() -> dg.Definitions:
    return dg.Definitions(
        sensors=[build_run_failure_alert_sensor(), build_check_failure_alert_sensor()],
    )
