"""daily_metrics as refresh_daily_metrics derives it from daily_prices_adjusted, on SQLite and
PostgreSQL: equal to an independent pandas computation of every definition, resumed for new
or re-fetched days with the same result as a full recomputation, recomputed in full when a
split re-bases the history, and the range checks' queries."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from quote_pipeline.analytics import METRIC_COLUMNS, METRICS_VERSION, STATE_COLUMNS
from quote_pipeline.reference_data import StockSplit
from quote_pipeline.storage import create_db_engine
from quote_pipeline.storage import metrics as metrics_storage
from quote_pipeline.storage.adjusted_prices import refresh_adjusted_prices
from quote_pipeline.storage.corporate_actions import replace_splits
from quote_pipeline.storage.metrics import (
    DEFINITIONS_CHANGED,
    FIRST_COMPUTATION,
    REBASED,
    metrics_coverage,
    metrics_out_of_range,
    read_daily_metrics,
    refresh_daily_metrics,
)
from quote_pipeline.storage.schema import METRIC_COMMENTS, daily_metrics, daily_metrics_state
from quote_pipeline_tests.storage.test_adjusted_prices import (
    bar,
    fetched,
    store,
    store_days,
)
from quote_pipeline_tests.support.days import weekdays
from quote_pipeline_tests.support.metrics_reference import assert_metrics_match_pandas

SESSIONS = weekdays(date(2025, 1, 6), 300)
AS_OF = SESSIONS[-1] + timedelta(days=30)


def random_walk(seed: int, count: int, start: float = 80.0) -> list[Decimal]:
    """Closes with 2-decimal ticks, moving up and down (RSI needs both)."""
    rng = np.random.default_rng(seed)
    closes = start * np.exp(np.cumsum(rng.normal(0.0005, 0.02, count)))
    return [Decimal(f"{c:.2f}") for c in closes]


CLOSES = {"AAA": random_walk(1, len(SESSIONS)), "BBB": random_walk(2, len(SESSIONS), 300.0)}


def store_sessions(engine: Engine, sessions: list[date], *, extra: timedelta = timedelta(0)):
    bars = [
        bar(symbol, day, CLOSES[symbol][SESSIONS.index(day)], fetched_at=fetched(day, extra))
        for symbol in sorted(CLOSES)
        for day in sessions
    ]
    store_days(engine, bars)


def refresh(engine: Engine):
    refresh_adjusted_prices(engine, as_of=AS_OF)
    return refresh_daily_metrics(engine, tickers_per_batch=1)


def stored(engine: Engine) -> pd.DataFrame:
    """Every stored column, state and provenance included."""
    with engine.connect() as conn:
        query = sa.select(daily_metrics).order_by(daily_metrics.c.ticker, daily_metrics.c.date)
        return pd.DataFrame(list(conn.execute(query)), columns=list(query.selected_columns.keys()))


def recomputed_from_scratch(engine: Engine) -> pd.DataFrame:
    with engine.begin() as conn:
        conn.execute(sa.delete(daily_metrics))
        conn.execute(sa.delete(daily_metrics_state))
    summary = refresh_daily_metrics(engine)
    assert summary.why_recomputed == dict.fromkeys(CLOSES, FIRST_COMPUTATION)
    return stored(engine)


def assert_same_rows(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Resumed equals recomputed: same keys, same provenance, the same floats to the bit."""
    pd.testing.assert_frame_equal(left, right, check_exact=True)


def test_metrics_equal_an_independent_pandas_computation_across_a_split(engine: Engine) -> None:
    store_sessions(engine, SESSIONS)
    split_day = SESSIONS[150]
    replace_splits(
        engine,
        {"AAA": [StockSplit("AAA", split_day, Decimal(4), Decimal(1), None)]},
        fetched_at=fetched(SESSIONS[-1]),
    )
    # As traded, AAA's closes fall by four on the ex-date; the adjusted ones do not.
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE daily_prices SET close = close / 4, open = open / 4, high = high / 4, "
                    "low = low / 4 WHERE ticker = 'AAA' AND date >= :d"),
            {"d": split_day},
        )  # fmt: skip

    summary = refresh(engine)

    assert summary.why_recomputed == dict.fromkeys(CLOSES, FIRST_COMPUTATION)
    assert summary.rows_written == 2 * len(SESSIONS)
    for ticker in CLOSES:
        assert_metrics_match_pandas(engine, ticker)
    aaa = read_daily_metrics(engine, ["AAA"]).set_index("date")
    # Adjusted prices: the ex-date shows the day's move, not a 75 % crash.
    assert aaa.loc[split_day, "return_1d"] > -0.2
    assert aaa["drawdown"].max() <= 0
    assert aaa["sma_200"].notna().sum() == len(SESSIONS) - 199
    assert aaa["volatility_20"].notna().sum() == len(SESSIONS) - 20
    assert aaa["rsi_14"].notna().sum() == len(SESSIONS) - 14
    assert ((aaa["rsi_14"].dropna() >= 0) & (aaa["rsi_14"].dropna() <= 100)).all()


