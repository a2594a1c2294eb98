"""`intraday_bars` through Dagster in process: UTC keys across DST, upserts, forming bars."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from quote_pipeline.fmp.history import INTRADAY_5MIN_PATH
from quote_pipeline.market_calendar import last_opened_session
from quote_pipeline.sandbox.market import NEW_YORK
from quote_pipeline.storage import create_db_engine
from quote_pipeline.storage.history import read_intraday_bars
from quote_pipeline_tests.conftest import SandboxFactory
from quote_pipeline_tests.history.support import (
    checks_of,
    history_definitions,
    history_requests,
    metadata_of,
    run_intraday,
    served,
)

TICKERS = ["AAPL", "MSFT", "PENNY"]


def test_bars_across_the_fall_back_change_are_keyed_in_utc(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox()
    defs = history_definitions(monkeypatch, sandbox.url, database_url, TICKERS)
    # Friday 2026-10-30 is on daylight time, Monday 2026-11-02 on standard time.
    config = {"from_date": "2026-10-30", "to_date": "2026-11-02"}
    result = run_intraday(defs, dagster_instance, **config)
    assert result.success
    assert history_requests(sandbox, intraday=True) == {t: 1 for t in TICKERS}

    engine = create_db_engine(database_url)
    rows = read_intraday_bars(engine)
    assert len(rows) == len(TICKERS) * 2 * 78
    aapl = [r for r in rows if r.symbol == "AAPL"]
    friday = [r.bar_start for r in aapl if r.bar_start.date() == date(2026, 10, 30)]
    monday = [r.bar_start for r in aapl if r.bar_start.date() == date(2026, 11, 2)]
    assert (min(friday), max(friday)) == (
        datetime(2026, 10, 30, 13, 30, tzinfo=UTC),
        datetime(2026, 10, 30, 19, 55, tzinfo=UTC),
    )
    assert (min(monday), max(monday)) == (
        datetime(2026, 11, 2, 14, 30, tzinfo=UTC),
        datetime(2026, 11, 2, 20, 55, tzinfo=UTC),
    )
    # Each stored bar is the API's bar for the New York wall time it names.
    by_start = {r.bar_start: r for r in aapl}
    for row in served(sandbox, INTRADAY_5MIN_PATH, "AAPL", date(2026, 11, 2), date(2026, 11, 2)):
        wall = datetime.fromisoformat(row["date"])
        stored = by_start[wall.replace(tzinfo=UTC) + timedelta(hours=5)]  # EST = UTC-5
        assert (stored.open, stored.high, stored.low, stored.close, stored.volume) == (
            row["open"],
            row["high"],
            row["low"],
            row["close"],
            row["volume"],
        )
    metadata = metadata_of(result, "intraday_bars")
    assert metadata["rows_written"] == len(rows)
    figures = {r.data["figure"]: r.data["value"] for r in metadata["run_figures"].records}
    assert figures["api_requests"] == len(TICKERS)
    assert checks_of(result)["bars_consistent"].passed

    # Refreshing the same dates again updates in place: no duplicate keys.
    assert run_intraday(defs, dagster_instance, **config).success
    assert len(read_intraday_bars(engine)) == len(rows)


def test_by_default_the_latest_session_is_refreshed(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox()
    defs = history_definitions(monkeypatch, sandbox.url, sqlite_url, ["AAPL"])
    expected_day = last_opened_session(datetime.now(UTC))
    result = run_intraday(defs, dagster_instance)
    assert result.success
    assert metadata_of(result, "intraday_bars")["first_day"] == str(expected_day)
    (logged,) = [r for r in sandbox.stats()["requests"] if r["path"] == INTRADAY_5MIN_PATH]
    assert logged["symbols"] == ["AAPL"]
    stored = read_intraday_bars(create_db_engine(sqlite_url))
    assert stored, "the latest session has bars (at least the one forming)"
    assert {r.bar_start.astimezone(UTC).date() for r in stored} == {expected_day}


def test_a_weekend_asks_nothing(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox()
    defs = history_definitions(monkeypatch, sandbox.url, sqlite_url, ["AAPL"])
    result = run_intraday(defs, dagster_instance, from_date="2026-11-28", to_date="2026-11-29")
    assert result.success
    assert sandbox.stats()["requests_total"] == 0
    reversed_range = run_intraday(
        defs, dagster_instance, from_date="2026-11-29", to_date="2026-11-28"
    )
    assert not reversed_range.success


def test_the_forming_bar_is_completed_by_the_next_run(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox(seed=5)  # a seed whose AAPL bar moves in every field as it forms
    defs = history_definitions(monkeypatch, sandbox.url, database_url, ["AAPL"])
    config = {"from_date": "2026-11-24", "to_date": "2026-11-24"}
    day = date(2026, 11, 24)
    engine = create_db_engine(database_url)
    fifteen_forty = datetime(2026, 11, 24, 20, 40, tzinfo=UTC)  # 15:40 New York (EST)

    # 15:42:30 New York: the 15:40 bar is two and a half minutes old.
    sandbox.set_clock(datetime(2026, 11, 24, 15, 42, 30, tzinfo=NEW_YORK))
    assert run_intraday(defs, dagster_instance, **config).success
    forming = served(sandbox, INTRADAY_5MIN_PATH, "AAPL", day, day)[0]
    assert forming["date"] == "2026-11-24 15:40:00"
    first = {r.bar_start: r for r in read_intraday_bars(engine)}
    assert len(first) == 75 and max(first) == fifteen_forty
    assert _ohlcv(first[fifteen_forty]) == _ohlcv(forming)

    # 15:47: the 15:40 bar is complete, a 15:45 bar is forming.
    sandbox.set_clock(datetime(2026, 11, 24, 15, 47, tzinfo=NEW_YORK))
    assert run_intraday(defs, dagster_instance, **config).success
    newest, complete = served(sandbox, INTRADAY_5MIN_PATH, "AAPL", day, day)[:2]
    assert (newest["date"], complete["date"]) == ("2026-11-24 15:45:00", "2026-11-24 15:40:00")

    assert history_requests(sandbox, intraday=True) == {"AAPL": 4}  # two runs, two `served`
    rows = read_intraday_bars(engine)
    by_start = {r.bar_start: r for r in rows}
    assert len(rows) == len(by_start) == 76  # updated in place, no duplicate key
    updated = by_start[fifteen_forty]
    assert _ohlcv(updated) == _ohlcv(complete)
    assert updated.open == first[fifteen_forty].open
    for name in ("close", "high", "low", "volume"):
        assert getattr(updated, name) != getattr(first[fifteen_forty], name), name
    assert updated.fetched_at > first[fifteen_forty].fetched_at
    assert _ohlcv(by_start[fifteen_forty + timedelta(minutes=5)]) == _ohlcv(newest)
    # The finished bars before it are stored as they were.
    assert all(_ohlcv(by_start[t]) == _ohlcv(first[t]) for t in first if t != fifteen_forty)


def _ohlcv(bar: Any) -> tuple[Any, ...]:
    """Open, high, low, close and volume of a stored bar or of an API row."""
    names = ("open", "high", "low", "close", "volume")
    if isinstance(bar, dict):
        return tuple(bar[n] for n in names)
    return tuple(getattr(bar, n) for n in names)
