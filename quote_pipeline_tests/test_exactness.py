"""Prices at the limits of the schema reach the tables digit for digit, on both databases.

The sandbox serves :data:`EXTREME_PRICES` symbols with 15 integer digits and 8 decimals, and
crypto dust with 8 decimals. A real refresh and a real daily_prices run store them, and
each stored value is compared, as text, with the literal in the JSON body the sandbox
served (decoded with ``parse_float=str``): a float anywhere in between (``Decimal(str(
float(text)))`` in the parser, a float column, a rounding cast) changes the digits.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest
import requests

from quote_pipeline.fmp.history import DAILY_PATH
from quote_pipeline.sandbox import SandboxServer
from quote_pipeline.sandbox.market import EXTREME_PRICES
from quote_pipeline.storage import create_db_engine, read_stocks
from quote_pipeline.storage.history import read_daily_prices
from quote_pipeline_tests.conftest import SANDBOX_KEY, SandboxFactory
from quote_pipeline_tests.helpers import pipeline_definitions, run_refresh
from quote_pipeline_tests.history.support import history_definitions, plain_names, run_daily

EXTREME = sorted(EXTREME_PRICES)
TICKERS = [*EXTREME, "AAPL", "BTCUSD"]
FIRST, LAST = date(2026, 11, 16), date(2026, 11, 20)


def served_text(sandbox: SandboxServer, path: str, **params: str) -> list[dict[str, Any]]:
    """The sandbox's answer with every number as the exact text it sent."""
    response = requests.get(
        sandbox.url + path, params={**params, "apikey": SANDBOX_KEY}, timeout=10
    )
    response.raise_for_status()
    return [plain_names(row) for row in json.loads(response.text, parse_float=str, parse_int=str)]


def text(value: Decimal | int | None) -> str | None:
    """A stored value as plain decimal text (never exponent notation, as JSON writes it)."""
    return None if value is None else format(value, "f")


def test_the_sandbox_serves_prices_at_the_schemas_limits(sandbox: SandboxServer) -> None:
    # What the test below relies on: prices a float cannot carry, in the served text.
    (big,) = served_text(sandbox, "/stable/quote-short", symbol="XBIGPRICE")
    (dust,) = served_text(sandbox, "/stable/quote-short", symbol="XDUSTPRICE")
    assert big["price"] == "123456789012345.12345678"
    assert dust["price"] == "0.00001234"
    assert str(float(big["price"])) != big["price"]


def test_refresh_and_daily_prices_store_the_served_digits_exactly(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox(clock=datetime(2026, 11, 25, 22, 0, tzinfo=UTC))
    engine = create_db_engine(database_url)

    defs = pipeline_definitions(monkeypatch, sandbox, database_url, TICKERS)
    assert run_refresh(defs, dagster_instance).success
    stored = {r.ticker: r for r in read_stocks(engine)}
    assert sorted(stored) == sorted(TICKERS)
    for ticker in TICKERS:
        (row,) = served_text(sandbox, "/stable/quote-short", symbol=ticker)
        got = stored[ticker]
        assert (text(got.price), text(got.change), str(got.volume)) == (
            row["price"],
            row["change"],
            row["volume"],
        ), ticker

    defs = history_definitions(monkeypatch, sandbox.url, database_url, tickers=())
    assert run_daily(defs, dagster_instance, FIRST.isoformat(), LAST.isoformat()).success
    bars = {(b.symbol, b.day): b for b in read_daily_prices(engine, EXTREME)}
    compared = 0
    for ticker in EXTREME:
        params = {"symbol": ticker, "from": FIRST.isoformat(), "to": LAST.isoformat()}
        for row in served_text(sandbox, DAILY_PATH, **params):
            bar = bars[(ticker, date.fromisoformat(row["date"]))]
            got_fields = (bar.open, bar.high, bar.low, bar.close)
            assert [text(v) for v in got_fields] == [
                row[k] for k in ("open", "high", "low", "close")
            ], (ticker, row["date"])
            # The as-traded endpoint gives no change or vwap: none is made up.
            assert (bar.change, bar.change_percent, bar.vwap) == (None, None, None)
            compared += 1
    assert compared == len(EXTREME) * 5  # a week of sessions each
