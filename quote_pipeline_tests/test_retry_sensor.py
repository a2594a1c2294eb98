"""Symbols left pending by a refresh: their back-off, and what the retry sensor says and does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from quote_pipeline.defs.quotes.sensors import build_quote_retry_sensor
from quote_pipeline.defs.resources import DatabaseResource
from quote_pipeline.models import FailureKind, SymbolFailure
from quote_pipeline.storage.fetch_state import (
    GIVEN_UP,
    PENDING,
    RetryBackoff,
    SqlQuotaMemory,
    clear_symbols,
    due_symbols,
    pending_symbols,
    record_failed_symbols,
)
from quote_pipeline.storage.schema import symbol_retries

T0 = datetime(2026, 11, 25, 15, 1, tzinfo=UTC)
BACKOFF = RetryBackoff(
    first_delay=timedelta(minutes=1),
    max_delay=timedelta(minutes=30),
    give_up_after=timedelta(hours=6),
)


def timeout(symbol: str) -> SymbolFailure:
    return SymbolFailure(symbol, FailureKind.TRANSPORT_ERROR, "/stable/quote-short: ReadTimeout")


def test_each_failing_run_doubles_the_wait_up_to_the_cap_then_gives_up(engine: Engine) -> None:
    now, waits = T0, []
    for _run in range(8):
        (pending,) = record_failed_symbols(
            engine, "quotes", [timeout("HANG")], {"HANG": 2}, now=now, backoff=BACKOFF
        )
        assert pending.next_attempt_at is not None
        waits.append(pending.next_attempt_at - now)
        now = pending.next_attempt_at
    assert waits == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 30, 30, 30)]
    assert pending.runs == 8 and pending.attempts == 16 and pending.first_failed_at == T0
    # Past the give-up time: kept and reported, never asked alone again.
    (given_up,) = record_failed_symbols(
        engine, "quotes", [timeout("HANG")], {}, now=T0 + timedelta(hours=6), backoff=BACKOFF
    )
    assert given_up.status == GIVEN_UP and given_up.next_attempt_at is None
    assert due_symbols(engine, "quotes", T0 + timedelta(days=1)) == []
    # A success forgets it; other datasets' rows are their own.
    record_failed_symbols(engine, "daily_prices", [timeout("HANG")], {}, now=T0, backoff=BACKOFF)
    assert clear_symbols(engine, "quotes", ["HANG", "AAPL"]) == 1
    assert [p.dataset for p in pending_symbols(engine)] == ["daily_prices"]


def evaluate(database: DatabaseResource) -> dg.SensorResult | dg.RunRequest | str:
    sensor = build_quote_retry_sensor()
    with dg.build_sensor_context(resources={"database": database}) as context:
        data = sensor.evaluate_tick(context)
    if data.skip_message is not None:
        return data.skip_message
    (request,) = data.run_requests or []
    return request


@pytest.fixture
def database(sqlite_url: str) -> DatabaseResource:
    return DatabaseResource(url=sqlite_url)


def test_the_sensor_says_what_is_pending_and_asks_for_the_due_symbols_alone(
    database: DatabaseResource,
) -> None:
    engine = database.get_engine()
    assert evaluate(database) == "No symbol is waiting for a retry."
    now = datetime.now(UTC)
    record_failed_symbols(
        engine, "quotes", [timeout("HANG"), timeout("SLOW")], {}, now=now, backoff=BACKOFF
    )
    waiting = evaluate(database)
    assert isinstance(waiting, str)
    assert "2 symbol(s) pending, next try at" in waiting and "HANG (transport_error" in waiting

    # A minute later HANG is due (SLOW too: same time); the run asks for those alone.
    with engine.begin() as conn:
        conn.execute(
            sa.update(symbol_retries)
            .where(symbol_retries.c.ticker == "HANG")
            .values(next_attempt_at=now - timedelta(seconds=1))
        )
    request = evaluate(database)
    assert isinstance(request, dg.RunRequest)
    config = request.run_config["ops"]["raw_quotes"]["ops"]["plan_quote_batches"]["config"]
    assert config == {"only_symbols": ["HANG"]}
    assert request.tags["quote_pipeline/retry_of_symbols"] == "HANG"
    # The same tick evaluated again is the same run (the run key dedupes it).
    again = evaluate(database)
    assert isinstance(again, dg.RunRequest) and again.run_key == request.run_key

    # While the quota is known to be spent, nothing is launched, and the tick says why.
    SqlQuotaMemory(engine, "acct").remember_exhausted("Bandwidth Limit Reach")
    held = evaluate(database)
    assert isinstance(held, str) and "1 symbol(s) due" in held and "quota ran out" in held


def test_given_up_symbols_are_listed_but_not_retried(database: DatabaseResource) -> None:
    engine = database.get_engine()
    long_ago = datetime.now(UTC) - timedelta(hours=7)
    record_failed_symbols(engine, "quotes", [timeout("DEAD")], {}, now=long_ago, backoff=BACKOFF)
    record_failed_symbols(
        engine, "quotes", [timeout("DEAD")], {}, now=datetime.now(UTC), backoff=BACKOFF
    )
    (dead,) = pending_symbols(engine, "quotes")
    assert dead.status == GIVEN_UP != PENDING
    message = evaluate(database)
    assert isinstance(message, str)
    assert "1 given up" in message and "DEAD" in message and "coverage" in message
