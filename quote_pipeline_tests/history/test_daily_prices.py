"""`daily_prices` through Dagster in process: single-run ranges, exact replacement, checks."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pytest
import sqlalchemy as sa

from quote_pipeline.definitions import build_definitions
from quote_pipeline.defs.history.assets import daily_partitions_from, unfinished_session
from quote_pipeline.defs.settings import (
    DEFAULT_HISTORY_START,
    HISTORY_START_ENV,
    DeploymentSettings,
)
from quote_pipeline.fmp.history import DAILY_PATH
from quote_pipeline.market_calendar import is_session, session_hours, sessions_between
from quote_pipeline.sandbox import FaultConfig
from quote_pipeline.storage import create_db_engine
from quote_pipeline.storage.fetch_state import pending_symbols
from quote_pipeline.storage.history import read_daily_prices
from quote_pipeline.storage.schema import daily_prices as daily_prices_table
from quote_pipeline.storage.schema import symbol_retries
from quote_pipeline_tests.conftest import SandboxFactory
from quote_pipeline_tests.history.support import (
    TICKERS,
    checks_of,
    history_definitions,
    history_requests,
    metadata_by_partition,
    metadata_of,
    run_daily,
    run_figures,
    served,
)

Q1 = ("2026-01-05", "2026-03-31")
daily_partitions = daily_partitions_from(DEFAULT_HISTORY_START)


def stored_row(day: date, high: str = "11") -> dict[str, object]:
    """A ``daily_prices`` row as another writer (or an older run) might have left it."""
    prices = {"open": "10", "high": high, "low": "9", "close": "10"}
    return {
        "date": day,
        **{k: Decimal(v) for k, v in prices.items()},
        "volume": 100,
        "fetched_at": datetime(2026, 3, 10, tzinfo=UTC),
        "price_basis": "as_traded",
    }


def partition_keys(first: str, last: str) -> list[str]:
    return daily_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))


def test_a_range_is_one_run_with_one_request_per_ticker(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox()
    defs = history_definitions(monkeypatch, sandbox.url, database_url)
    result = run_daily(defs, dagster_instance, *Q1)
    assert result.success

    assert history_requests(sandbox) == {t: 1 for t in TICKERS}
    assert sandbox.stats()["requests_total"] == len(TICKERS)
    first, last = date(2026, 1, 5), date(2026, 3, 31)
    sessions = sessions_between(first, last)
    rows = read_daily_prices(create_db_engine(database_url))
    assert len(rows) == len(TICKERS) * len(sessions)
    for ticker in TICKERS:
        stored = {r.day: r for r in rows if r.symbol == ticker}
        expected = served(sandbox, DAILY_PATH, ticker, first, last)
        assert sorted(stored) == sessions
        for row in expected:
            bar = stored[date.fromisoformat(row["date"])]
            assert (bar.open, bar.high, bar.low, bar.close) == (
                row["open"],
                row["high"],
                row["low"],
                row["close"],
            )
            assert bar.volume == row["volume"] and bar.price_basis == "as_traded"
            # The as-traded endpoint gives no change or vwap: none is made up.
            assert (bar.change, bar.change_percent, bar.vwap) == (None, None, None)

    # One run materialized every partition of the range: its sessions, nothing else.
    keys = partition_keys(*Q1)
    assert keys == [d.isoformat() for d in sessions]
    materialized = dagster_instance.get_materialized_partitions(dg.AssetKey("daily_prices"))
    assert materialized == set(keys)
    events = result.get_asset_materialization_events()
    assert sorted(e.partition for e in events) == keys  # all from this one run
    assert len(dagster_instance.get_runs()) == 1

    figures = run_figures(result)
    assert figures["api_requests"] == len(TICKERS)
    assert figures["rows_written"] == len(rows)
    assert all(m["rows_written"] == len(TICKERS) for m in metadata_by_partition(result).values())
    assert metadata_of(result, "daily_prices")["run_scope"].startswith(
        f"One run for the whole range 2026-01-05 … 2026-03-31 ({len(sessions)} sessions)"
    )
    checks = checks_of(result)
    assert checks["bars_consistent"].passed
    assert checks["no_missing_trading_days"].passed


def test_rematerializing_replaces_rows_exactly(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox()
    defs = history_definitions(monkeypatch, sandbox.url, database_url)
    engine = create_db_engine(database_url)
    assert run_daily(defs, dagster_instance, "2026-02-02", "2026-02-13").success
    before = read_daily_prices(engine)

    # Damage inside the range: a changed close, and a stray row on a Saturday.
    with engine.begin() as conn:
        conn.execute(
            sa.update(daily_prices_table)
            .where(daily_prices_table.c.ticker == "AAPL")
            .where(daily_prices_table.c.date == date(2026, 2, 3))
            .values(close=Decimal("123.45"))
        )
        conn.execute(
            sa.insert(daily_prices_table),
            [{**stored_row(date(2026, 2, 7)), "ticker": "AAPL"}],
        )

    again = run_daily(defs, dagster_instance, "2026-02-02", "2026-02-09")
    assert again.success
    after = read_daily_prices(engine)
    assert [(r.symbol, r.day, r.close, r.volume) for r in after] == [
        (r.symbol, r.day, r.close, r.volume) for r in before
    ]
    figures = run_figures(again)
    # 6 sessions per ticker replaced, plus the stray Saturday row between them.
    assert figures["rows_replaced"] == 6 * len(TICKERS) + 1
    assert figures["rows_written"] == 6 * len(TICKERS)

    # A single partition, re-materialized, does the same for its day.
    assert run_daily(defs, dagster_instance, "2026-02-10").success
    assert len(read_daily_prices(engine)) == len(before)


def test_closed_days_are_no_partitions_and_cost_no_request(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox()
    defs = history_definitions(monkeypatch, sandbox.url, sqlite_url)
    for closed in ("2026-01-19", "2026-02-07"):  # Martin Luther King Jr. Day, a Saturday
        assert not daily_partitions.has_partition_key(closed)
        with pytest.raises(dg.DagsterUnknownPartitionError):
            run_daily(defs, dagster_instance, closed)
    assert sandbox.stats()["requests_total"] == 0
    assert read_daily_prices(create_db_engine(sqlite_url)) == []
    assert not dagster_instance.get_materialized_partitions(dg.AssetKey("daily_prices"))


def test_a_session_not_closed_yet_is_refused() -> None:
    wednesday = date(2026, 11, 25)
    closes = session_hours(wednesday)[1]
    assert unfinished_session([wednesday], closes - timedelta(seconds=1)) == (wednesday, closes)
    assert unfinished_session([wednesday], closes) is None
    assert unfinished_session([], closes) is None


def test_todays_partition_exists_and_waits_for_the_close(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    # end_offset=1: today's partition exists (the after-close schedule asks for it).
    last_key = daily_partitions.get_last_partition_key()
    assert last_key is not None
    sandbox = start_sandbox()
    defs = history_definitions(monkeypatch, sandbox.url, sqlite_url, ["AAPL"])
    result = run_daily(defs, dagster_instance, last_key)
    day = date.fromisoformat(last_key)
    open_now = is_session(day) and session_hours(day)[1] > datetime.now(UTC)
    if open_now:
        assert not result.success
        failure = result.failure_data_for_node("daily_prices")
        assert failure is not None and "not final yet" in str(failure.user_failure_data)
        assert sandbox.stats()["requests_total"] == 0
    else:
        assert result.success


def test_failed_tickers_keep_their_rows_and_the_checks_say_so(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    # Rows for GATED from an earlier plan: one inconsistent bar, and a gap on 2026-03-04.
    engine = create_db_engine(database_url)
    old = [
        {**stored_row(day, high="9" if day == date(2026, 3, 3) else "11"), "ticker": "GATED"}
        for day in sessions_between(date(2026, 3, 2), date(2026, 3, 6))
        if day != date(2026, 3, 4)
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(daily_prices_table), old)

    sandbox = start_sandbox(
        faults=FaultConfig(plan_gated_symbols={"GATED"}, unknown_symbols={"GONE"})
    )
    defs = history_definitions(monkeypatch, sandbox.url, database_url, ["AAPL", "GATED", "GONE"])
    result = run_daily(defs, dagster_instance, "2026-03-02", "2026-03-06")
    assert result.success  # plan limits and unknown symbols are reported, not fatal

    stored = read_daily_prices(engine, ["GATED"])
    assert len(stored) == 4  # untouched: the API did not answer for it
    assert len(read_daily_prices(engine, ["AAPL"])) == 5
    figures = run_figures(result)
    assert (figures["failed: not_in_plan"], figures["failed: no_quote"]) == (1, 1)
    assert figures["tickers_answered"] == 2
    failures = metadata_of(result, "daily_prices")["run_failures"]
    assert {r.data["ticker"] for r in failures.records} == {"GATED", "GONE"}

    checks = checks_of(result)
    consistent, gaps = checks["bars_consistent"], checks["no_missing_trading_days"]
    assert not consistent.passed and consistent.severity == dg.AssetCheckSeverity.ERROR
    assert consistent.metadata["inconsistent_rows"].value == 1
    assert "GATED 2026-03-03" in str(consistent.metadata["examples"].value)
    assert not gaps.passed and gaps.severity == dg.AssetCheckSeverity.WARN
    assert gaps.metadata["examples"].value == {"GATED": ["2026-03-04"]}


def test_an_empty_or_partly_bad_answer_keeps_the_stored_rows(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    # GONE now answers 200 [] (a plan's history horizon, a delisting); SHAPE answers rows
    # with wrong types. Neither may wipe what an earlier run stored.
    engine = create_db_engine(database_url)
    days = sessions_between(date(2026, 3, 2), date(2026, 3, 6))
    with engine.begin() as conn:
        conn.execute(
            sa.insert(daily_prices_table),
            [{**stored_row(day), "ticker": t} for t in ("GONE", "SHAPE") for day in days],
        )
    sandbox = start_sandbox(
        faults=FaultConfig(unknown_symbols={"GONE"}, bad_shape_symbols={"SHAPE"})
    )
    defs = history_definitions(monkeypatch, sandbox.url, database_url, ["AAPL", "GONE", "SHAPE"])
    result = run_daily(defs, dagster_instance, "2026-03-02", "2026-03-06")
    assert result.success

    assert len(read_daily_prices(engine, ["GONE"])) == len(days)
    assert len(read_daily_prices(engine, ["SHAPE"])) == len(days)
    assert len(read_daily_prices(engine, ["AAPL"])) == len(days)
    figures = run_figures(result)
    assert (figures["failed: no_quote"], figures["failed: bad_response"]) == (1, 1)
    failures = metadata_of(result, "daily_prices")["run_failures"].records
    assert any("stored rows kept" in r.data["message"] for r in failures)


def test_transient_failures_get_a_second_pass(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    tickers = [f"T{i:02d}" for i in range(30)]
    sandbox = start_sandbox(faults=FaultConfig(server_error_rate=0.4), seed=3)
    defs = history_definitions(monkeypatch, sandbox.url, sqlite_url, tickers, attempts=1)
    result = run_daily(defs, dagster_instance, "2026-03-02", "2026-03-06")

    log = [r for r in sandbox.stats()["requests"] if r["path"] == DAILY_PATH]
    first_try = {r["symbols"][0]: r["status"] for r in log[: len(tickers)]}
    assert sorted(first_try) == tickers  # every ticker once, before any second try
    retried = sorted(s for s, status in first_try.items() if status != 200)
    assert retried, "the seed makes some first tries fail"
    assert sorted(r["symbols"][0] for r in log[len(tickers) :]) == retried
    last_status = {r["symbols"][0]: r["status"] for r in log}
    still_failing = sorted(s for s, status in last_status.items() if status != 200)
    stored = {r.symbol for r in read_daily_prices(create_db_engine(sqlite_url))}
    assert stored == set(tickers) - set(still_failing)  # what succeeded is written either way
    assert result.success == (not still_failing)
    if still_failing:
        failure = result.failure_data_for_node("daily_prices")
        assert failure is not None and "still failed after 2 pass(es)" in str(
            failure.user_failure_data
        )


def test_server_errors_that_persist_fail_the_run_after_writing_the_rest(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox(faults=FaultConfig(hang_symbols={"SLOW"}, hang_seconds=3))
    defs = history_definitions(
        monkeypatch, sandbox.url, sqlite_url, ["AAPL", "SLOW"], attempts=2, read_timeout=0.5
    )
    result = run_daily(defs, dagster_instance, "2026-03-02", "2026-03-06")
    assert not result.success
    # A read timeout is not retried within its pass (it already cost a timeout): one request
    # per pass, two passes.
    assert history_requests(sandbox) == {"AAPL": 1, "SLOW": 2}
    assert {r.symbol for r in read_daily_prices(create_db_engine(sqlite_url))} == {"AAPL"}
    failure = result.failure_data_for_node("daily_prices")
    assert failure is not None
    assert "transport_error" in str(failure.user_failure_data)
    assert "retry_pending_daily_prices" in str(failure.user_failure_data)

    # SLOW is left to the retry sensor, under its range. Once it answers and is due, the
    # sensor asks the same range again for SLOW alone, and its rows arrive.
    engine = create_db_engine(sqlite_url)
    (pending,) = pending_symbols(engine)
    assert (pending.dataset, pending.ticker) == ("daily:2026-03-02/2026-03-06", "SLOW")
    sandbox.set_faults(FaultConfig())
    sandbox.reset()
    with engine.begin() as conn:
        conn.execute(
            sa.update(symbol_retries).values(
                next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
    sensor = defs.resolve_sensor_def("retry_pending_daily_prices")
    with dg.build_sensor_context(instance=dagster_instance, resources=defs.resources) as context:
        (request,) = sensor.evaluate_tick(context).run_requests or []
    assert request.run_config == {"ops": {"daily_prices": {"config": {"only_symbols": ["SLOW"]}}}}
    assert request.tags["dagster/asset_partition_range_start"] == "2026-03-02"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-03-06"
    retried = defs.resolve_job_def("daily_prices_job").execute_in_process(
        instance=dagster_instance, run_config=request.run_config, tags=request.tags
    )
    assert retried.success
    assert history_requests(sandbox) == {"SLOW": 1}
    assert len(read_daily_prices(engine, ["SLOW"])) == 5
    assert pending_symbols(engine) == []


def test_an_invalid_key_stops_the_run(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox(api_key="another-key")
    defs = history_definitions(monkeypatch, sandbox.url, sqlite_url)
    result = run_daily(defs, dagster_instance, "2026-03-02", "2026-03-06")
    assert not result.success
    failure = result.failure_data_for_node("daily_prices")
    assert failure is not None and "refused the run" in str(failure.user_failure_data)
    assert sandbox.stats()["by_status"] == {"401": sandbox.stats()["requests_total"]}
    assert read_daily_prices(create_db_engine(sqlite_url)) == []


def test_no_tickers_is_a_clear_failure(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox()
    defs = history_definitions(monkeypatch, sandbox.url, sqlite_url, [])
    result = run_daily(defs, dagster_instance, "2026-03-02")
    assert not result.success
    failure = result.failure_data_for_node("daily_prices")
    assert failure is not None and "No tickers" in str(failure.user_failure_data)


def test_large_ranges_are_written_in_bounded_groups_and_chunks(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    postgres_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    tickers = [f"G{i}" for i in range(8)]
    sandbox = start_sandbox()
    defs = history_definitions(monkeypatch, sandbox.url, postgres_url, tickers)
    # 60 sessions: at most 240 bars in memory means groups of 2 tickers (120 bars each).
    result = run_daily(defs, dagster_instance, *Q1, max_rows_in_memory=240, chunk_rows=25)
    assert result.success
    figures = run_figures(result)
    assert figures["api_requests"] == len(tickers)  # grouping never costs requests
    assert figures["write_transactions"] == 4
    assert figures["insert_statements"] == 4 * 5  # 120 rows in chunks of 25
    assert figures["rows_written"] == len(tickers) * 60


def test_the_asset_is_partitioned_for_single_run_backfills(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FMP_API_KEY", "k")
    daily_prices = build_definitions().resolve_assets_def("daily_prices")
    assert daily_prices.backfill_policy == dg.BackfillPolicy.single_run()
    assert daily_partitions.timezone == "America/New_York"
    assert daily_partitions.start.date().isoformat() == DEFAULT_HISTORY_START
    assert daily_partitions.get_first_partition_key() == "2020-01-02"  # the 1st is a holiday
    assert daily_prices.partitions_def == daily_partitions
    assert daily_prices.op.pool == "fmp_api"
    # The lineage the graph shows: the tickers decide what is fetched.
    assert dg.AssetKey("tickers") in daily_prices.asset_deps[dg.AssetKey("daily_prices")]
    # The start is the deployment's choice, read when the definitions load.
    monkeypatch.setenv(HISTORY_START_ENV, "2015-06-01")
    assert DeploymentSettings.from_env().history_start == "2015-06-01"
    later = build_definitions().resolve_assets_def("daily_prices").partitions_def
    assert isinstance(later, dg.TimeWindowPartitionsDefinition)
    assert later.start.date().isoformat() == "2015-06-01"
    monkeypatch.setenv(HISTORY_START_ENV, "June 2015")
    with pytest.raises(ValueError, match=HISTORY_START_ENV):
        DeploymentSettings.from_env()
