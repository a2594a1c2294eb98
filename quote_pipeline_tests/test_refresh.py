"""The quote refresh end to end: real Definitions, sandbox API, SQLite and PostgreSQL."""

from datetime import UTC, datetime

import dagster as dg
import pytest

from quote_pipeline.sandbox import FaultConfig
from quote_pipeline.storage import count_snapshots, create_db_engine, read_stocks
from quote_pipeline_tests.conftest import SandboxFactory
from quote_pipeline_tests.helpers import (
    mapped_fetch_steps,
    materialization_metadata,
    pipeline_definitions,
    run_refresh,
    served_quote,
)

TICKERS = [
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "BRK.B", "TSLA", "JPM", "V",
    "UNH", "XOM", "JNJ", "PG", "MA", "HD", "COST", "ABBV", "KO", "PEP",
    "^GSPC", "BTCUSD", "EURUSD=X", "ETH-USD", "PENNY", "SIRI", "F", "T", "GE", "BAC",
]  # fmt: skip


def test_refresh_writes_exact_prices_and_64_bit_volumes(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox()
    defs = pipeline_definitions(monkeypatch, sandbox, database_url, TICKERS)
    before = datetime.now(UTC)
    result = run_refresh(defs, dagster_instance)
    after = datetime.now(UTC)
    assert result.success

    rows = {r.ticker: r for r in read_stocks(create_db_engine(database_url))}
    assert sorted(rows) == sorted(TICKERS)
    for ticker in TICKERS:
        served = served_quote(sandbox, ticker)
        assert rows[ticker].price == served["price"], ticker
        assert rows[ticker].volume == served["volume"], ticker
        assert rows[ticker].change == served["change"], ticker
        assert rows[ticker].quoted_at.utcoffset().total_seconds() == 0
        # quote-short serves no timestamp: the quote is as of its answer, during the run.
        assert "timestamp" not in served
        assert before <= rows[ticker].quoted_at <= after, ticker
    assert any(r.volume > 2**31 for r in rows.values())
    assert any(r.price.as_tuple().exponent <= -6 for r in rows.values())  # crypto decimals
    assert count_snapshots(create_db_engine(database_url)) == len(TICKERS)

    stocks = materialization_metadata(result, "stocks")
    assert stocks["dagster/row_count"] == len(TICKERS)
    assert stocks["rows_written"] == len(TICKERS)
    assert stocks["tickers_without_quote"] == 0
    assert "failed_tickers" not in stocks  # nothing to show first
    movers = stocks["biggest_movers"].records
    assert len(movers) == 10
    changes = [abs(r.data["change_pct"]) for r in movers if r.data["change_pct"] is not None]
    assert changes == sorted(changes, reverse=True)
    assert movers[0].data["quoted_at"].endswith(" UTC") and "." not in movers[0].data["quoted_at"]
    snapshots = materialization_metadata(result, "quote_snapshots")
    assert snapshots["rows_inserted"] == len(TICKERS)
    assert materialization_metadata(result, "tickers")["count"] == len(TICKERS)


def test_free_plan_falls_back_to_single_symbol_requests(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox(premium=False)
    defs = pipeline_definitions(monkeypatch, sandbox, sqlite_url, TICKERS)
    result = run_refresh(defs, dagster_instance)
    assert result.success  # a 402 on the batch endpoint is not a failure

    requests_seen = sandbox.stats()["requests"]
    batch = [r for r in requests_seen if r["path"] == "/stable/batch-quote-short"]
    single = [r for r in requests_seen if r["path"] == "/stable/quote-short"]
    assert [r["status"] for r in batch] == [402]  # the one probe, then never again
    assert len(single) == len(TICKERS)
    assert materialization_metadata(result, "raw_quotes")["endpoint"] == "single-symbol"
    logs = [
        e.message
        for e in dagster_instance.all_logs(result.run_id)
        if "no batch endpoint" in (e.message or "")
    ]
    assert logs, "the fallback is said in the run's log"


def test_premium_plan_uses_the_batch_endpoint(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    postgres_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox(premium=True)
    defs = pipeline_definitions(monkeypatch, sandbox, postgres_url, TICKERS)
    result = run_refresh(defs, dagster_instance)
    assert result.success
    paths = [r["path"] for r in sandbox.stats()["requests"]]
    assert set(paths) == {"/stable/batch-quote-short"}
    assert len(paths) == 2  # the plan probe, then one batch of 30
    assert len(read_stocks(create_db_engine(postgres_url))) == len(TICKERS)
    assert materialization_metadata(result, "raw_quotes")["endpoint"] == "batch"


def test_second_run_updates_rows_and_rematerializing_adds_no_snapshot(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox()
    defs = pipeline_definitions(monkeypatch, sandbox, database_url, TICKERS)
    engine = create_db_engine(database_url)
    assert run_refresh(defs, dagster_instance).success
    first = {r.ticker: r for r in read_stocks(engine)}

    sandbox.advance()  # the market moves
    assert run_refresh(defs, dagster_instance).success
    second = {r.ticker: r for r in read_stocks(engine)}
    assert len(second) == len(TICKERS)
    assert any(second[t].price != first[t].price for t in TICKERS)
    for ticker in TICKERS:
        assert second[ticker].price == served_quote(sandbox, ticker)["price"]
        assert second[ticker].quoted_at > first[ticker].quoted_at
    assert count_snapshots(engine) == 2 * len(TICKERS)

    # Re-materializing stocks alone re-writes the stored raw_quotes: same rows, no new snapshot.
    again = run_refresh(defs, dagster_instance, asset_selection=["stocks", "quote_snapshots"])
    assert again.success
    assert {r.ticker: r.price for r in read_stocks(engine)} == {
        t: r.price for t, r in second.items()
    }
    assert count_snapshots(engine) == 2 * len(TICKERS)
    assert materialization_metadata(again, "quote_snapshots")["rows_inserted"] == 0


def test_an_unknown_symbol_is_reported_and_the_others_are_written(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox(faults=FaultConfig(unknown_symbols={"ZZZZ"}))
    defs = pipeline_definitions(monkeypatch, sandbox, database_url, [*TICKERS, "ZZZZ"])
    result = run_refresh(defs, dagster_instance)
    assert result.success

    assert sorted(r.ticker for r in read_stocks(create_db_engine(database_url))) == sorted(TICKERS)
    stocks = materialization_metadata(result, "stocks")
    assert stocks["tickers_without_quote"] == 1
    (failed,) = stocks["failed_tickers"].records
    assert (failed.data["ticker"], failed.data["kind"]) == ("ZZZZ", "no_quote")
    assert next(iter(stocks)) == "failed_tickers"  # what an operator looks for first
    raw = result.asset_value("raw_quotes")
    assert [(f.symbol, f.kind.value) for f in raw.failures] == [("ZZZZ", "no_quote")]


def test_thousands_of_tickers_run_in_a_few_mapped_steps(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    tickers = [f"T{i:04d}" for i in range(3000)]
    sandbox = start_sandbox(premium=True)
    defs = pipeline_definitions(monkeypatch, sandbox, sqlite_url, tickers)
    result = run_refresh(defs, dagster_instance)
    assert result.success
    steps = mapped_fetch_steps(result)
    assert len(steps) == 4  # a few large batches (target_steps), never one per ticker
    assert len(read_stocks(create_db_engine(sqlite_url))) == 3000
    # Each mapped step reports what it fetched on its output, for the run's timeline in the UI.
    outputs = [
        {k: v.value for k, v in e.step_output_data.metadata.items()}
        for e in result.all_events
        if e.event_type_value == "STEP_OUTPUT" and e.step_key in steps
    ]
    assert len(outputs) == len(steps)
    assert sum(o["quotes"] for o in outputs) == 3000
    assert {(o["failures"], o["still_failing_transiently"]) for o in outputs} == {(0, 0)}
    # 750 a step: 8 batches of <= 100; the first step also counts the plan's one probe.
    assert sum(o["api_requests"] for o in outputs) == 4 * 8 + 1
    assert sum(o["api_requests"] for o in outputs) == len(sandbox.stats()["requests"])


def test_batching_is_configurable_from_run_config(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox()
    defs = pipeline_definitions(monkeypatch, sandbox, sqlite_url, TICKERS)
    config = {
        "ops": {
            "raw_quotes": {
                "ops": {"plan_quote_batches": {"config": {"target_steps": 3, "min_batch_size": 1}}}
            }
        }
    }
    result = run_refresh(defs, dagster_instance, run_config=config)
    assert result.success
    assert len(mapped_fetch_steps(result)) == 3


def test_no_tracked_tickers_fails_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
    sandbox,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    defs = pipeline_definitions(monkeypatch, sandbox, sqlite_url)
    result = run_refresh(defs, dagster_instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "quote-pipeline tickers add" in failure.event_specific_data.error.message
    assert sandbox.stats()["requests_total"] == 0


def test_a_missing_api_key_fails_before_any_request(
    monkeypatch: pytest.MonkeyPatch,
    sandbox,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    defs = pipeline_definitions(monkeypatch, sandbox, sqlite_url, TICKERS)
    monkeypatch.delenv("FMP_API_KEY")
    # The key is an EnvVar: the run is refused at launch, naming the variable.
    with pytest.raises(dg.DagsterInvalidConfigError, match="FMP_API_KEY"):
        run_refresh(defs, dagster_instance)
    assert sandbox.stats()["requests_total"] == 0
