"""History requests and parsing: exact decimals, ranges, New York time to UTC across DST."""

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests

from quote_pipeline.fetch_engine import FetchEngine, RetryBudget
from quote_pipeline.fmp import ClientSettings, FMPAuthError, FMPClient
from quote_pipeline.fmp.history import (
    DAILY_PATH,
    INTRADAY_5MIN_PATH,
    HistoryRequest,
    NonexistentNewYorkTime,
    SymbolHistory,
    daily_history_request,
    intraday_bars_request,
    is_ambiguous_new_york,
    new_york_series_to_utc,
    new_york_to_utc,
    parse_daily_rows,
    parse_intraday_rows,
)
from quote_pipeline.market_calendar import sessions_between
from quote_pipeline.models import FailureKind
from quote_pipeline.sandbox import FaultConfig, SandboxServer
from quote_pipeline_tests.conftest import SANDBOX_KEY, SandboxFactory
from quote_pipeline_tests.history.support import plain_names

FETCHED = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)


def client_for(sandbox: SandboxServer, **settings: Any) -> FMPClient:
    defaults: dict[str, Any] = {"read_timeout": 5.0, "backoff_initial": 0.01}
    return FMPClient(SANDBOX_KEY, ClientSettings(base_url=sandbox.url, **{**defaults, **settings}))


def fetch_one(client: FMPClient, request: HistoryRequest, symbol: str) -> SymbolHistory[Any]:
    """One symbol through the fetch engine, as the assets fetch it (no extra pass)."""
    engine = FetchEngine(client, RetryBudget(extra_passes=0))
    (result,) = engine.fetch([symbol], request).results
    if result.value is not None:
        return result.value
    return SymbolHistory(symbol, False, failure=result.failure)


def fetch_daily_history(client: FMPClient, symbol: str, start: date, end: date) -> Any:
    return fetch_one(client, daily_history_request(client, start, end), symbol)


def fetch_intraday_bars(client: FMPClient, symbol: str, start: date, end: date) -> Any:
    return fetch_one(client, intraday_bars_request(client, start, end), symbol)


def served(sandbox: SandboxServer, path: str, **params: str) -> list[dict[str, Any]]:
    response = requests.get(
        sandbox.url + path, params={**params, "apikey": SANDBOX_KEY}, timeout=10
    )
    response.raise_for_status()
    return [plain_names(row) for row in json.loads(response.text, parse_float=Decimal)]


# --- New York wall time -------------------------------------------------------------------------


def test_wall_time_converts_with_the_offset_of_its_own_date() -> None:
    assert new_york_to_utc(datetime(2026, 7, 1, 9, 30)) == datetime(2026, 7, 1, 13, 30, tzinfo=UTC)
    assert new_york_to_utc(datetime(2026, 12, 1, 9, 30)) == datetime(
        2026, 12, 1, 14, 30, tzinfo=UTC
    )
    # The Friday before and the Monday after the 2026-11-01 fall-back change.
    assert new_york_to_utc(datetime(2026, 10, 30, 15, 55)).hour == 19
    assert new_york_to_utc(datetime(2026, 11, 2, 15, 55)).hour == 20


def test_a_skipped_time_is_refused_not_shifted() -> None:
    # 2026-03-08 02:30 never happened in New York (clocks went 02:00 -> 03:00).
    with pytest.raises(NonexistentNewYorkTime, match="does not exist"):
        new_york_to_utc(datetime(2026, 3, 8, 2, 30))
    assert not is_ambiguous_new_york(datetime(2026, 3, 8, 2, 30))
    with pytest.raises(ValueError, match="already has a timezone"):
        new_york_to_utc(datetime(2026, 3, 9, 9, 30, tzinfo=UTC))


def test_the_repeated_hour_is_resolved_by_order() -> None:
    walls = [datetime(2026, 11, 1, 0, 55)] + [
        datetime(2026, 11, 1, 1, m) for m in (0, 30, 55, 0, 30, 55)
    ]
    walls.append(datetime(2026, 11, 1, 2, 0))
    assert is_ambiguous_new_york(datetime(2026, 11, 1, 1, 30))
    instants = new_york_series_to_utc(walls)
    assert [i.strftime("%H:%M") for i in instants] == [  # type: ignore[union-attr]
        "04:55",
        "05:00",
        "05:30",
        "05:55",  # 01:55 EDT
        "06:00",  # 01:00 again, now EST
        "06:30",
        "06:55",
        "07:00",
    ]
    assert len(set(instants)) == len(instants)


# --- parsing ------------------------------------------------------------------------------------


