"""The daily bars' retry sensor: the same range again, for just the tickers that are due.

Intraday bars need none: every 5-minute tick asks each ticker for the whole day again.
"""

from __future__ import annotations

from itertools import groupby

import dagster as dg

from quote_pipeline.defs.fetching import providers_or_fmp
from quote_pipeline.defs.history.assets import DAILY_DATASET_PREFIX, daily_range
from quote_pipeline.defs.history.jobs import DAILY_PRICES_JOB
from quote_pipeline.defs.resources import ProviderChoice
from quote_pipeline.defs.retries import build_retry_sensor, retry_run_key, retry_tags
from quote_pipeline.storage.fetch_state import PendingSymbol

RETRY_SENSOR_NAME = "retry_pending_daily_prices"
# A single-run backfill of a range: how Dagster names the range of one run.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def retry_run_requests(due: list[PendingSymbol]) -> list[dg.RunRequest]:
    """One `daily_prices_job` run per range, for just that range's due tickers: a single
    session's partition, or a partition range whose ends are sessions (partition keys)."""
    requests = []
    for dataset, group in groupby(sorted(due, key=lambda p: p.dataset), lambda p: p.dataset):
        pending = list(group)
        sessions = daily_range(dataset)
        if sessions is None:  # no session in it: no run ever left tickers pending there
            continue
        first, last = sessions
        symbols = sorted(p.ticker for p in pending)
        tags = retry_tags(symbols)
        if first != last:
            tags |= {RANGE_START_TAG: first, RANGE_END_TAG: last}
        requests.append(
            dg.RunRequest(
                run_key=retry_run_key(RETRY_SENSOR_NAME, pending),
                run_config={"ops": {"daily_prices": {"config": {"only_symbols": symbols}}}},
                tags=tags,
                partition_key=first if first == last else None,
            )
        )
    return requests


def build_daily_retry_sensor() -> dg.SensorDefinition:
    return build_retry_sensor(
        name=RETRY_SENSOR_NAME,
        job_name=DAILY_PRICES_JOB,
        datasets=lambda dataset: dataset.startswith(DAILY_DATASET_PREFIX),
        run_requests=retry_run_requests,
        providers=lambda: providers_or_fmp(ProviderChoice().history_order),
        description=(
            "Ask the API again, alone, for the tickers a daily_prices run (or backfill) could "
            "not get after its retry budget: the same partition range, just those tickers, "
            "with back-off (1, 2, 4 … minutes, capped at 30; given up after 6 h). A skipped "
            "tick lists what is pending and when it is next tried."
        ),
    )
