"""History storage on SQLite and PostgreSQL: exact replacement, upserts, chunking, checks."""

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from quote_pipeline.market_calendar import sessions_between
from quote_pipeline.price_bars import DailyBar, IntradayBar
from quote_pipeline.storage.history import (
    daily_price_consistency,
    daily_prices_by_source,
    intraday_bar_consistency,
    missing_sessions,
    read_daily_prices,
    read_intraday_bars,
    replace_daily_prices,
    upsert_intraday_bars,
)
from quote_pipeline.storage.schema import daily_prices

T0 = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)
MARCH = sessions_between(date(2026, 3, 2), date(2026, 3, 31))


def daily(symbol: str, day: date, close: str = "10.5", **fields: object) -> DailyBar:
    values: dict[str, object] = {
        "open": Decimal("10"),
        "high": Decimal("11"),
        "low": Decimal("9.5"),
        "close": Decimal(close),
        "volume": 3_000_000_000,
        "change": Decimal("0.5"),
        "change_percent": Decimal("5"),
        "vwap": Decimal("10.25"),
        "fetched_at": T0,
        **fields,
    }
    return DailyBar(symbol=symbol, day=day, **values)  # type: ignore[arg-type]


def bar(symbol: str, start: datetime, close: str = "10.5", volume: int = 10) -> IntradayBar:
    return IntradayBar(
        symbol=symbol,
        bar_start=start,
        open=Decimal("10"),
        high=max(Decimal("11"), Decimal(close)),
        low=min(Decimal("9.5"), Decimal(close)),
        close=Decimal(close),
        volume=volume,
        fetched_at=T0,
    )


def test_replace_makes_the_range_exactly_the_new_rows(engine: Engine) -> None:
    first = [daily(s, d) for s in ("AAPL", "MSFT") for d in MARCH]
    summary = replace_daily_prices(engine, ["AAPL", "MSFT"], MARCH[0], MARCH[-1], first)
    assert (summary.rows_deleted, summary.rows_written) == (0, 2 * len(MARCH))
    # Neighbours that must survive: another ticker in the range, the same ticker outside it.
    replace_daily_prices(engine, ["NVDA"], MARCH[0], MARCH[-1], [daily("NVDA", MARCH[0])])
    april = date(2026, 4, 1)
    replace_daily_prices(engine, ["AAPL"], april, april, [daily("AAPL", april)])

    # Again, with one day fewer for AAPL (a leftover to remove) and a new close everywhere.
    second = [daily("AAPL", d, close="10.75") for d in MARCH[1:]]
    second += [daily("MSFT", d, close="10.75") for d in MARCH]
    summary = replace_daily_prices(engine, ["AAPL", "MSFT"], MARCH[0], MARCH[-1], second)
    assert summary.rows_deleted == 2 * len(MARCH)
    assert summary.rows_written == 2 * len(MARCH) - 1

    rows = read_daily_prices(engine, ["AAPL", "MSFT"], MARCH[0], MARCH[-1])
    assert len(rows) == len({(r.symbol, r.day) for r in rows}) == 2 * len(MARCH) - 1
    assert {r.close for r in rows} == {Decimal("10.75")}
    assert MARCH[0] not in {r.day for r in rows if r.symbol == "AAPL"}
    assert [r.day for r in read_daily_prices(engine, ["NVDA"])] == [MARCH[0]]
    assert [r.day for r in read_daily_prices(engine, ["AAPL"], april, april)] == [april]
    stored = rows[0]
    assert stored.volume == 3_000_000_000 and stored.vwap == Decimal("10.25")
    assert stored.fetched_at == T0