def test_daily_rows_keep_every_digit_and_only_the_range() -> None:
    payload = json.loads(
        """[
        {"symbol":"AAPL","date":"2026-03-31","open":232.8,"high":233.10,"low":0.00001234,
         "close":232.81,"volume":9876543210,"change":0.01,"changePercent":0.0043,"vwap":232.9},
        {"symbol":"AAPL","date":"2026-03-30","open":230,"high":231,"low":229,"close":230.5,
         "volume":1},
        {"symbol":"AAPL","date":"2026-03-01","open":1,"high":1,"low":1,"close":1,"volume":1}
        ]""",
        parse_float=Decimal,
    )
    history = parse_daily_rows(payload, "AAPL", date(2026, 3, 2), date(2026, 3, 31), FETCHED)
    assert history.answered and history.failure is None
    assert history.rows_outside_range == 1
    newest, older = history.bars
    assert newest.open == Decimal("232.8") and str(newest.high) == "233.10"
    assert newest.low == Decimal("0.00001234")
    assert newest.volume == 9876543210
    assert newest.change_percent == Decimal("0.0043")
    assert older.change is None and older.vwap is None and older.open == Decimal(230)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"date": "2026-03-30", "open": "n/a"}, "open must be a number"),
        ({"date": "2026-03-30", "volume": None}, "missing 'volume'"),
        ({"date": "2026-03-30", "volume": Decimal("1.5")}, "whole number"),
        ({"date": "2026-03-30", "volume": 2**64}, "64 bits"),
        ({"date": "30/03/2026"}, "Invalid isoformat"),
        ({"symbol": "MSFT", "date": "2026-03-30"}, "another symbol"),
    ],
)
def test_bad_daily_rows_are_rejected_and_reported(row: dict[str, Any], reason: str) -> None:
    good = {"date": "2026-03-31", "open": 1, "high": 2, "low": 1, "close": 2, "volume": 5}
    bad = {**{k: v for k, v in good.items() if k != "date"}, **row}
    history = parse_daily_rows([good, bad], "AAPL", date(2026, 3, 1), date(2026, 3, 31), FETCHED)
    assert history.answered
    assert [b.day for b in history.bars] == [date(2026, 3, 31)]
    assert history.failure is not None
    assert history.failure.kind == FailureKind.BAD_RESPONSE
    assert "1 of 2 rows rejected" in history.failure.message
    assert reason in history.failure.message


def test_a_repeated_date_keeps_the_first_row() -> None:
    rows = [
        {"date": "2026-03-31", "open": 1, "high": 2, "low": 1, "close": 2, "volume": 5},
        {"date": "2026-03-31", "open": 9, "high": 9, "low": 9, "close": 9, "volume": 9},
    ]
    history = parse_daily_rows(rows, "AAPL", date(2026, 3, 1), date(2026, 3, 31), FETCHED)
    assert [b.open for b in history.bars] == [1]
    assert history.failure is not None and "appears twice" in history.failure.message


def test_a_response_that_is_not_a_list_is_not_an_answer() -> None:
    history = parse_daily_rows(
        {"historical": []}, "AAPL", date(2026, 3, 1), date(2026, 3, 31), FETCHED
    )
    assert not history.answered
    assert history.failure is not None and history.failure.kind == FailureKind.BAD_RESPONSE


def test_intraday_rows_across_the_fall_back_change() -> None:
    # Newest first, as FMP sends them: Monday after the change (EST), Friday before (EDT).
    rows = [
        {"date": "2026-11-02 09:35:00", "open": 2, "low": 1, "high": 3, "close": 2, "volume": 7},
        {"date": "2026-11-02 09:30:00", "open": 2, "low": 1, "high": 3, "close": 2, "volume": 7},
        {"date": "2026-10-30 15:55:00", "open": 2, "low": 1, "high": 3, "close": 2, "volume": 7},
    ]
    history = parse_intraday_rows(rows, "AAPL", date(2026, 10, 30), date(2026, 11, 2), FETCHED)
    assert history.failure is None
    assert [b.bar_start for b in history.bars] == [
        datetime(2026, 10, 30, 19, 55, tzinfo=UTC),
        datetime(2026, 11, 2, 14, 30, tzinfo=UTC),
        datetime(2026, 11, 2, 14, 35, tzinfo=UTC),
    ]


def test_intraday_fold_and_gap_rows() -> None:
    def bar(when: str) -> dict[str, Any]:
        return {"date": when, "open": 2, "low": 1, "high": 3, "close": 2, "volume": 7}

    # Newest first through the repeated hour (24-hour instruments trade through it).
    fold = [bar("2026-11-01 01:05:00"), bar("2026-11-01 01:00:00")]
    fold += [bar("2026-11-01 01:05:00"), bar("2026-11-01 01:00:00")]
    history = parse_intraday_rows(fold, "BTCUSD", date(2026, 11, 1), date(2026, 11, 1), FETCHED)
    assert history.failure is None
    assert [b.bar_start.strftime("%H:%M") for b in history.bars] == [
        "05:00",
        "05:05",
        "06:00",
        "06:05",
    ]
    gap = [bar("2026-03-08 03:00:00"), bar("2026-03-08 02:30:00"), bar("2026-03-08 01:55:00")]
    history = parse_intraday_rows(gap, "BTCUSD", date(2026, 3, 8), date(2026, 3, 8), FETCHED)
    assert [b.bar_start.strftime("%H:%M") for b in history.bars] == ["06:55", "07:00"]
    assert history.failure is not None and "does not exist" in history.failure.message


