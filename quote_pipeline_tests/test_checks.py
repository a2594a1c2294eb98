"""Asset checks pass on good data and fail on the right bad data."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from quote_pipeline.defs.quotes.checks import (
    fetch_failures,
    freshness_result,
    no_duplicate_tickers,
    prices_positive,
)
from quote_pipeline.defs.resources import DatabaseResource
from quote_pipeline.fmp import QuoteFetchResult
from quote_pipeline.models import FailureKind, Quote, SymbolFailure
from quote_pipeline.storage import add_tickers, write_quotes
from quote_pipeline.storage.quality import stale_tickers
from quote_pipeline.storage.schema import stocks

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York: market open


def good_quotes(at: datetime = NOW) -> list[Quote]:
    return [
        Quote("AAPL", Decimal("232.8"), 100, None, at, at),
        Quote("MSFT", Decimal("410.5"), 200, None, at, at),
    ]


def insert_raw(engine: Engine, ticker: str, price: str, volume: int) -> None:
    """A row written behind the pipeline's back (another tool, a hand edit)."""
    with engine.begin() as conn:
        conn.execute(
            sa.insert(stocks),
            [{"ticker": ticker, "price": Decimal(price), "volume": volume, "change": None,
              "quoted_at": NOW, "updated_at": NOW}],
        )  # fmt: skip


def test_prices_positive(engine: Engine, database_url: str) -> None:
    database = DatabaseResource(url=database_url)
    write_quotes(engine, good_quotes(), written_at=NOW)
    assert prices_positive(database=database).passed
    insert_raw(engine, "ZERO", "0", 5)
    insert_raw(engine, "NEGV", "1.5", -1)
    result = prices_positive(database=database)
    assert not result.passed
    assert result.metadata["invalid_rows"].value == 2
    assert {row["ticker"] for row in result.metadata["examples"].value} == {"ZERO", "NEGV"}


def test_no_duplicate_tickers(engine: Engine, database_url: str) -> None:
    database = DatabaseResource(url=database_url)
    write_quotes(engine, good_quotes(), written_at=NOW)
    assert no_duplicate_tickers(database=database).passed
    insert_raw(engine, "aapl", "232.8", 1)
    insert_raw(engine, "MSFT ", "410", 1)
    result = no_duplicate_tickers(database=database)
    assert not result.passed
    assert result.metadata["duplicates"].value == {"AAPL": 2, "MSFT": 2}


def test_stale_tickers_are_stored_rows_only(engine: Engine) -> None:
    # NVDA is tracked but never got a quote: coverage reports it, freshness does not.
    add_tickers(engine, ["AAPL", "MSFT", "NVDA"], now=NOW)
    write_quotes(engine, good_quotes(), written_at=NOW)
    assert stale_tickers(engine, updated_before=NOW - timedelta(minutes=5)) == []
    assert stale_tickers(engine, updated_before=NOW + timedelta(minutes=5)) == ["AAPL", "MSFT"]


@pytest.mark.parametrize(
    ("now", "severity"),
    [
        (NOW, dg.AssetCheckSeverity.ERROR),  # Tuesday 10:00 New York
        (datetime(2026, 11, 24, 21, 30, tzinfo=UTC), dg.AssetCheckSeverity.ERROR),  # 16:30, +1h
        (datetime(2026, 11, 24, 23, 0, tzinfo=UTC), dg.AssetCheckSeverity.WARN),  # 18:00
        (datetime(2026, 11, 28, 15, 0, tzinfo=UTC), dg.AssetCheckSeverity.WARN),  # Saturday
        (datetime(2026, 11, 26, 15, 0, tzinfo=UTC), dg.AssetCheckSeverity.WARN),  # Thanksgiving
    ],
)
def test_freshness_is_an_error_only_in_market_hours(
    now: datetime, severity: dg.AssetCheckSeverity
) -> None:
    stale = freshness_result(["AAPL"], now - timedelta(minutes=75), now=now)
    assert not stale.passed
    assert stale.severity == severity
    assert freshness_result([], now - timedelta(minutes=75), now=now).passed


def test_fetch_failures_are_broken_down_by_kind() -> None:
    result = QuoteFetchResult(
        quotes=good_quotes(),
        failures=[
            SymbolFailure("GONE", FailureKind.NO_QUOTE, "no quote"),
            SymbolFailure("MALF", FailureKind.BAD_RESPONSE, "malformed JSON"),
            SymbolFailure("GONE2", FailureKind.NO_QUOTE, "no quote"),
        ],
    )
    evaluation = fetch_failures(raw_quotes=result)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.description == (
        "3 of 5 tickers got no quote: GONE no_quote, MALF bad_response, GONE2 no_quote"
    )
    assert evaluation.metadata["failures_by_kind"].value == "no_quote: 2, bad_response: 1"
    table = evaluation.metadata["failed_tickers"].value
    assert [(r.data["ticker"], r.data["kind"]) for r in table.records] == [
        ("GONE", "no_quote"),
        ("MALF", "bad_response"),
        ("GONE2", "no_quote"),
    ]
    assert fetch_failures(raw_quotes=QuoteFetchResult(quotes=good_quotes())).passed


def test_freshness_runs_on_its_own_and_flags_stale_rows_only(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, dagster_instance: dg.DagsterInstance
) -> None:
    from quote_pipeline.definitions import build_definitions
    from quote_pipeline.storage import create_db_engine

    monkeypatch.setenv("QUOTE_PIPELINE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("FMP_API_KEY", "unused")
    engine = create_db_engine(sqlite_url)
    add_tickers(engine, ["AAPL", "MSFT", "NVDA", "KO"], now=NOW)
    now = datetime.now(UTC)
    write_quotes(engine, good_quotes(now), written_at=now)  # AAPL, MSFT: fresh
    two_hours_ago = now - timedelta(hours=2)
    stale = [Quote("KO", Decimal("61.2"), 1000, None, two_hours_ago, two_hours_ago)]
    write_quotes(engine, stale, written_at=two_hours_ago)
    # NVDA never got a quote: no row to go stale (coverage's to report).

    job = build_definitions().resolve_job_def("check_stocks_freshness")
    result = job.execute_in_process(instance=dagster_instance, raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "freshness"
    assert not evaluation.passed
    assert evaluation.metadata["stale_rows"].value == 1
    assert evaluation.description.startswith("1 stored rows not updated since")
    assert "KO" in evaluation.description and "NVDA" not in evaluation.description
    assert not result.get_asset_materialization_events()  # a check, not a refresh


@pytest.mark.parametrize(
    ("tick", "runs"),
    [
        (datetime(2026, 11, 24, 15, 31, tzinfo=UTC), True),  # Tuesday 10:31 New York
        (datetime(2026, 11, 26, 15, 31, tzinfo=UTC), False),  # Thanksgiving
        (datetime(2026, 11, 28, 15, 31, tzinfo=UTC), False),  # Saturday
    ],
)
def test_the_freshness_schedule_follows_the_nyse_calendar(tick: datetime, runs: bool) -> None:
    from quote_pipeline.defs.quotes.schedules import build_freshness_check_schedule

    schedule = build_freshness_check_schedule()
    with dg.build_schedule_context(scheduled_execution_time=tick) as context:
        (request,) = schedule.evaluate_tick(context).run_requests or [None]
    assert (request is not None) == runs
