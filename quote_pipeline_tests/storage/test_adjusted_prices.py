"""daily_prices_adjusted as refresh_adjusted_prices derives it from stored rows, on SQLite and
PostgreSQL: equal to the convention computed independently (Fractions, support/convention.py),
re-based when a ticker's corporate actions change, extended by new rows only otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from quote_pipeline.adjustments import RawDay
from quote_pipeline.price_bars import AS_TRADED, SPLIT_ADJUSTED, DailyBar
from quote_pipeline.reference_data import Dividend, StockSplit
from quote_pipeline.storage.adjusted_prices import (
    AdjustedRow,
    adjusted_coverage,
    read_adjusted_prices,
    refresh_adjusted_prices,
    split_jumps,
    tickers_behind_actions,
)
from quote_pipeline.storage.corporate_actions import replace_dividends, replace_splits
from quote_pipeline.storage.history import read_daily_prices, replace_daily_prices
from quote_pipeline.storage.schema import daily_prices_adjusted, price_adjustment_state
from quote_pipeline_tests.support.convention import Adjusted, reference, rounded
from quote_pipeline_tests.support.days import weekdays

EIGHT_PLACES = Decimal("1e-8")
# After the New York close of the day fetched (21:30 UTC is 16:30 or 17:30 in New York).
FETCH_TIME = timedelta(hours=21, minutes=30)


def fetched(day: date, extra: timedelta = timedelta(0)) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + FETCH_TIME + extra


def bar(
    symbol: str,
    day: date,
    close: str | Decimal,
    *,
    fetched_at: datetime,
    volume: int = 1_000_003,
    basis: str = AS_TRADED,
) -> DailyBar:
    c = Decimal(close)
    return DailyBar(
        symbol=symbol,
        day=day,
        open=c - Decimal("1.01"),
        high=c + 2,
        low=c - 3,
        close=c,
        volume=volume,
        change=None,
        change_percent=None,
        vwap=None,
        fetched_at=fetched_at,
        price_basis=basis,
    )


def history(
    symbol: str, days: Sequence[date], closes: Sequence[str], *, fetched_at: datetime
) -> list[DailyBar]:
    return [
        bar(symbol, day, close, fetched_at=fetched_at)
        for day, close in zip(days, closes, strict=True)
    ]


def store(
    engine: Engine,
    bars: Sequence[DailyBar],
    start: date,
    end: date,
    symbols: Sequence[str] = (),
) -> None:
    """Make ``bars`` the rows of their symbols (and ``symbols``) from ``start`` to ``end``."""
    wanted = sorted({b.symbol for b in bars} | set(symbols))
    replace_daily_prices(engine, wanted, start, end, bars)


def store_days(engine: Engine, bars: Sequence[DailyBar]) -> None:
    store(engine, bars, min(b.day for b in bars), max(b.day for b in bars))


def raw_days(engine: Engine, symbol: str) -> list[RawDay]:
    return [
        RawDay(b.day, b.open, b.high, b.low, b.close, b.volume, b.price_basis)
        for b in read_daily_prices(engine, [symbol])
    ]


def as_tuples(rows: Sequence[AdjustedRow]) -> list[Adjusted]:
    return [(r.adj_open, r.adj_high, r.adj_low, r.adj_close, r.adj_volume) for r in rows]


def adjusted(engine: Engine, symbol: str) -> list[AdjustedRow]:
    return read_adjusted_prices(engine, [symbol])


def expected(
    engine: Engine,
    symbol: str,
    splits: Sequence[StockSplit] = (),
    dividends: Sequence[Dividend] = (),
) -> list[Adjusted]:
    """The convention, computed with Fractions from the stored raw rows."""
    return reference(raw_days(engine, symbol), splits, dividends)


def unadjusted(engine: Engine, symbol: str) -> list[Adjusted]:
    return [
        (
            r.open.quantize(EIGHT_PLACES),
            r.high.quantize(EIGHT_PLACES),
            r.low.quantize(EIGHT_PLACES),
            r.close.quantize(EIGHT_PLACES),
            r.volume,
        )
        for r in raw_days(engine, symbol)
    ]


def split(symbol: str, day: date, num: str | int, den: str | int) -> StockSplit:
    return StockSplit(symbol, day, Decimal(num), Decimal(den), "stock-split")


def dividend(symbol: str, day: date, amount: str) -> Dividend:
    return Dividend(symbol, day, Decimal(amount), None, None, None, None, "Quarterly")


def set_splits(engine: Engine, symbol: str, splits: list[StockSplit], at: date) -> None:
    replace_splits(engine, {symbol: splits}, fetched_at=fetched(at))


def set_dividends(engine: Engine, symbol: str, events: list[Dividend], at: date) -> None:
    replace_dividends(engine, {symbol: events}, fetched_at=fetched(at))


DAYS = weekdays(date(2026, 1, 5), 30)
CLOSES = [str(Decimal("400.00") + i) for i in range(10)]
CLOSES += [str(Decimal("102.37") + i) for i in range(10)]  # after a 4:1 split on DAYS[10]
CLOSES += [str(Decimal("1023.70") + 10 * i) for i in range(10)]  # after 1:10 on DAYS[20]
AS_OF = DAYS[-1] + timedelta(days=1)


# --- the convention, exactly ----------------------------------------------------------------------


def test_a_forward_and_a_reverse_split_match_the_convention_exactly(engine: Engine) -> None:
    store_days(engine, history("ABC", DAYS, CLOSES, fetched_at=fetched(DAYS[-1])))
    store_days(engine, history("XYZ", DAYS[:5], CLOSES[:5], fetched_at=fetched(DAYS[4])))
    splits = [split("ABC", DAYS[10], 4, 1), split("ABC", DAYS[20], 1, 10)]
    set_splits(engine, "ABC", splits, DAYS[-1])

    summary = refresh_adjusted_prices(engine, as_of=AS_OF)
    assert (summary.tickers, summary.rebased, summary.extended) == (2, ["ABC", "XYZ"], [])
    assert summary.why_rebased == {"ABC": "first computation", "XYZ": "first computation"}
    assert summary.rows_written == 35

    rows = adjusted(engine, "ABC")
    assert [r.day for r in rows] == DAYS
    assert as_tuples(rows) == expected(engine, "ABC", splits)
    # Before the 4:1 split: ÷4, then x10 for the reverse split = x2.5.
    assert rows[0].adj_close == Decimal("1000.00000000")
    assert [r.split_factor for r in (rows[0], rows[10], rows[20])] == [
        Decimal("0.4"),
        Decimal("0.1"),
        Decimal(1),
    ]
    assert {r.dividend_factor for r in rows} == {Decimal(1)}
    assert rows[0].adj_volume == round(Fraction(1_000_003) * Fraction(2, 5))
    # A ticker without actions is its raw rows.
    assert as_tuples(adjusted(engine, "XYZ")) == unadjusted(engine, "XYZ")


@pytest.mark.parametrize(("num", "den"), [(3, 2), (2, 3), (1, 8), ("1.5", "1")])
def test_awkward_ratios_round_half_even_once(engine: Engine, num: object, den: object) -> None:
    closes = ["10.01", "10.33", "9.99", "7.77", "6.66", "6.67", "6.69"]
    rows = [
        bar("ABC", day, close, fetched_at=fetched(DAYS[6]), volume=1_000_001 + i)
        for i, (day, close) in enumerate(zip(DAYS, closes, strict=False))
    ]
    store_days(engine, rows)
    splits = [split("ABC", DAYS[3], num, den)]  # type: ignore[arg-type]
    set_splits(engine, "ABC", splits, DAYS[6])
    refresh_adjusted_prices(engine, as_of=DAYS[6])
    assert as_tuples(adjusted(engine, "ABC")) == expected(engine, "ABC", splits)


def test_a_tie_at_the_ninth_place_rounds_half_to_even(engine: Engine) -> None:
    closes = ["10.00000001", "10.00000003", "10.00000005", "20"]
    store_days(engine, history("ABC", DAYS[:4], closes, fetched_at=fetched(DAYS[3])))
    splits = [split("ABC", DAYS[3], 2, 1)]
    set_splits(engine, "ABC", splits, DAYS[3])
    refresh_adjusted_prices(engine, as_of=DAYS[3])
    rows = adjusted(engine, "ABC")
    # 5.000000005 -> ...00 (even), 5.000000015 -> ...02, 5.000000025 -> ...02.
    assert [r.adj_close for r in rows] == [
        Decimal("5.00000000"),
        Decimal("5.00000002"),
        Decimal("5.00000002"),
        Decimal("20"),
    ]
    assert as_tuples(rows) == expected(engine, "ABC", splits)


def test_a_dividend_adjusts_by_one_minus_dividend_over_the_previous_raw_close(
    engine: Engine,
) -> None:
    closes = ["50.13", "50.77", "51.09", "49.93", "50.01", "50.5", "51"]
    store_days(engine, history("KO", DAYS[:7], closes, fetched_at=fetched(DAYS[6])))
    # The ex-date is DAYS[4]: the previous stored session is DAYS[3], close 49.93.
    events = [dividend("KO", DAYS[4], "0.2475")]
    set_dividends(engine, "KO", events, DAYS[6])
    refresh_adjusted_prices(engine, as_of=DAYS[6])

    rows = adjusted(engine, "KO")
    assert as_tuples(rows) == expected(engine, "KO", dividends=events)
    factor = 1 - Fraction("0.2475") / Fraction("49.93")
    for row, close in zip(rows[:4], closes[:4], strict=True):
        assert row.adj_close == rounded(Fraction(close) * factor)
        assert abs(row.dividend_factor - Decimal(factor.numerator) / factor.denominator) < Decimal(
            "1e-12"
        )
        assert row.split_factor == 1
    assert rows[0].adj_volume == 1_000_003  # a dividend never changes volume
    for row, close in zip(rows[4:], closes[4:], strict=True):
        assert (row.adj_close, row.dividend_factor) == (Decimal(close), 1)


def test_a_dividend_before_the_first_stored_session_is_not_applied(engine: Engine) -> None:
    store_days(engine, history("KO", DAYS[2:6], CLOSES[2:6], fetched_at=fetched(DAYS[6])))
    set_dividends(engine, "KO", [dividend("KO", DAYS[2], "1.5")], DAYS[6])
    refresh_adjusted_prices(engine, as_of=DAYS[6])
    assert as_tuples(adjusted(engine, "KO")) == unadjusted(engine, "KO")


def test_splits_and_dividends_together_match_the_convention(engine: Engine) -> None:
    store_days(engine, history("ABC", DAYS, CLOSES, fetched_at=fetched(DAYS[-1])))
    splits = [split("ABC", DAYS[10], 4, 1), split("ABC", DAYS[20], 1, 10)]
    events = [
        dividend("ABC", DAYS[3], "0.82"),
        dividend("ABC", DAYS[10], "0.24"),  # on the split's ex-date, per new share
        dividend("ABC", DAYS[25], "3.1"),
    ]
    set_splits(engine, "ABC", splits, DAYS[-1])
    set_dividends(engine, "ABC", events, DAYS[-1])
    refresh_adjusted_prices(engine, as_of=AS_OF, chunk_rows=7)
    assert as_tuples(adjusted(engine, "ABC")) == expected(engine, "ABC", splits, events)
    jumps = split_jumps(engine, as_of=AS_OF)
    assert [(j.ticker, j.ex_date) for j in jumps] == [("ABC", DAYS[10]), ("ABC", DAYS[20])]
    assert all(j.relative_gap < Decimal("1e-8") for j in jumps)


# --- re-basing when the actions change ------------------------------------------------------------


JANUARY = weekdays(date(2026, 1, 2), 21)  # 2026-01-02 .. 2026-01-30


def test_a_split_announced_after_the_history_re_bases_it(engine: Engine) -> None:
    closes = [f"{400 + i}.{i:02d}" for i in range(len(JANUARY))]
    store_days(engine, history("ABC", JANUARY, closes, fetched_at=fetched(JANUARY[-1])))
    store_days(engine, history("XYZ", JANUARY, closes, fetched_at=fetched(JANUARY[-1])))
    first = refresh_adjusted_prices(engine, as_of=date(2026, 1, 31))
    assert first.rebased == ["ABC", "XYZ"]
    assert as_tuples(adjusted(engine, "ABC")) == unadjusted(engine, "ABC")
    xyz_before = adjusted(engine, "XYZ")

    ex_date = date(2026, 2, 2)
    set_splits(engine, "ABC", [split("ABC", ex_date, 4, 1)], ex_date)
    store_days(engine, [bar("ABC", ex_date, "106.25", fetched_at=fetched(ex_date))])
    store_days(engine, [bar("XYZ", ex_date, "425.00", fetched_at=fetched(ex_date))])
    summary = refresh_adjusted_prices(engine, as_of=date(2026, 2, 3))
    assert (summary.rebased, summary.extended) == (["ABC"], ["XYZ"])
    assert summary.why_rebased == {"ABC": "corporate actions changed"}
    assert summary.rows_written == len(JANUARY) + 2

    rows = adjusted(engine, "ABC")
    raw = raw_days(engine, "ABC")
    assert len(rows) == len(JANUARY) + 1
    for row, day in zip(rows[:-1], raw[:-1], strict=True):
        assert row.adj_close == (day.close / 4).quantize(EIGHT_PLACES)
        assert row.adj_open == (day.open / 4).quantize(EIGHT_PLACES)
        assert row.adj_volume == day.volume * 4
        assert row.split_factor == 4
    assert (rows[-1].day, rows[-1].adj_close, rows[-1].split_factor) == (
        ex_date,
        Decimal("106.25"),
        1,
    )
    assert as_tuples(rows) == expected(engine, "ABC", [split("ABC", ex_date, 4, 1)])
    assert adjusted(engine, "XYZ")[:-1] == xyz_before  # the other ticker is not re-based


def test_a_split_after_as_of_is_applied_once_as_of_passes_it(engine: Engine) -> None:
    store_days(engine, history("ABC", DAYS[:10], CLOSES[:10], fetched_at=fetched(DAYS[9])))
    splits = [split("ABC", DAYS[10], 4, 1)]
    set_splits(engine, "ABC", splits, DAYS[9])  # announced for the next session

    refresh_adjusted_prices(engine, as_of=DAYS[9])
    assert as_tuples(adjusted(engine, "ABC")) == unadjusted(engine, "ABC")
    assert split_jumps(engine, as_of=DAYS[9]) == []
    again = refresh_adjusted_prices(engine, as_of=DAYS[9])
    assert (again.rebased, again.extended, again.rows_written) == ([], [], 0)

    summary = refresh_adjusted_prices(engine, as_of=DAYS[10])
    assert summary.rebased == ["ABC"]
    assert as_tuples(adjusted(engine, "ABC")) == expected(engine, "ABC", splits)
    assert adjusted(engine, "ABC")[0].split_factor == 4


def test_a_corrected_or_withdrawn_split_re_bases_again(engine: Engine) -> None:
    store_days(engine, history("ABC", DAYS[:20], CLOSES[:20], fetched_at=fetched(DAYS[19])))
    set_splits(engine, "ABC", [split("ABC", DAYS[10], 5, 1)], DAYS[19])
    refresh_adjusted_prices(engine, as_of=AS_OF)

    corrected = [split("ABC", DAYS[10], 4, 1)]
    set_splits(engine, "ABC", corrected, DAYS[19])
    summary = refresh_adjusted_prices(engine, as_of=AS_OF)
    assert summary.why_rebased == {"ABC": "corporate actions changed"}
    assert as_tuples(adjusted(engine, "ABC")) == expected(engine, "ABC", corrected)

    # A withdrawal is only ever a non-empty answer without it: here, an invalid 1:1 split
    # that the convention leaves out.
    set_splits(engine, "ABC", [split("ABC", DAYS[2], 1, 1)], DAYS[19])
    summary = refresh_adjusted_prices(engine, as_of=AS_OF)
    assert summary.rebased == ["ABC"]
    assert as_tuples(adjusted(engine, "ABC")) == unadjusted(engine, "ABC")


# --- incremental refreshes ------------------------------------------------------------------------


def stored_adjusted(engine: Engine) -> list[tuple[str, ...]]:
    """Every stored adjusted row, every column as its repr (raw_fetched_at included)."""
    with engine.connect() as conn:
        query = sa.select(daily_prices_adjusted).order_by(
            daily_prices_adjusted.c.ticker, daily_prices_adjusted.c.date
        )
        return [tuple(map(repr, row)) for row in conn.execute(query)]


def computed_at(engine: Engine) -> dict[str, datetime]:
    state = price_adjustment_state.c
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(state.ticker, state.computed_at)).tuples().all())


def test_a_new_day_after_the_latest_ex_date_only_adds_its_row(engine: Engine) -> None:
    start = DAYS[:20]
    store_days(engine, history("ABC", start, CLOSES[:20], fetched_at=fetched(DAYS[19])))
    store_days(engine, history("XYZ", start, CLOSES[:20], fetched_at=fetched(DAYS[19])))
    splits = [split("ABC", DAYS[10], 4, 1)]
    set_splits(engine, "ABC", splits, DAYS[19])
    set_dividends(engine, "XYZ", [dividend("XYZ", DAYS[15], "0.5")], DAYS[19])
    refresh_adjusted_prices(engine, as_of=DAYS[19], now=fetched(DAYS[19]))
    before = stored_adjusted(engine)
    assert computed_at(engine) == {"ABC": fetched(DAYS[19]), "XYZ": fetched(DAYS[19])}

    for symbol in ("ABC", "XYZ"):
        store_days(engine, [bar(symbol, DAYS[20], "123.45", fetched_at=fetched(DAYS[20]))])
    summary = refresh_adjusted_prices(engine, as_of=DAYS[20], now=fetched(DAYS[20]))
    assert (summary.rebased, summary.extended) == ([], ["ABC", "XYZ"])
    assert (summary.rows_written, summary.rows_deleted) == (2, 0)
    # The state records full computations only.
    assert computed_at(engine) == {"ABC": fetched(DAYS[19]), "XYZ": fetched(DAYS[19])}
    after = stored_adjusted(engine)
    assert [row for row in after if row[1] != repr(DAYS[20])] == before
    assert as_tuples(adjusted(engine, "ABC")) == expected(engine, "ABC", splits)
    assert as_tuples(adjusted(engine, "XYZ")) == expected(
        engine, "XYZ", dividends=[dividend("XYZ", DAYS[15], "0.5")]
    )
    new = read_adjusted_prices(engine, start=DAYS[20])
    assert [(r.ticker, r.adj_close, r.split_factor, r.dividend_factor) for r in new] == [
        ("ABC", Decimal("123.45"), 1, 1),
        ("XYZ", Decimal("123.45"), 1, 1),
    ]

    # Nothing changed since: nothing is written or deleted.
    idle = refresh_adjusted_prices(engine, as_of=DAYS[21])
    assert (idle.rebased, idle.extended, idle.rows_written, idle.rows_deleted) == ([], [], 0, 0)
    assert (idle.tickers, idle.statements) == (2, 0)
    assert stored_adjusted(engine) == after


def test_a_re_fetched_row_is_recomputed(engine: Engine) -> None:
    store_days(engine, history("ABC", DAYS[:20], CLOSES[:20], fetched_at=fetched(DAYS[19])))
    splits = [split("ABC", DAYS[10], 4, 1)]
    set_splits(engine, "ABC", splits, DAYS[19])
    refresh_adjusted_prices(engine, as_of=DAYS[19])
    before = stored_adjusted(engine)

    # The last session fetched again later (its close corrected), after the latest ex-date.
    store_days(engine, [bar("ABC", DAYS[19], "111.11", fetched_at=fetched(DAYS[19], FETCH_TIME))])
    summary = refresh_adjusted_prices(engine, as_of=DAYS[19])
    assert (summary.rebased, summary.extended, summary.rows_written) == ([], ["ABC"], 1)
    after = stored_adjusted(engine)
    assert after[:-1] == before[:-1]
    assert adjusted(engine, "ABC")[-1].adj_close == Decimal("111.11")
    assert as_tuples(adjusted(engine, "ABC")) == expected(engine, "ABC", splits)

    # Re-fetched with the very same values: still recomputed (its fetched_at moved on).
    same = bar("ABC", DAYS[19], "111.11", fetched_at=fetched(DAYS[19], 2 * FETCH_TIME))
    store_days(engine, [same])
    summary = refresh_adjusted_prices(engine, as_of=DAYS[19])
    assert (summary.extended, summary.rows_written) == (["ABC"], 1)
    assert adjusted_coverage(engine).outdated == 0


def test_a_re_fetched_row_before_the_latest_ex_date_re_bases_the_ticker(engine: Engine) -> None:
    store_days(engine, history("ABC", DAYS[:20], CLOSES[:20], fetched_at=fetched(DAYS[19])))
    splits = [split("ABC", DAYS[10], 4, 1)]
    events = [dividend("ABC", DAYS[6], "2")]
    set_splits(engine, "ABC", splits, DAYS[19])
    set_dividends(engine, "ABC", events, DAYS[19])
    refresh_adjusted_prices(engine, as_of=DAYS[19])

    # The close the dividend factor uses (DAYS[5]) is corrected by a later fetch.
    store_days(engine, [bar("ABC", DAYS[5], "300", fetched_at=fetched(DAYS[19], FETCH_TIME))])
    summary = refresh_adjusted_prices(engine, as_of=DAYS[19])
    assert (summary.rebased, summary.extended) == (["ABC"], [])
    assert summary.why_rebased == {"ABC": "rows before the latest ex-date changed"}
    assert summary.rows_written == 20
    assert as_tuples(adjusted(engine, "ABC")) == expected(engine, "ABC", splits, events)


def test_a_backfill_of_older_history_re_bases_the_ticker(engine: Engine) -> None:
    store_days(engine, history("ABC", DAYS[5:20], CLOSES[5:20], fetched_at=fetched(DAYS[19])))
    splits = [split("ABC", DAYS[10], 4, 1)]
    events = [dividend("ABC", DAYS[5], "1.25")]  # no stored session before it yet
    set_splits(engine, "ABC", splits, DAYS[19])
    set_dividends(engine, "ABC", events, DAYS[19])
    refresh_adjusted_prices(engine, as_of=DAYS[19])
    assert adjusted(engine, "ABC")[0].dividend_factor == 1

    store(
        engine,
        history("ABC", DAYS[:5], CLOSES[:5], fetched_at=fetched(DAYS[20])),
        DAYS[0],
        DAYS[4],
    )
    summary = refresh_adjusted_prices(engine, as_of=DAYS[20])
    assert summary.rebased == ["ABC"]
    assert len(adjusted(engine, "ABC")) == 20
    assert as_tuples(adjusted(engine, "ABC")) == expected(engine, "ABC", splits, events)
    assert adjusted(engine, "ABC")[0].dividend_factor < 1


def test_a_small_chunk_size_writes_the_same_rows(engine: Engine) -> None:
    for symbol in ("AAA", "BBB", "CCC"):
        store_days(engine, history(symbol, DAYS, CLOSES, fetched_at=fetched(DAYS[-1])))
        set_splits(engine, symbol, [split(symbol, DAYS[10], 4, 1)], DAYS[-1])
    summary = refresh_adjusted_prices(engine, as_of=AS_OF, chunk_rows=4)
    assert summary.rows_written == 90
    assert summary.statements >= 90 // 4
    for symbol in ("AAA", "BBB", "CCC"):
        assert as_tuples(adjusted(engine, symbol)) == expected(
            engine, symbol, [split(symbol, DAYS[10], 4, 1)]
        )
    assert adjusted_coverage(engine).missing == 0


def test_a_split_re_sent_with_another_spelling_re_bases_nothing(engine: Engine) -> None:
    store_days(engine, history("ABC", DAYS[:20], CLOSES[:20], fetched_at=fetched(DAYS[19])))
    set_splits(engine, "ABC", [split("ABC", DAYS[10], 4, 1)], DAYS[19])
    refresh_adjusted_prices(engine, as_of=DAYS[19])

    done = replace_splits(
        engine, {"ABC": [split("ABC", DAYS[10], "4.0", "1.0")]}, fetched_at=fetched(DAYS[20])
    )
    assert done.changed == []
    summary = refresh_adjusted_prices(engine, as_of=DAYS[20])
    assert (summary.rebased, summary.rows_written) == ([], 0)


# --- legacy (split-adjusted) rows -----------------------------------------------------------------


def ohlc_bar(
    symbol: str,
    day: date,
    prices: str,
    volume: int,
    fetched_at: datetime,
    basis: str = AS_TRADED,
) -> DailyBar:
    """A bar from "open high low close"."""
    o, h, lo, c = map(Decimal, prices.split())
    return DailyBar(symbol, day, o, h, lo, c, volume, None, None, None, fetched_at, basis)


def test_a_legacy_row_adjusts_like_the_as_traded_row(engine: Engine) -> None:
    before, ex_date, after = date(2020, 8, 28), date(2020, 8, 31), date(2020, 9, 1)
    traded_prices = "500.01 508 498 504.04"
    rows = [
        # Fetched from /full on 2020-09-01, after the 4:1 split: FMP had divided it by 4.
        ohlc_bar(
            "LEG", before, "125.0025 127 124.5 126.01", 4_000_004, fetched(after), SPLIT_ADJUSTED
        ),
        # Fetched from /full on 2020-08-28, before the split: as traded then.
        ohlc_bar("EARLY", before, traded_prices, 1_000_001, fetched(before), SPLIT_ADJUSTED),
        # Fetched as traded.
        ohlc_bar("TRD", before, traded_prices, 1_000_001, fetched(after)),
    ]
    for symbol in ("LEG", "EARLY", "TRD"):
        rows += [
            ohlc_bar(symbol, ex_date, "127 130 126 129.04", 7, fetched(after)),
            ohlc_bar(symbol, after, "130 135 128 134.18", 8, fetched(after)),
        ]
        store_days(engine, [r for r in rows if r.symbol == symbol])
        set_splits(engine, symbol, [split(symbol, ex_date, 4, 1)], after)

    refresh_adjusted_prices(engine, as_of=after)
    traded = adjusted(engine, "TRD")
    assert as_tuples(traded) == expected(engine, "TRD", [split("TRD", ex_date, 4, 1)])
    assert (traded[0].adj_close, traded[0].adj_volume) == (Decimal("126.01"), 4_000_004)
    for symbol in ("LEG", "EARLY"):
        assert as_tuples(adjusted(engine, symbol)) == as_tuples(traded), symbol
        assert adjusted(engine, symbol)[0].split_factor == 4

    # The next fetch of its range replaces the legacy row with the as-traded one: a re-base
    # (the row lies before the ex-date) to the very same adjusted values.
    refetch = fetched(after, FETCH_TIME)
    store_days(engine, [ohlc_bar("LEG", before, traded_prices, 1_000_001, refetch)])
    summary = refresh_adjusted_prices(engine, as_of=after)
    assert summary.rebased == ["LEG"]
    assert as_tuples(adjusted(engine, "LEG")) == as_tuples(traded)


# --- deletions ------------------------------------------------------------------------------------


def adjusted_days(engine: Engine, symbol: str) -> list[date]:
    return [r.day for r in adjusted(engine, symbol)]


def test_adjusted_rows_of_deleted_raw_rows_are_deleted(engine: Engine) -> None:
    store_days(engine, history("ABC", DAYS[:12], CLOSES[:12], fetched_at=fetched(DAYS[11])))
    store_days(engine, history("XYZ", DAYS[:12], CLOSES[:12], fetched_at=fetched(DAYS[11])))
    splits = [split("ABC", DAYS[5], 4, 1)]
    set_splits(engine, "ABC", splits, DAYS[11])
    refresh_adjusted_prices(engine, as_of=DAYS[11])
    xyz = stored_adjusted(engine)[12:]

    # The range re-fetched without its last two sessions (after the latest ex-date).
    refetch = fetched(DAYS[11], FETCH_TIME)
    store(engine, history("ABC", DAYS[:10], CLOSES[:10], fetched_at=refetch), DAYS[0], DAYS[11])
    summary = refresh_adjusted_prices(engine, as_of=DAYS[11])
    # Every remaining row was re-fetched, those before the ex-date too: a re-base.
    assert summary.rebased == ["ABC"]
    assert adjusted_days(engine, "ABC") == DAYS[:10]
    assert as_tuples(adjusted(engine, "ABC")) == expected(engine, "ABC", splits)
    assert stored_adjusted(engine)[10:] == xyz

    # Only rows after the ex-date go (a narrower replace): deleted, nothing rewritten.
    store(engine, [], DAYS[8], DAYS[9], ["ABC"])
    summary = refresh_adjusted_prices(engine, as_of=DAYS[11])
    assert (summary.rebased, summary.extended) == ([], [])
    assert (summary.rows_written, summary.rows_deleted) == (0, 2)
    assert adjusted_days(engine, "ABC") == DAYS[:8]

    # A row before the ex-date goes: the ticker is re-based without it.
    store(engine, [], DAYS[2], DAYS[2], ["ABC"])
    summary = refresh_adjusted_prices(engine, as_of=DAYS[11])
    assert summary.why_rebased == {"ABC": "rows before the latest ex-date changed"}
    assert adjusted_days(engine, "ABC") == [d for d in DAYS[:8] if d != DAYS[2]]
    assert as_tuples(adjusted(engine, "ABC")) == expected(engine, "ABC", splits)
    assert adjusted_coverage(engine).missing == 0


def test_a_ticker_without_raw_rows_loses_its_adjusted_rows_and_state(engine: Engine) -> None:
    store_days(engine, history("ABC", DAYS[:5], CLOSES[:5], fetched_at=fetched(DAYS[4])))
    store_days(engine, history("XYZ", DAYS[:5], CLOSES[:5], fetched_at=fetched(DAYS[4])))
    refresh_adjusted_prices(engine, as_of=DAYS[4])
    store(engine, [], DAYS[0], DAYS[4], ["ABC"])
    summary = refresh_adjusted_prices(engine, as_of=DAYS[4])
    assert (summary.tickers, summary.rows_deleted) == (1, 5)
    assert adjusted(engine, "ABC") == []
    with engine.connect() as conn:
        assert list(conn.scalars(sa.select(price_adjustment_state.c.ticker))) == ["XYZ"]

    store_days(engine, history("ABC", DAYS[:3], CLOSES[:3], fetched_at=fetched(DAYS[5])))
    summary = refresh_adjusted_prices(engine, as_of=DAYS[5])
    assert summary.why_rebased == {"ABC": "first computation"}
    assert as_tuples(adjusted(engine, "ABC")) == unadjusted(engine, "ABC")


# --- coverage and split jumps ---------------------------------------------------------------------


def test_adjusted_coverage_reports_missing_then_nothing_then_outdated(engine: Engine) -> None:
    store_days(engine, history("ABC", DAYS[:6], CLOSES[:6], fetched_at=fetched(DAYS[5])))
    before = adjusted_coverage(engine)
    assert (before.raw_rows, before.missing, before.outdated) == (6, 6, 0)
    assert before.examples[0] == f"ABC {DAYS[0]}: missing"
    assert len(adjusted_coverage(engine, example_limit=2).examples) == 2

    refresh_adjusted_prices(engine, as_of=DAYS[5])
    after = adjusted_coverage(engine)
    assert (after.raw_rows, after.missing, after.outdated, after.examples) == (6, 0, 0, [])

    store_days(engine, [bar("ABC", DAYS[5], "100", fetched_at=fetched(DAYS[6]))])
    stale = adjusted_coverage(engine)
    assert (stale.missing, stale.outdated, stale.examples) == (0, 1, [f"ABC {DAYS[5]}: outdated"])


def test_split_jumps_show_a_stale_history_as_the_splits_whole_ratio(engine: Engine) -> None:
    store_days(engine, history("ABC", DAYS[:20], CLOSES[:20], fetched_at=fetched(DAYS[19])))
    refresh_adjusted_prices(engine, as_of=DAYS[19])  # before the split is known
    set_splits(engine, "ABC", [split("ABC", DAYS[10], 4, 1)], DAYS[19])

    (stale,) = split_jumps(engine, as_of=DAYS[19])
    assert (stale.ticker, stale.ex_date, stale.previous_day) == ("ABC", DAYS[10], DAYS[9])
    assert abs(stale.relative_gap - Decimal("0.75")) < Decimal("1e-9")  # a fake 75 % crash

    refresh_adjusted_prices(engine, as_of=DAYS[19])
    (fresh,) = split_jumps(engine, as_of=DAYS[19])
    assert fresh.relative_gap < Decimal("1e-8")
    expected_move = Decimal(CLOSES[10]) * 4 / Decimal(CLOSES[9])
    assert abs(fresh.explained_move - expected_move) < Decimal("1e-20")
    # Before the ex-date the split does not apply: no jump to check.
    assert split_jumps(engine, as_of=DAYS[9]) == []


def test_a_split_the_raw_prices_do_not_show_is_flagged_and_a_stale_ticker_named(
    engine: Engine,
) -> None:
    # Flat closes and a 4:1 split on DAYS[5]: continuous by construction, but not in the
    # prices (the split is wrong or misdated), which the other check says.
    store_days(engine, history("FLAT", DAYS[:10], ["25"] * 10, fetched_at=fetched(DAYS[9])))
    store_days(engine, history("REAL", DAYS[:20], CLOSES[:20], fetched_at=fetched(DAYS[19])))
    set_splits(engine, "FLAT", [split("FLAT", DAYS[5], 4, 1)], DAYS[9])
    set_splits(engine, "REAL", [split("REAL", DAYS[10], 4, 1)], DAYS[19])
    refresh_adjusted_prices(engine, as_of=DAYS[19])
    jumps = {j.ticker: j for j in split_jumps(engine, as_of=DAYS[19])}
    assert not jumps["FLAT"].split_seen_in_raw_prices
    assert jumps["REAL"].split_seen_in_raw_prices
    assert all(j.relative_gap < Decimal("1e-6") for j in jumps.values())
    assert tickers_behind_actions(engine, as_of=DAYS[19]) == []
    # A split stored but not yet applied: the ticker is named until the next refresh.
    set_splits(
        engine, "REAL", [split("REAL", DAYS[10], 4, 1), split("REAL", DAYS[15], 2, 1)], DAYS[19]
    )
    assert tickers_behind_actions(engine, as_of=DAYS[19]) == ["REAL"]
    refresh_adjusted_prices(engine, as_of=DAYS[19])
    assert tickers_behind_actions(engine, as_of=DAYS[19]) == []