def test_intraday_offsets_and_repeats_are_refused() -> None:
    rows = [
        {"date": "2026-11-02T09:30:00-05:00", "open": 1, "low": 1, "high": 1, "close": 1},
        {"date": "2026-11-02 09:35:00", "open": 1, "low": 1, "high": 1, "close": 1, "volume": 1},
        {"date": "2026-11-02 09:35:00", "open": 1, "low": 1, "high": 1, "close": 1, "volume": 1},
    ]
    history = parse_intraday_rows(rows, "AAPL", date(2026, 11, 2), date(2026, 11, 2), FETCHED)
    assert len(history.bars) == 1
    assert history.failure is not None
    assert "2 of 3 rows rejected" in history.failure.message


# --- against the sandbox -------------------------------------------------------------------------


def test_one_request_per_symbol_for_a_whole_range(sandbox: SandboxServer) -> None:
    start, end = date(2025, 1, 1), date(2026, 3, 31)
    with client_for(sandbox) as client:
        history = fetch_daily_history(client, "AAPL", start, end)
        assert client.requests_made == 1
    expected = served(
        sandbox, DAILY_PATH, symbol="AAPL", **{"from": "2025-01-01", "to": "2026-03-31"}
    )
    assert len(history.bars) == len(expected) == len(sessions_between(start, end))
    assert {b.day for b in history.bars} == {date.fromisoformat(r["date"]) for r in expected}
    first = next(r for r in expected if r["date"] == "2025-01-02")
    bar = next(b for b in history.bars if b.day == date(2025, 1, 2))
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        first["open"],
        first["high"],
        first["low"],
        first["close"],
        first["volume"],
    )
    # As traded: the endpoint gives no change or vwap, and none is made up.
    assert "vwap" not in first and (bar.vwap, bar.change) == (None, None)
    assert bar.price_basis == "as_traded"
    (logged,) = sandbox.stats()["requests"][-1:]
    assert logged["path"] == DAILY_PATH and logged["symbols"] == ["AAPL"]


def test_intraday_bars_from_the_sandbox_land_in_utc(sandbox: SandboxServer) -> None:
    with client_for(sandbox) as client:
        history = fetch_intraday_bars(client, "MSFT", date(2026, 10, 30), date(2026, 11, 2))
    assert history.failure is None
    starts = [b.bar_start for b in history.bars]
    assert len(starts) == 2 * 78
    assert min(starts) == datetime(2026, 10, 30, 13, 30, tzinfo=UTC)  # 09:30 EDT
    assert max(starts) == datetime(2026, 11, 2, 20, 55, tzinfo=UTC)  # 15:55 EST
    assert datetime(2026, 11, 2, 14, 30, tzinfo=UTC) in starts  # 09:30 EST
    assert all(
        b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in history.bars
    )


def test_per_symbol_problems_become_failures(start_sandbox: SandboxFactory) -> None:
    sandbox = start_sandbox(
        faults=FaultConfig(
            unknown_symbols={"GONE"},
            plan_gated_symbols={"GATED"},
            malformed_symbols={"TRUNC"},
            bad_shape_symbols={"SHAPE"},
        )
    )
    start, end = date(2026, 1, 5), date(2026, 1, 9)
    with client_for(sandbox) as client:
        gone = fetch_daily_history(client, "GONE", start, end)
        gated = fetch_daily_history(client, "GATED", start, end)
        truncated = fetch_daily_history(client, "TRUNC", start, end)
        shape = fetch_daily_history(client, "SHAPE", start, end)
    assert gone.answered and gone.bars == [] and gone.failure is None
    assert not gated.answered and gated.failure and gated.failure.kind == FailureKind.NOT_IN_PLAN
    assert not truncated.answered
    assert truncated.failure and truncated.failure.kind == FailureKind.BAD_RESPONSE
    assert shape.answered and shape.bars == []
    assert shape.failure and "5 of 5 rows rejected" in shape.failure.message
    for history in (gated, truncated, shape):
        assert SANDBOX_KEY not in history.failure.message  # type: ignore[union-attr]


def test_server_errors_are_retried_then_reported(start_sandbox: SandboxFactory) -> None:
    sandbox = start_sandbox(faults=FaultConfig(server_error_rate=1.0))
    with client_for(sandbox, attempts=3) as client:
        history = fetch_daily_history(client, "AAPL", date(2026, 1, 5), date(2026, 1, 9))
        assert client.requests_made == 3
    assert not history.answered
    assert history.failure and history.failure.kind == FailureKind.SERVER_ERROR


def test_run_wide_refusals_are_raised(start_sandbox: SandboxFactory) -> None:
    sandbox = start_sandbox()
    bad_key = FMPClient("wrong", ClientSettings(base_url=sandbox.url, backoff_initial=0.01))
    with bad_key, pytest.raises(FMPAuthError) as raised:
        fetch_intraday_bars(bad_key, "AAPL", date(2026, 1, 5), date(2026, 1, 5))
    assert "wrong" not in str(raised.value)
    assert INTRADAY_5MIN_PATH in str(raised.value)
