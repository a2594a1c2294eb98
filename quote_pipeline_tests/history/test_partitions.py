"""`daily_prices` partitions are NYSE sessions, and each one's materialization tells its own
figures, also when one run backfills a range."""

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import sqlalchemy as sa

from quote_pipeline.defs.history.assets import daily_partitions_from, daily_range
from quote_pipeline.defs.history.sensors import retry_run_requests
from quote_pipeline.defs.settings import DEFAULT_HISTORY_START
from quote_pipeline.fmp.history import DAILY_PATH
from quote_pipeline.market_calendar import (
    CLOSURES_SNAPSHOT_VERSION,
    installed_calendar_version,
    sessions_between,
)
from quote_pipeline.models import FailureKind, SymbolFailure
from quote_pipeline.sandbox import FaultConfig
from quote_pipeline.storage import create_db_engine
from quote_pipeline.storage.fetch_state import pending_symbols, record_failed_symbols
from quote_pipeline.storage.history import read_daily_prices
from quote_pipeline.storage.schema import daily_prices as daily_prices_table
from quote_pipeline.storage.schema import symbol_retries
from quote_pipeline_tests.conftest import SandboxFactory
from quote_pipeline_tests.history.support import (
    checks_of,
    history_definitions,
    history_requests,
    metadata_by_partition,
    run_daily,
    run_figures,
    served,
)

NY = ZoneInfo("America/New_York")
DAILY_PRICES = dg.AssetKey("daily_prices")
partitions = daily_partitions_from(DEFAULT_HISTORY_START)
# Friday to Friday around Thanksgiving: a weekend, the holiday, and the early close after it.
THANKSGIVING_WEEK = ("2026-11-20", "2026-11-27")
THANKSGIVING_SESSIONS = ["2026-11-20", "2026-11-23", "2026-11-24", "2026-11-25", "2026-11-27"]


def test_the_partitions_are_the_nyse_sessions() -> None:
    keys = partitions.get_partition_keys_in_range(dg.PartitionKeyRange("2026-11-02", "2026-12-31"))
    days = [date.fromisoformat(k) for k in keys]
    assert days == sessions_between(date(2026, 11, 2), date(2026, 12, 31))
    assert all(day.weekday() < 5 for day in days)  # no Saturday, no Sunday
    assert "2026-11-26" not in keys and "2026-12-25" not in keys  # Thanksgiving, Christmas
    assert {"2026-11-27", "2026-12-24"} <= set(keys)  # early closes are sessions
    for closed in ("2026-11-26", "2026-11-28", "2026-11-29", "2026-12-25", "2025-01-09"):
        assert not partitions.has_partition_key(closed), closed
    # The keys are the dates they always were: stored materializations keep their partitions.
    assert partitions.has_partition_key("2026-11-27")
    assert partitions.get_first_partition_key() == "2020-01-02"


@pytest.mark.parametrize(
    ("now", "last_key"),
    [
        (datetime(2026, 11, 25, 0, 1, tzinfo=NY), "2026-11-25"),  # from midnight on
        (datetime(2026, 11, 25, 17, 0, tzinfo=NY), "2026-11-25"),  # the after-close tick
        # Thanksgiving is no window: one partition past the last ended window is Friday's,
        # which the asset refuses until Friday's close.
        (datetime(2026, 11, 26, 17, 0, tzinfo=NY), "2026-11-27"),
        (datetime(2026, 11, 27, 17, 0, tzinfo=NY), "2026-11-27"),
        (datetime(2026, 11, 28, 12, 0, tzinfo=NY), "2026-11-27"),  # the weekend after
        (datetime(2026, 11, 30, 0, 1, tzinfo=NY), "2026-11-30"),
        (datetime(2026, 12, 24, 17, 0, tzinfo=NY), "2026-12-24"),
    ],
)
def test_the_days_session_has_its_partition_the_same_day(now: datetime, last_key: str) -> None:
    assert partitions.get_partition_keys(current_time=now)[-1] == last_key


