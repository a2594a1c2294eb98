"""Profiles, splits, dividends and the adjusted history end to end: the real definitions
against the sandbox, on SQLite and PostgreSQL, a real Dagster instance, and
daily_prices_adjusted kept current by declarative automation."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest
import requests
import sqlalchemy as sa

from quote_pipeline.adjustments import RawDay
from quote_pipeline.defs.resources import DatabaseResource
from quote_pipeline.market_calendar import NEW_YORK
from quote_pipeline.sandbox import FaultConfig, SandboxServer
from quote_pipeline.storage import add_tickers, create_db_engine
from quote_pipeline.storage.adjusted_prices import read_adjusted_prices
from quote_pipeline.storage.corporate_actions import read_dividends, read_profiles, read_splits
from quote_pipeline.storage.history import read_daily_prices
from quote_pipeline.storage.schema import daily_prices
from quote_pipeline_tests.conftest import SANDBOX_KEY, SandboxFactory
from quote_pipeline_tests.history.support import (
    checks_of,
    history_definitions,
    metadata_of,
    run_daily,
)
from quote_pipeline_tests.support.convention import reference

ADJUSTED = dg.AssetKey("daily_prices_adjusted")
JANUARY = ("2026-01-02", "2026-01-30")
FRIDAY_EVENING = datetime(2026, 1, 30, 18, 0, tzinfo=NEW_YORK)
AFTER_THE_SPLIT = datetime(2026, 2, 3, 18, 0, tzinfo=NEW_YORK)
# An old dividend injected for a symbol replaces whatever the sandbox would generate for it,
# and (before every stored day) adjusts nothing: the split is then all there is.
NO_DIVIDENDS_SINCE_2010 = (date(2010, 1, 4), Decimal("0.01"))


def run_job(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, **op_config: Any):
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"ops": {op: {"config": c} for op, c in op_config.items()}},
    )


def materialize_adjusted(defs: dg.Definitions, instance: dg.DagsterInstance):
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, raise_on_error=False, asset_selection=[ADJUSTED]
    )


def eod_requests(sandbox: SandboxServer) -> int:
    return sum(
        1
        for r in sandbox.stats()["requests"]
        if r["path"].startswith("/stable/historical-price-eod/")
    )


def set_clock(sandbox: SandboxServer, moment: datetime) -> None:
    answer = requests.post(
        f"{sandbox.url}/_sandbox/clock", json={"now": moment.isoformat()}, timeout=10
    )
    answer.raise_for_status()


def raw_days(database_url: str, symbol: str) -> list[RawDay]:
    return [
        RawDay(b.day, b.open, b.high, b.low, b.close, b.volume, b.price_basis)
        for b in read_daily_prices(create_db_engine(database_url), [symbol])
    ]


def adjusted_tuples(database_url: str, symbol: str) -> list[tuple[Any, ...]]:
    return [
        (a.adj_open, a.adj_high, a.adj_low, a.adj_close, a.adj_volume)
        for a in read_adjusted_prices(create_db_engine(database_url), [symbol])
    ]


def test_splits_inside_a_backfill_adjust_exactly_by_the_convention(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox(
        clock=FRIDAY_EVENING,
        splits=(("SPLT", date(2026, 1, 12), 4, 1), ("SPLT", date(2026, 1, 22), 1, 10)),
        dividends=(
            ("SPLT", *NO_DIVIDENDS_SINCE_2010),
            ("DIVS", date(2026, 1, 15), Decimal("0.50")),
            ("DIVS", date(2026, 1, 27), Decimal("0.4475")),
        ),
    )
    defs = history_definitions(monkeypatch, sandbox.url, database_url, ["SPLT", "DIVS"])
    assert run_daily(defs, dagster_instance, *JANUARY).success
    # Stored as traded: SPLT's raw closes jump at both ex-dates.
    raw = {d.day: d.close for d in raw_days(database_url, "SPLT")}
    assert raw[date(2026, 1, 9)] / raw[date(2026, 1, 12)] > 3
    assert raw[date(2026, 1, 22)] / raw[date(2026, 1, 21)] > 7
    assert run_job(defs, dagster_instance, "refresh_corporate_actions").success

    result = materialize_adjusted(defs, dagster_instance)
    assert result.success
    engine = create_db_engine(database_url)
    splits, dividends = read_splits(engine), read_dividends(engine)
    for symbol in ("SPLT", "DIVS"):
        expected = reference(
            raw_days(database_url, symbol), splits.get(symbol, []), dividends.get(symbol, [])
        )
        assert adjusted_tuples(database_url, symbol) == expected
    # With splits only, ÷4 then x10 lands on the grid of FMP's /full as of the same day.
    full = requests.get(
        f"{sandbox.url}/stable/historical-price-eod/full",
        params={"symbol": "SPLT", "from": JANUARY[0], "to": JANUARY[1], "apikey": SANDBOX_KEY},
        timeout=10,
    ).json(parse_float=Decimal)
    adjusted = {a.day: a.adj_close for a in read_adjusted_prices(engine, ["SPLT"])}
    assert {date.fromisoformat(r["date"]): r["close"] for r in full} == adjusted
    checks = checks_of(result)
    assert checks["covers_every_daily_price"].passed
    assert checks["continuous_across_splits"].passed
    assert checks["continuous_across_splits"].metadata["splits_checked"].value == 2
    assert checks["splits_seen_in_raw_prices"].passed


def test_a_split_after_the_backfill_rebases_it_by_automation_without_fetching_history(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox(
        clock=FRIDAY_EVENING,
        splits=(("LATE", date(2026, 2, 2), 4, 1),),
        dividends=(("LATE", *NO_DIVIDENDS_SINCE_2010), ("KEEP", *NO_DIVIDENDS_SINCE_2010)),
    )
    defs = history_definitions(monkeypatch, sandbox.url, database_url, ["LATE", "KEEP"])
    start = dg.evaluate_automation_conditions(defs=defs, instance=dagster_instance)
    assert start.total_requested == 0
    assert run_daily(defs, dagster_instance, *JANUARY).success
    assert run_job(defs, dagster_instance, "refresh_corporate_actions").success
    tick = dg.evaluate_automation_conditions(
        defs=defs, instance=dagster_instance, cursor=start.cursor
    )
    assert tick.get_num_requested(ADJUSTED) == 1
    assert materialize_adjusted(defs, dagster_instance).success
    january = raw_days(database_url, "LATE")
    assert [row[3] for row in adjusted_tuples(database_url, "LATE")] == [d.close for d in january]
    quiet = dg.evaluate_automation_conditions(
        defs=defs, instance=dagster_instance, cursor=tick.cursor
    )
    assert quiet.total_requested == 0

    # The sandbox's clock passes the ex-date: the split is listed, /full changes its past.
    set_clock(sandbox, AFTER_THE_SPLIT)
    history_before = eod_requests(sandbox)
    result = run_job(defs, dagster_instance, "refresh_corporate_actions")
    assert result.success
    assert metadata_of(result, "stock_splits")["tickers_changed"] == 1
    tick = dg.evaluate_automation_conditions(
        defs=defs, instance=dagster_instance, cursor=quiet.cursor
    )
    assert tick.get_num_requested(ADJUSTED) == 1
    rebase = materialize_adjusted(defs, dagster_instance)
    assert rebase.success
    assert eod_requests(sandbox) == history_before  # re-based from stored rows alone
    metadata = metadata_of(rebase, "daily_prices_adjusted")
    assert metadata["tickers_rebased"] == 1 and metadata["api_requests"] == 0
    # January's adjusted rows are the raw ones ÷4 (volume x4); KEEP's are untouched.
    assert adjusted_tuples(database_url, "LATE") == [
        (d.open / 4, d.high / 4, d.low / 4, d.close / 4, d.volume * 4) for d in january
    ]
    keep = raw_days(database_url, "KEEP")
    assert [row[3] for row in adjusted_tuples(database_url, "KEEP")] == [d.close for d in keep]

    # The sessions after the split arrive; the adjusted history is continuous across it.
    # (The sensor ticks every 30 s: one sees the re-base done before the next daily run.)
    settled = dg.evaluate_automation_conditions(
        defs=defs, instance=dagster_instance, cursor=tick.cursor
    )
    assert settled.total_requested == 0
    assert run_daily(defs, dagster_instance, "2026-02-02", "2026-02-03").success
    tick = dg.evaluate_automation_conditions(
        defs=defs, instance=dagster_instance, cursor=settled.cursor
    )
    assert tick.get_num_requested(ADJUSTED) == 1
    extend = materialize_adjusted(defs, dagster_instance)
    assert extend.success
    assert metadata_of(extend, "daily_prices_adjusted")["tickers_extended"] == 2
    checks = checks_of(extend)
    assert checks["continuous_across_splits"].passed, checks["continuous_across_splits"]
    assert checks["covers_every_daily_price"].passed


def test_a_symbol_refused_on_one_endpoint_is_not_in_plan_and_the_others_are_written(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox(
        faults=FaultConfig(endpoint_gated_symbols={"dividends": ["PG"]}),
        splits=(("PG", date(2004, 6, 21), 2, 1),),
    )
    defs = history_definitions(monkeypatch, sandbox.url, database_url, ["AAPL", "PG", "KO"])
    result = run_job(defs, dagster_instance, "refresh_corporate_actions")
    assert result.success  # a plan's refusal of one symbol is reported, not a failed run
    dividends = metadata_of(result, "dividends")
    (failed,) = dividends["failed_tickers"].records
    assert failed.data["ticker"] == "PG" and failed.data["kind"] == "not_in_plan"
    engine = create_db_engine(database_url)
    stored = read_dividends(engine)
    assert "PG" not in stored and stored["AAPL"] and stored["KO"]
    assert [s.ex_date for s in read_splits(engine)["PG"]] == [date(2004, 6, 21)]
    assert "failed_tickers" not in metadata_of(result, "stock_splits")
    # Empty-string dates from the API are NULL, never a made-up date.
    rows = [d for events in stored.values() for d in events]
    assert all(d.ex_date for d in rows)
    assert any(
        d.record_date is None or d.payment_date is None or d.declaration_date is None for d in rows
    )


def test_profiles_are_written_flagged_never_deleted_and_fetched_for_new_tickers(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    faults = FaultConfig(unknown_symbols=["NOPE"], inactive_symbols=["DEAD"])
    sandbox = start_sandbox(faults=faults)
    tickers = ["AAPL", "SPY", "T001", "DEAD", "NOPE"]
    defs = history_definitions(monkeypatch, sandbox.url, database_url, tickers)
    result = run_job(defs, dagster_instance, "refresh_company_profiles")
    assert result.success
    engine = create_db_engine(database_url)
    profiles = {p["ticker"]: p for p in read_profiles(engine)}
    assert set(profiles) == {"AAPL", "SPY", "T001", "DEAD"}
    assert profiles["AAPL"]["company_name"] == "Apple Inc."
    assert profiles["AAPL"]["exchange"] == "NASDAQ" and profiles["AAPL"]["currency"] == "USD"
    assert isinstance(profiles["AAPL"]["market_cap"], Decimal)
    assert profiles["SPY"]["is_etf"] is True
    assert profiles["DEAD"]["status"] == "not_trading"
    assert profiles["T001"]["status"] == "active"
    metadata = metadata_of(result, "company_profiles")
    assert sum(r.data["tickers"] for r in metadata["by_sector"].records) == 4
    assert {r.data["exchange"] for r in metadata["by_exchange"].records} >= {"NASDAQ"}
    assert metadata["api_requests"] == 5
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and "NOPE" in check.description

    # T001 disappears from the API: its profile is kept and flagged, not deleted.
    gone_sandbox = start_sandbox(faults=FaultConfig(unknown_symbols=["NOPE", "T001"]))
    defs = history_definitions(monkeypatch, gone_sandbox.url, database_url, [])
    assert run_job(defs, dagster_instance, "refresh_company_profiles").success
    t001 = read_profiles(engine, ["T001"])[0]
    assert t001["status"] == "gone" and t001["missing_since"] is not None
    assert t001["company_name"] == profiles["T001"]["company_name"]

    # A newly tracked ticker: the sensor asks for the tickers without a profile, once.
    add_tickers(engine, ["MSFT"], now=datetime.now(NEW_YORK))
    sensor = defs.get_sensor_def("profiles_for_new_tickers")
    database = DatabaseResource(url=database_url)
    with dg.build_sensor_context(instance=dagster_instance, resources={"database": database}) as c:
        data = sensor.evaluate_tick(c)
    (request,) = data.run_requests
    only = request.run_config["ops"]["company_profiles"]["config"]["only_symbols"]
    assert only == ["MSFT", "NOPE"]
    # One run per set and day: the same set asked again tomorrow, not every minute.
    today = datetime.now(NEW_YORK).date()
    assert (request.run_key or "").startswith(f"profiles_for_new_tickers:{today}:")
    run = run_job(
        defs, dagster_instance, "refresh_company_profiles", company_profiles={"only_symbols": only}
    )
    assert run.success
    assert read_profiles(engine, ["MSFT"])[0]["company_name"] == "Microsoft Corporation"


def test_rows_fetched_from_full_before_the_migration_are_rebased_then_refetched(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox(
        clock=AFTER_THE_SPLIT,
        splits=(("LATE", date(2026, 2, 2), 4, 1),),
        dividends=(("LATE", *NO_DIVIDENDS_SINCE_2010),),
    )
    defs = history_definitions(monkeypatch, sandbox.url, database_url, ["LATE"])
    assert run_daily(defs, dagster_instance, *JANUARY).success
    as_traded = raw_days(database_url, "LATE")
    # What a pre-0004 fetch from /full after the split stored: ÷4, labelled split_adjusted.
    engine = create_db_engine(database_url)
    fetched = datetime(2026, 2, 3, 20, 0, tzinfo=NEW_YORK)
    with engine.begin() as conn:
        for day in as_traded:
            conn.execute(
                sa.update(daily_prices)
                .where(daily_prices.c.ticker == "LATE", daily_prices.c.date == day.day)
                .values(
                    open=day.open / 4,
                    high=day.high / 4,
                    low=day.low / 4,
                    close=day.close / 4,
                    volume=day.volume * 4,
                    price_basis="split_adjusted",
                    fetched_at=fetched,
                )
            )
    assert run_job(defs, dagster_instance, "refresh_corporate_actions").success
    result = materialize_adjusted(defs, dagster_instance)
    assert result.success
    assert metadata_of(result, "daily_prices_adjusted")["legacy_rows_rebased"] == len(as_traded)
    rebased = adjusted_tuples(database_url, "LATE")
    assert rebased == [
        (d.open / 4, d.high / 4, d.low / 4, d.close / 4, d.volume * 4) for d in as_traded
    ]
    # Re-fetching the range replaces them with as-traded rows; the adjusted rows stay equal.
    assert run_daily(defs, dagster_instance, *JANUARY).success
    assert {d.price_basis for d in read_daily_prices(engine, ["LATE"])} == {"as_traded"}
    assert materialize_adjusted(defs, dagster_instance).success
    assert adjusted_tuples(database_url, "LATE") == rebased


def test_the_schedules_are_weekly_and_after_the_close_and_stopped_by_default(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, sqlite_url: str
) -> None:
    defs = history_definitions(monkeypatch, sandbox.url, sqlite_url, [])
    weekly = defs.get_schedule_def("company_profiles_weekly")
    daily = defs.get_schedule_def("corporate_actions_after_close")
    assert (weekly.cron_schedule, weekly.execution_timezone) == ("0 7 * * 6", "America/New_York")
    assert (daily.cron_schedule, daily.execution_timezone) == ("30 17 * * 1-5", "America/New_York")
    assert weekly.default_status == daily.default_status == dg.DefaultScheduleStatus.STOPPED
    assert weekly.job_name == "refresh_company_profiles"
    assert daily.job_name == "refresh_corporate_actions"
    sensor = defs.get_sensor_def("adjusted_prices_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 30