def test_each_row_records_the_provider_that_served_it(engine: Engine) -> None:
    assert daily("AAPL", MARCH[0]).source == "fmp"  # the default
    bars = [daily("AAPL", d) for d in MARCH[:3]]
    bars += [daily("MSFT", d, source="massive") for d in MARCH[:2]]
    replace_daily_prices(engine, ["AAPL", "MSFT"], MARCH[0], MARCH[2], bars)
    assert read_daily_prices(engine) == sorted(bars, key=lambda b: (b.symbol, b.day))
    assert daily_prices_by_source(engine, MARCH[0], MARCH[2]) == {"fmp": 3, "massive": 2}
    assert daily_prices_by_source(engine, MARCH[2], MARCH[-1]) == {"fmp": 1}
    assert daily_prices_by_source(engine, MARCH[-1], MARCH[-1]) == {}

    # Re-fetching a range from the other provider relabels its rows.
    again = [daily("AAPL", MARCH[1], source="massive")]
    replace_daily_prices(engine, ["AAPL"], MARCH[1], MARCH[1], again)
    stored = {(b.symbol, b.day): b.source for b in read_daily_prices(engine, ["AAPL"])}
    assert stored == {
        ("AAPL", MARCH[0]): "fmp",
        ("AAPL", MARCH[1]): "massive",
        ("AAPL", MARCH[2]): "fmp",
    }
    with engine.connect() as conn:  # inside the caller's transaction too
        assert daily_prices_by_source(conn, MARCH[0], MARCH[2]) == {"fmp": 2, "massive": 3}


def test_replace_can_start_later_for_a_symbol_and_keep_older_rows(engine: Engine) -> None:
    replace_daily_prices(engine, ["AAPL"], MARCH[0], MARCH[-1], [daily("AAPL", d) for d in MARCH])
    # The API now serves AAPL only from the third day (its plan's horizon moved).
    newer = [daily("AAPL", d, close="11.25") for d in MARCH[2:]]
    summary = replace_daily_prices(
        engine, ["AAPL"], MARCH[0], MARCH[-1], newer, starts={"AAPL": MARCH[2]}
    )
    assert summary.rows_deleted == len(MARCH) - 2
    rows = {r.day: r.close for r in read_daily_prices(engine, ["AAPL"])}
    assert sorted(rows) == MARCH
    assert [rows[d] for d in MARCH[:2]] == [Decimal("10.5")] * 2
    assert {rows[d] for d in MARCH[2:]} == {Decimal("11.25")}


def test_replace_is_one_transaction(engine: Engine) -> None:
    replace_daily_prices(engine, ["AAPL"], MARCH[0], MARCH[-1], [daily("AAPL", d) for d in MARCH])

    def bars_then_a_bad_one():
        yield from (daily("AAPL", d, close="99") for d in MARCH)
        yield daily("AAPL", date(2026, 5, 1))  # outside the range: a caller's bug

    with pytest.raises(ValueError, match="outside the range"):
        replace_daily_prices(
            engine, ["AAPL"], MARCH[0], MARCH[-1], bars_then_a_bad_one(), chunk_rows=3
        )
    rows = read_daily_prices(engine, ["AAPL"])
    assert len(rows) == len(MARCH)
    assert {r.close for r in rows} == {Decimal("10.5")}  # nothing deleted, nothing written

    with pytest.raises(ValueError, match="appears twice"):
        replace_daily_prices(engine, ["AAPL"], MARCH[0], MARCH[0], [daily("AAPL", MARCH[0])] * 2)
    assert len(read_daily_prices(engine, ["AAPL"])) == len(MARCH)