def test_the_closures_are_read_without_building_the_calendar_at_load() -> None:
    # Loading the code location (every process does) must not import exchange_calendars:
    # the excluded days come from the saved copy of its answer.
    if (installed := installed_calendar_version()) != CLOSURES_SNAPSHOT_VERSION:
        pytest.skip(
            f"exchange_calendars {installed} installed: the saved closures (for "
            f"{CLOSURES_SNAPSHOT_VERSION}) are unused until regenerated"
        )
    probe = (
        "import sys, quote_pipeline.definitions as d; d.defs(); "
        "print('exchange_calendars' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={"FMP_API_KEY": "k", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
    # Built in another year, the partitions exclude the closures through the next year's end.
    later = daily_partitions_from(DEFAULT_HISTORY_START, today=date(2034, 3, 1))
    last_days = later.get_partition_keys(current_time=datetime(2035, 12, 31, 17, tzinfo=NY))
    assert last_days[-5:] == ["2035-12-24", "2035-12-26", "2035-12-27", "2035-12-28", "2035-12-31"]


def test_a_backfill_gives_each_session_its_own_figures(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    tickers = ["AAPL", "MSFT", "BTCUSD"]
    sandbox = start_sandbox()
    defs = history_definitions(monkeypatch, sandbox.url, sqlite_url, tickers)
    engine = create_db_engine(sqlite_url)
    # A row of a ticker no longer tracked: part of its day's partition, not of the run.
    with engine.begin() as conn:
        conn.execute(
            sa.insert(daily_prices_table),
            [
                {
                    "ticker": "OLD",
                    "date": date(2026, 11, 24),
                    **{k: Decimal("10") for k in ("open", "high", "low", "close")},
                    "volume": 1,
                    "fetched_at": datetime(2026, 11, 25, tzinfo=UTC),
                    "price_basis": "as_traded",
                }
            ],
        )

    result = run_daily(defs, dagster_instance, *THANKSGIVING_WEEK)
    assert result.success
    assert history_requests(sandbox) == {t: 1 for t in tickers}  # one run, one request each

    by_partition = metadata_by_partition(result)
    assert sorted(by_partition) == THANKSGIVING_SESSIONS  # no Thanksgiving, no weekend
    stored = read_daily_prices(engine)
    for key, metadata in by_partition.items():
        day = date.fromisoformat(key)
        assert metadata["rows_written"] == len(tickers)
        assert metadata["dagster/row_count"] == sum(1 for r in stored if r.day == day)
        assert metadata["session"].startswith(f"{day:%A} {key}, 09:30 to ")
        # Only this session's own figures are numbers (they plot); the run's are a table.
        numbers = {k for k, v in metadata.items() if isinstance(v, int | float)}
        assert numbers == {
            "dagster/row_count",
            "rows_written",
            "rows_from_fmp",
            "rows_from_massive",
        }
        # The day's stored rows by provider (all FMP's here), like dagster/row_count.
        stored_today = metadata["dagster/row_count"]
        assert (metadata["rows_from_fmp"], metadata["rows_from_massive"]) == (stored_today, 0)
        assert metadata["rows_by_source"] == f"fmp: {stored_today}"
        assert metadata["run_scope"] == (
            "One run for the whole range 2026-11-20 … 2026-11-27 (5 sessions): the run_* "
            "figures are the range's, not this session's."
        )
    assert by_partition["2026-11-24"]["dagster/row_count"] == len(tickers) + 1
    assert by_partition["2026-11-23"]["dagster/row_count"] == len(tickers)
    assert by_partition["2026-11-27"]["session"].endswith("09:30 to 13:00 New York (early close)")

    # The preview is that day's bars, as the API served them, dated to the day.
    preview = by_partition["2026-11-25"]["preview"]
    (aapl,) = [
        r
        for r in served(sandbox, DAILY_PATH, "AAPL", date(2026, 11, 25), date(2026, 11, 25))
        if r["date"] == "2026-11-25"
    ]
    rows = [r.data for r in preview.records]
    (aapl_row,) = [r for r in rows if r["ticker"] == "AAPL"]
    assert (aapl_row["when"], aapl_row["open"]) == ("2026-11-25", str(aapl["open"]))
    assert len(rows) == len(tickers) and all(r["when"] == "2026-11-25" for r in rows)
    assert run_figures(result)["rows_written"] == len(tickers) * len(THANKSGIVING_SESSIONS)

    # What the UI reads: each session once, materialized; nothing for the closed days.
    assert dagster_instance.get_materialized_partitions(DAILY_PRICES) == set(THANKSGIVING_SESSIONS)
    status = dagster_instance.get_status_by_partition(
        DAILY_PRICES, THANKSGIVING_SESSIONS, partitions
    )
    assert set((status or {}).values()) == {dg.AssetPartitionStatus.MATERIALIZED}
    records = dagster_instance.fetch_materializations(DAILY_PRICES, limit=100).records
    assert sorted(r.partition_key for r in records) == THANKSGIVING_SESSIONS  # no duplicate
    latest = records[0].asset_materialization
    assert latest is not None and latest.metadata["dagster/row_count"].value == len(tickers)
    # The checks cover the range, once per run.
    checks = checks_of(result)
    assert len(result.get_asset_check_evaluations()) == 2
    assert checks["bars_consistent"].passed and checks["no_missing_trading_days"].passed


def test_a_retry_from_the_calendar_day_partitions_asks_the_sessions_inside_it(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    # Stragglers recorded before the partitions were sessions: a range from a Saturday to
    # a Sunday, whose ends are no partition keys any more.
    assert daily_range("daily:2026-11-21/2026-11-29") == ("2026-11-23", "2026-11-27")
    assert daily_range("daily:2026-11-26/2026-11-26") is None  # Thanksgiving alone
    sandbox = start_sandbox(faults=FaultConfig())
    defs = history_definitions(monkeypatch, sandbox.url, sqlite_url, ["AAPL", "SLOW"])
    engine = create_db_engine(sqlite_url)
    failure = SymbolFailure("SLOW", FailureKind.TRANSPORT_ERROR, "ReadTimeout")
    now = datetime.now(UTC) - timedelta(hours=1)
    record_failed_symbols(engine, "daily:2026-11-21/2026-11-29", [failure], {}, now=now)
    with engine.begin() as conn:
        conn.execute(sa.update(symbol_retries).values(next_attempt_at=now))

    (request,) = retry_run_requests(pending_symbols(engine))
    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-23"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-27"
    retried = defs.resolve_job_def("daily_prices_job").execute_in_process(
        instance=dagster_instance, run_config=request.run_config, tags=request.tags
    )
    assert retried.success
    assert history_requests(sandbox) == {"SLOW": 1}
    assert sorted(metadata_by_partition(retried)) == THANKSGIVING_SESSIONS[1:]
    assert pending_symbols(engine) == []  # the old name is settled by the sessions' run
