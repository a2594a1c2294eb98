"""Helpers for the price-history tests: definitions against the sandbox, partition-range runs."""

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest
import requests
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from quote_pipeline.definitions import build_definitions
from quote_pipeline.defs.resources import FMPResource
from quote_pipeline.fmp.history import DAILY_PATH, INTRADAY_5MIN_PATH
from quote_pipeline.sandbox import SandboxServer
from quote_pipeline.storage import add_tickers, create_db_engine
from quote_pipeline_tests.conftest import SANDBOX_KEY

TICKERS = ["AAPL", "MSFT", "BRK.B", "BTCUSD", "PENNY", "^GSPC"]


def history_definitions(
    monkeypatch: pytest.MonkeyPatch,
    base_url: str,
    database_url: str,
    tickers: Sequence[str] = TICKERS,
    **fmp_settings: Any,
) -> dg.Definitions:
    """The real Definitions, configured by environment, with a fast-retrying FMP resource."""
    monkeypatch.setenv("FMP_BASE_URL", base_url)
    monkeypatch.setenv("FMP_API_KEY", SANDBOX_KEY)
    monkeypatch.setenv("QUOTE_PIPELINE_DATABASE_URL", database_url)
    if tickers:
        add_tickers(create_db_engine(database_url), tickers, now=datetime.now(UTC))
    settings = {
        "backoff_initial": 0.01,
        "read_timeout": 5.0,
        "pass_delay_seconds": 0.0,
        **fmp_settings,
    }
    fmp = FMPResource(api_key=dg.EnvVar("FMP_API_KEY"), base_url=base_url, **settings)
    return build_definitions(resources={"fmp": fmp})


def run_daily(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    first: str,
    last: str | None = None,
    **config: Any,
) -> dg.ExecuteInProcessResult:
    """``daily_prices`` over the partitions ``first`` to ``last``, as one run (a backfill)."""
    job = defs.resolve_job_def("daily_prices_job")
    run_config = {"ops": {"daily_prices": {"config": config}}}
    if last is None or last == first:
        return job.execute_in_process(
            instance=instance, partition_key=first, run_config=run_config, raise_on_error=False
        )
    return job.execute_in_process(
        instance=instance,
        run_config=run_config,
        raise_on_error=False,
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
    )


def run_intraday(
    defs: dg.Definitions, instance: dg.DagsterInstance, **config: Any
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("intraday_bars_job")
    run_config = {"ops": {"intraday_bars": {"config": config}}}
    return job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    """The metadata of the (first) materialization of ``asset`` in ``result``."""
    events = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in events[0].materialization.metadata.items()}


def metadata_by_partition(
    result: dg.ExecuteInProcessResult, asset: str = "daily_prices"
) -> dict[str, dict[str, Any]]:
    """Each partition's materialization metadata in ``result``, by partition key."""
    events = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    by_key = {
        e.partition: {k: v.value for k, v in e.materialization.metadata.items()} for e in events
    }
    assert len(by_key) == len(events), "one materialization per partition"
    return {key: value for key, value in by_key.items() if key is not None}


def run_figures(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """The ``run_figures`` table of a ``daily_prices`` run (the same on each partition)."""
    tables = {str(metadata["run_figures"]) for metadata in metadata_by_partition(result).values()}
    assert len(tables) == 1, "every partition of a run carries the same run figures"
    table = metadata_of(result, "daily_prices")["run_figures"]
    return {record.data["figure"]: record.data["value"] for record in table.records}


def checks_of(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def served(sandbox: SandboxServer, path: str, symbol: str, first: date, last: date) -> list[dict]:
    """What the sandbox answers, decoded exactly."""
    response = requests.get(
        sandbox.url + path,
        params={
            "symbol": symbol,
            "from": first.isoformat(),
            "to": last.isoformat(),
            "apikey": SANDBOX_KEY,
        },
        timeout=10,
    )
    response.raise_for_status()
    return [plain_names(row) for row in json.loads(response.text, parse_float=Decimal)]


# The unadjusted daily endpoint names its as-traded prices adjOpen…adjClose (as FMP does).
AS_TRADED_NAMES = {"adjOpen": "open", "adjHigh": "high", "adjLow": "low", "adjClose": "close"}


def plain_names(row: dict[str, Any]) -> dict[str, Any]:
    """A served daily row with its prices under the plain names (open … close)."""
    return {AS_TRADED_NAMES.get(key, key): value for key, value in row.items()}


def history_requests(sandbox: SandboxServer, *, intraday: bool = False) -> Counter[str]:
    """Requests per symbol the sandbox saw on the daily (or 5-minute) endpoint."""
    path = INTRADAY_5MIN_PATH if intraday else DAILY_PATH
    return Counter(
        r["symbols"][0] for r in sandbox.stats()["requests"] if r["path"] == path and r["symbols"]
    )