def test_rows_go_in_chunks(engine: Engine) -> None:
    bars = (daily("AAPL", d) for d in MARCH)  # a generator: nothing needs the whole list
    summary = replace_daily_prices(engine, ["AAPL"], MARCH[0], MARCH[-1], bars, chunk_rows=5)
    assert summary.statements == -(-len(MARCH) // 5)
    assert summary.rows_written == len(MARCH)


def test_decimals_stay_exact(engine: Engine) -> None:
    day = MARCH[0]
    exact = daily("DUST", day, close="0.000012345678901234", low=Decimal("0.000012345678901233"))
    replace_daily_prices(engine, ["DUST"], day, day, [exact])
    (row,) = read_daily_prices(engine, ["DUST"])
    assert row.close == Decimal("0.000012345678901234")
    assert row.low == Decimal("0.000012345678901233")


def test_intraday_upsert_completes_a_forming_bar(engine: Engine) -> None:
    start = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    forming = bar("AAPL", start + timedelta(minutes=5), close="10.1", volume=3)
    assert upsert_intraday_bars(engine, [bar("AAPL", start), forming]) == 2
    complete = bar("AAPL", start + timedelta(minutes=5), close="10.9", volume=40)
    later = dataclasses.replace(complete, fetched_at=T0 + timedelta(minutes=5))
    assert upsert_intraday_bars(engine, [bar("AAPL", start), later], chunk_rows=1) == 2
    rows = read_intraday_bars(engine, ["AAPL"])
    assert [r.bar_start for r in rows] == [start, start + timedelta(minutes=5)]
    assert rows[1].close == Decimal("10.9") and rows[1].volume == 40
    assert rows[1].fetched_at == T0 + timedelta(minutes=5)
    assert all(r.bar_start.utcoffset() == timedelta(0) for r in rows)
    with pytest.raises(ValueError, match="appears twice"):
        upsert_intraday_bars(engine, [later, later])


def insert_raw(engine: Engine, **row: object) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.insert(daily_prices), [{"fetched_at": T0, "price_basis": "as_traded", **row}]
        )


def test_consistency_compares_exact_decimals(engine: Engine) -> None:
    day = MARCH[0]
    good = [daily("AAPL", d) for d in MARCH]
    replace_daily_prices(engine, ["AAPL"], MARCH[0], MARCH[-1], good)
    # As text, "9.5" > "10.2"; as numbers it is a fine bar. And a really bad one:
    fine = daily(
        "TEXT",
        day,
        open=Decimal("9.5"),
        high=Decimal("10.2"),
        low=Decimal("9.5"),
        close=Decimal("10"),
    )
    replace_daily_prices(engine, ["TEXT"], day, day, [fine])
    insert_raw(
        engine,
        ticker="BAD",
        date=day,
        open=Decimal("10"),
        high=Decimal("9.99"),
        low=Decimal("9"),
        close=Decimal("9.5"),
        volume=-1,
    )
    found = daily_price_consistency(engine, ["AAPL", "TEXT", "BAD"], MARCH[0], MARCH[-1])
    assert found.rows_checked == len(MARCH) + 2
    assert found.inconsistent == 1
    assert found.examples[0].startswith(f"BAD {day.isoformat()}: high 9.99 below")
    # Out of scope (another ticker list or range) means not looked at.
    assert daily_price_consistency(engine, ["AAPL"], MARCH[0], MARCH[-1]).inconsistent == 0

    start = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    negative = IntradayBar("AAPL", start, Decimal(1), Decimal(1), Decimal(1), Decimal(1), -5, T0)
    upsert_intraday_bars(engine, [negative, bar("AAPL", start + timedelta(minutes=5))])
    found = intraday_bar_consistency(engine, ["AAPL"], start, start + timedelta(hours=1))
    assert (found.rows_checked, found.inconsistent) == (2, 1)
    assert "volume -5 is negative" in found.examples[0]


def test_missing_sessions_inside_each_tickers_span(engine: Engine) -> None:
    # GAPPY misses two sessions; LATE lists mid-month (no gap); EMPTY has nothing stored.
    gappy = [daily("GAPPY", d) for d in MARCH if d not in (MARCH[3], MARCH[10])]
    late = [daily("LATE", d) for d in MARCH[5:]]
    replace_daily_prices(engine, ["GAPPY", "LATE"], MARCH[0], MARCH[-1], gappy + late)
    gaps = missing_sessions(engine, ["GAPPY", "LATE", "EMPTY"], MARCH)
    assert gaps == {"GAPPY": [MARCH[3], MARCH[10]]}
    assert missing_sessions(engine, ["GAPPY"], []) == {}
    assert missing_sessions(engine, ["GAPPY"], MARCH[4:10]) == {}