def test_a_new_day_resumes_and_equals_a_full_recomputation(engine: Engine) -> None:
    store_sessions(engine, SESSIONS[:-3])
    refresh(engine)

    store_sessions(engine, SESSIONS[-3:])
    summary = refresh(engine)

    assert summary.recomputed == []
    assert summary.extended == sorted(CLOSES)
    assert summary.rows_written == 2 * 3
    assert summary.rows_removed == 0
    resumed = stored(engine)
    assert len(resumed) == 2 * len(SESSIONS)
    assert_same_rows(resumed, recomputed_from_scratch(engine))

    again = refresh_daily_metrics(engine)
    assert (again.rows_written, again.rows_removed, again.extended) == (0, 0, [])


def test_a_refetched_day_in_the_past_resumes_from_that_day(engine: Engine) -> None:
    store_sessions(engine, SESSIONS)
    refresh(engine)
    middle = SESSIONS[100:103]
    # The same closes fetched again (later): new provenance, and BBB's middle day moves.
    CLOSES_BACKUP = CLOSES["BBB"][101]
    try:
        CLOSES["BBB"][101] = CLOSES_BACKUP + Decimal("3.17")
        store_sessions(engine, middle, extra=timedelta(days=200))
        summary = refresh(engine)
    finally:
        CLOSES["BBB"][101] = CLOSES_BACKUP

    assert summary.recomputed == []
    assert summary.extended == sorted(CLOSES)
    assert summary.rows_written == 2 * (len(SESSIONS) - 100)
    assert_same_rows(stored(engine), recomputed_from_scratch(engine))


def test_a_new_split_recomputes_that_ticker_in_full(engine: Engine) -> None:
    store_sessions(engine, SESSIONS)
    refresh(engine)
    before = read_daily_metrics(engine, ["BBB"])

    replace_splits(
        engine,
        {"AAA": [StockSplit("AAA", SESSIONS[-10], Decimal(1), Decimal(10), None)]},
        fetched_at=fetched(SESSIONS[-1]),
    )
    summary = refresh(engine)

    assert summary.why_recomputed == {"AAA": REBASED}
    assert summary.extended == []
    assert summary.rows_written == len(SESSIONS)
    pd.testing.assert_frame_equal(read_daily_metrics(engine, ["BBB"]), before)
    # A 1:10 reverse split re-bases AAA's earlier history: its SMAs move by the factor.
    aaa = read_daily_metrics(engine, ["AAA"]).set_index("date")
    assert aaa.loc[SESSIONS[0], "ema_12"] == pytest.approx(float(CLOSES["AAA"][0]) * 10)
    assert_same_rows(stored(engine), recomputed_from_scratch(engine))


def test_removed_rows_and_tickers_lose_their_metrics(engine: Engine) -> None:
    store_sessions(engine, SESSIONS[:60])
    refresh(engine)

    # BBB's last five sessions are gone from daily_prices; AAA is gone altogether.
    store(engine, [], SESSIONS[55], SESSIONS[59], symbols=["BBB"])
    store(engine, [], SESSIONS[0], SESSIONS[59], symbols=["AAA"])
    summary = refresh(engine)

    assert summary.tickers == 1
    assert summary.rows_removed == 60 + 5
    remaining = read_daily_metrics(engine)
    assert set(remaining["ticker"]) == {"BBB"}
    assert list(remaining["date"]) == SESSIONS[:55]
    with engine.connect() as conn:
        assert list(conn.scalars(sa.select(daily_metrics_state.c.ticker))) == ["BBB"]


def test_coverage_and_range_checks_find_what_is_wrong(engine: Engine) -> None:
    store_sessions(engine, SESSIONS[:40])
    refresh(engine)
    coverage = metrics_coverage(engine)
    assert (coverage.adjusted_rows, coverage.missing, coverage.outdated) == (80, 0, 0)
    assert coverage.behind == []
    for metric in ("volatility_20", "rsi_14", "drawdown"):
        assert metrics_out_of_range(engine, metric).rows == 0

    store_sessions(engine, SESSIONS[40:42])
    refresh_adjusted_prices(engine, as_of=AS_OF)
    with engine.begin() as conn:
        conn.execute(
            sa.update(daily_metrics)
            .where(daily_metrics.c.ticker == "AAA", daily_metrics.c.date == SESSIONS[30])
            .values(volatility_20=-0.1, rsi_14=100.5, drawdown=0.25)
        )
    coverage = metrics_coverage(engine)
    assert (coverage.missing, coverage.outdated) == (4, 0)
    assert coverage.examples[0] == f"AAA {SESSIONS[40]}: missing"
    for metric in ("volatility_20", "rsi_14", "drawdown"):
        found = metrics_out_of_range(engine, metric)
        assert found.rows == 1
        assert found.examples[0].startswith(f"AAA {SESSIONS[30]}: ")


