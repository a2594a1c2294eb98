"""The quotes' retry sensor: a `refresh_quotes` run for just the symbols that are due."""

from __future__ import annotations

import dagster as dg

from quote_pipeline.defs.fetching import providers_or_fmp
from quote_pipeline.defs.quotes.assets import DATASET
from quote_pipeline.defs.quotes.jobs import REFRESH_QUOTES
from quote_pipeline.defs.resources import ProviderChoice
from quote_pipeline.defs.retries import build_retry_sensor, retry_run_key, retry_tags
from quote_pipeline.run_policy import refresh_quotes_run_config
from quote_pipeline.storage.fetch_state import PendingSymbol

RETRY_SENSOR_NAME = "retry_pending_quotes"


def retry_run_requests(due: list[PendingSymbol]) -> list[dg.RunRequest]:
    """One refresh of just the ``due`` symbols."""
    symbols = sorted(p.ticker for p in due)
    return [
        dg.RunRequest(
            run_key=retry_run_key(RETRY_SENSOR_NAME, due),
            run_config=refresh_quotes_run_config(symbols),
            tags=retry_tags(symbols),
        )
    ]


def build_quote_retry_sensor() -> dg.SensorDefinition:
    return build_retry_sensor(
        name=RETRY_SENSOR_NAME,
        job_name=REFRESH_QUOTES,
        datasets=lambda dataset: dataset == DATASET,
        run_requests=retry_run_requests,
        providers=lambda: providers_or_fmp(ProviderChoice().quote_order),
        description=(
            "Ask the API again, alone, for the tickers a quote refresh could not get, with "
            "back-off (1, 2, 4 … minutes, at most 30; given up after 6 hours). A skipped tick "
            "lists what is pending and when it is next tried."
        ),
    )
