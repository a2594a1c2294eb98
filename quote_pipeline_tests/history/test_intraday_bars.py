"""`intraday_bars` through Dagster in process: UTC keys across DST, upserts, forming bars."""

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import dagster as dg
import pytest

from quote_pipeline.fmp.history import INTRADAY_5MIN_PATH
from quote_pipeline.history_calendar import last_opened_session
from quote_pipeline.storage import create_db_engine
from quote_pipeline.storage.history import read_intraday_bars
from quote_pipeline_tests.conftest import SANDBOX_KEY, SandboxFactory
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
    assert metadata["api_requests"] == len(TICKERS)
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


class _ScriptedChart:
    """A stand-in for FMP's 5-minute endpoint whose answer the test sets, so that a bar can
    be seen while forming and again when complete (the sandbox follows the wall clock)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.asked: list[dict[str, list[str]]] = []
        chart = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                ok = url.path == INTRADAY_5MIN_PATH and query.get("apikey") == [SANDBOX_KEY]
                chart.asked.append(query)
                body = json.dumps(chart.rows if ok else {"Error Message": "Invalid API KEY."})
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def scripted_chart() -> Iterator[_ScriptedChart]:
    chart = _ScriptedChart()
    chart.thread.start()
    yield chart
    chart.server.shutdown()
    chart.server.server_close()


def _row(when: str, close: float, volume: int) -> dict[str, Any]:
    return {"date": when, "open": 10.0, "low": 9.9, "high": 10.6, "close": close, "volume": volume}


def test_the_forming_bar_is_completed_by_the_next_run(
    monkeypatch: pytest.MonkeyPatch,
    scripted_chart: _ScriptedChart,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    defs = history_definitions(monkeypatch, scripted_chart.url, database_url, ["AAPL"])
    config = {"from_date": "2026-11-24", "to_date": "2026-11-24"}
    # 09:42 New York: the 09:40 bar is two minutes old.
    scripted_chart.rows = [
        _row("2026-11-24 09:40:00", 10.2, 1_000),
        _row("2026-11-24 09:35:00", 10.1, 50_000),
        _row("2026-11-24 09:30:00", 10.0, 90_000),
    ]
    assert run_intraday(defs, dagster_instance, **config).success
    # 09:47: the 09:40 bar is complete, a 09:45 bar is forming.
    scripted_chart.rows = [
        _row("2026-11-24 09:45:00", 10.5, 700),
        _row("2026-11-24 09:40:00", 10.4, 48_000),
        _row("2026-11-24 09:35:00", 10.1, 50_000),
        _row("2026-11-24 09:30:00", 10.0, 90_000),
    ]
    assert run_intraday(defs, dagster_instance, **config).success

    assert [q["from"] for q in scripted_chart.asked] == [["2026-11-24"], ["2026-11-24"]]
    rows = {r.bar_start: r for r in read_intraday_bars(create_db_engine(database_url))}
    nine_forty = datetime(2026, 11, 24, 14, 40, tzinfo=UTC)
    assert len(rows) == 4
    assert rows[nine_forty].close == Decimal("10.4")
    assert rows[nine_forty].volume == 48_000
    assert rows[nine_forty + timedelta(minutes=5)].volume == 700