def test_timestamps_stay_aware_and_exact(engine: Engine) -> None:
    store_sessions(engine, SESSIONS[:5], extra=timedelta(microseconds=123457))
    refresh(engine)
    rows = stored(engine)
    first = rows["adjusted_fetched_at"].iloc[0]
    assert first.tzinfo is not None
    assert first == datetime(2025, 1, 6, 21, 30, 0, 123457, tzinfo=UTC)


def test_a_gap_longer_than_the_lookback_reads_the_windows_without_the_bound(engine: Engine) -> None:
    """Sessions before the 400 calendar days a resumed run reads still count (the 52-week
    window is 252 *stored* sessions): such a ticker's windows are read without the bound,
    and it still resumes, equal to a full computation."""
    early = weekdays(date(2023, 1, 2), 30)
    closes = random_walk(7, len(early) + 102)
    days = early + SESSIONS[:102]
    bars = [
        bar("GAP", day, close, fetched_at=fetched(day))
        for day, close in zip(days, closes, strict=True)
    ]
    store(engine, bars[:-2], days[0], days[-3])
    refresh_adjusted_prices(engine, as_of=AS_OF)
    refresh_daily_metrics(engine)

    store(engine, bars[-2:], days[-2], days[-1])
    refresh_adjusted_prices(engine, as_of=AS_OF)
    summary = refresh_daily_metrics(engine)

    assert (summary.recomputed, summary.extended) == ([], ["GAP"])
    resumed = stored(engine)
    assert len(resumed) == len(days)
    with engine.begin() as conn:
        conn.execute(sa.delete(daily_metrics))
        conn.execute(sa.delete(daily_metrics_state))
    refresh_daily_metrics(engine)
    assert_same_rows(resumed, stored(engine))
    assert_metrics_match_pandas(engine, "GAP")


def test_a_day_after_a_long_silence_is_computed_with_the_history_before_it(
    engine: Engine,
) -> None:
    """Nothing at all within the lookback before the new day: still not a first session."""
    early = weekdays(date(2023, 1, 2), 40)
    late = SESSIONS[:1]
    closes = random_walk(8, len(early) + 1)
    bars = [
        bar("OLD", day, close, fetched_at=fetched(day))
        for day, close in zip(early + late, closes, strict=True)
    ]
    store(engine, bars[:-1], early[0], early[-1])
    refresh_adjusted_prices(engine, as_of=AS_OF)
    refresh_daily_metrics(engine)

    store(engine, bars[-1:], late[0], late[0])
    refresh_adjusted_prices(engine, as_of=AS_OF)
    summary = refresh_daily_metrics(engine)

    assert (summary.recomputed, summary.extended) == ([], ["OLD"])
    metrics = assert_metrics_match_pandas(engine, "OLD")
    assert metrics.loc[late[0], "sma_20"] == pytest.approx(sum(float(c) for c in closes[-20:]) / 20)


def test_new_metric_definitions_recompute_every_ticker(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_sessions(engine, SESSIONS[:30])
    refresh(engine)
    monkeypatch.setattr(metrics_storage, "METRICS_VERSION", METRICS_VERSION + 1)

    summary = refresh_daily_metrics(engine)

    assert summary.why_recomputed == dict.fromkeys(CLOSES, DEFINITIONS_CHANGED)
    with engine.connect() as conn:
        versions = set(conn.scalars(sa.select(daily_metrics_state.c.metrics_version)))
    assert versions == {METRICS_VERSION + 1}
    assert refresh_daily_metrics(engine).recomputed == []


def test_the_stored_columns_are_the_computed_ones() -> None:
    stored_columns = [c.name for c in daily_metrics.columns]
    assert stored_columns == [
        "ticker",
        "date",
        *METRIC_COLUMNS,
        *STATE_COLUMNS,
        "adjusted_fetched_at",
    ]
    assert list(METRIC_COMMENTS) == list(METRIC_COLUMNS)


@pytest.mark.postgres
def test_concurrent_refreshes_take_turns(postgres_url: str) -> None:
    """A manual materialization during an automation run: both succeed, the second finds
    the work done (without the lock, both insert the same keys and one fails)."""
    engine = create_db_engine(postgres_url)
    store_sessions(engine, SESSIONS[:120])
    refresh_adjusted_prices(engine, as_of=AS_OF)
    with ThreadPoolExecutor(2) as pool:
        summaries = list(pool.map(lambda _: refresh_daily_metrics(engine), range(2)))
    assert sorted(s.rows_written for s in summaries) == [0, 2 * 120]
    assert len(stored(engine)) == 2 * 120
    engine.dispose()
