"""Small helpers shared by the pipeline tests."""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest
import requests

from quote_pipeline.definitions import build_definitions
from quote_pipeline.sandbox import SandboxServer
from quote_pipeline.storage import add_tickers, create_db_engine
from quote_pipeline_tests.conftest import SANDBOX_KEY


def pipeline_definitions(
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxServer,
    database_url: str,
    tickers: Sequence[str] = (),
    **env: str,
) -> dg.Definitions:
    """The real Definitions, configured by environment as in production, plus seeded tickers."""
    monkeypatch.setenv("FMP_BASE_URL", sandbox.url)
    monkeypatch.setenv("FMP_API_KEY", SANDBOX_KEY)
    monkeypatch.setenv("QUOTE_PIPELINE_DATABASE_URL", database_url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if tickers:
        add_tickers(create_db_engine(database_url), tickers, now=datetime.now(UTC))
    return build_definitions()


def run_refresh(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    *,
    asset_selection: Sequence[str] | None = None,
    run_config: dict[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("refresh_quotes")
    return job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config=run_config,
        asset_selection=[dg.AssetKey(k) for k in asset_selection] if asset_selection else None,
    )


def materialization_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def mapped_fetch_steps(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        e.step_key
        for e in result.all_events
        if e.event_type_value == "STEP_SUCCESS"
        and (e.step_key or "").startswith("raw_quotes.fetch_quote_batch[")
    ]


def served_quote(sandbox: SandboxServer, symbol: str) -> dict[str, Any]:
    """The sandbox's current answer for ``symbol``, decoded exactly."""
    response = requests.get(
        f"{sandbox.url}/stable/quote-short",
        params={"symbol": symbol, "apikey": SANDBOX_KEY},
        timeout=10,
    )
    response.raise_for_status()
    (row,) = json.loads(response.text, parse_float=Decimal)
    return row
