"""Revision 0006 on a database with rows, on SQLite and PostgreSQL: ``stocks``,
``quote_snapshots`` and ``daily_prices`` gain ``source``, every stored row kept value for value
and labelled fmp; writers then store the provider that served each row; and back to 0005
with every row."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from quote_pipeline.models import Quote
from quote_pipeline.price_bars import AS_TRADED, SPLIT_ADJUSTED, DailyBar
from quote_pipeline.storage import read_stocks, schema, write_quotes
from quote_pipeline.storage.history import (
    daily_prices_by_source,
    read_daily_prices,
    replace_daily_prices,
)
from quote_pipeline.storage.repository import stocks_by_source
from quote_pipeline.storage.schema_migrations import VERSION_TABLE, current_revision, upgrade
from quote_pipeline_tests.storage import legacy_schema
from quote_pipeline_tests.storage.test_migration_0004 import (
    INT64_MAX,
    NOW,
    ROWS,
    downgrade,
    old_engine,  # noqa: F401 (a fixture)
)
from quote_pipeline_tests.storage.test_migrations import schema_snapshot

BEFORE = "0005"
AFTER = "0006"
TABLES = ("stocks", "quote_snapshots", "daily_prices")
# Rows written at 0005, beside the older ones the 0004 fixture wrote at 0003: a ticker in
# stocks and quote_snapshots, and an as-traded daily row.
ROWS_AT_0005: dict[str, list[dict[str, Any]]] = {
    "stocks": [
        {
            "ticker": "MSFT",
            "price": Decimal("410.1200"),
            "volume": 0,
            "change": None,
            "quoted_at": NOW - timedelta(minutes=5),
            "updated_at": NOW,
        }
    ],
    "quote_snapshots": [
        {
            "ticker": "MSFT",
            "price": Decimal("410.1200"),
            "volume": INT64_MAX,
            "quoted_at": NOW - timedelta(minutes=5),
            "fetched_at": NOW,
        },
        {
            "ticker": "AAPL",
            "price": Decimal("0.00000001"),
            "volume": 2,
            "quoted_at": NOW - timedelta(days=1),
            "fetched_at": NOW - timedelta(days=1),
        },
    ],
    "daily_prices": [
        {
            "ticker": "NVDA",
            "date": date(2026, 11, 24),
            "open": Decimal("180.5"),
            "high": Decimal("182.123456789"),
            "low": Decimal("179.00"),
            "close": Decimal("181"),
            "volume": 123_456_789_012,
            "change": Decimal("0.5"),
            "change_percent": None,
            "vwap": Decimal("180.99"),
            "fetched_at": NOW,
            "price_basis": AS_TRADED,
        }
    ],
}
ROW_COUNTS = {name: len(ROWS[name]) + len(ROWS_AT_0005[name]) for name in TABLES}


def reflected(engine: Engine) -> sa.MetaData:
    """The data tables as the database has them now (at 0005: no ``source`` anywhere)."""
    found = sa.MetaData()
    with engine.connect() as conn:
        found.reflect(conn)
    found.remove(found.tables[VERSION_TABLE])
    return found


@pytest.fixture
def engine_at_0005(old_engine: Engine) -> Iterator[tuple[Engine, sa.MetaData]]:  # noqa: F811
    """The 0004 fixture's database (rows in every table) brought to 0005, with more rows in
    the three tables; and its tables as reflected at 0005."""
    upgrade(old_engine, BEFORE)
    assert current_revision(old_engine) == BEFORE
    at_0005 = reflected(old_engine)
    with old_engine.begin() as conn:
        for name, rows in ROWS_AT_0005.items():
            conn.execute(schema.metadata.tables[name].insert(), rows)
    yield old_engine, at_0005


def read_rows(engine: Engine, tables: sa.MetaData) -> dict[str, list[tuple[str, ...]]]:
    """Every row of ``tables`` (their columns only), each value as its repr: ``Decimal('232.80')``
    and ``Decimal('232.8')`` differ."""
    with engine.connect() as conn:
        return {
            name: [
                tuple(map(repr, row))
                for row in conn.execute(sa.select(table).order_by(*table.columns))
            ]
            for name, table in tables.tables.items()
        }


def sources(engine: Engine) -> dict[str, dict[str, int]]:
    """Table -> source -> rows."""
    with engine.connect() as conn:
        return {
            name: dict(
                conn.execute(
                    sa.select(table.c.source, sa.func.count()).group_by(table.c.source)
                ).all()
            )
            for name in TABLES
            for table in [schema.metadata.tables[name]]
        }


def source_columns(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        return {
            name: next(c for c in inspector.get_columns(name) if c["name"] == "source")
            for name in TABLES
        }


def comparable(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A schema snapshot with SQLite's DDL text spaced alike and its table names unquoted: a
    table that batch mode copied reads ``CREATE TABLE "stocks" (...)``, one column a line."""
    if "ddl" in snapshot:
        ddl = [
            (*row[:3], " ".join((row[3] or "").replace('"', "").split())) for row in snapshot["ddl"]
        ]
        snapshot = {**snapshot, "ddl": ddl}
    return snapshot


def quote(symbol: str, price: str, minutes: int, source: str) -> Quote:
    at = NOW + timedelta(minutes=minutes)
    return Quote(symbol, Decimal(price), 10, None, at, at, source)


def daily_bar(symbol: str, day: date, close: str, source: str) -> DailyBar:
    c = Decimal(close)
    return DailyBar(symbol, day, c, c, c, c, 100, None, None, None, NOW, AS_TRADED, source)


def test_the_upgrade_keeps_every_row_and_labels_it_fmp(
    engine_at_0005: tuple[Engine, sa.MetaData],
) -> None:
    engine, at_0005 = engine_at_0005
    before = read_rows(engine, at_0005)
    assert {name: len(before[name]) for name in TABLES} == ROW_COUNTS

    upgrade(engine, AFTER)

    assert current_revision(engine) == AFTER
    assert read_rows(engine, at_0005) == before  # every table, every row, every value
    assert sources(engine) == {name: {"fmp": count} for name, count in ROW_COUNTS.items()}
    for name, column in source_columns(engine).items():
        assert column["nullable"] is False, name
    # Only the three tables changed, each by one column.
    after = reflected(engine)
    assert set(after.tables) == set(at_0005.tables)
    for name, table in after.tables.items():
        added = [c.name for c in table.columns][len(at_0005.tables[name].columns) :]
        assert added == (["source"] if name in TABLES else []), name

    # Value for value, through the project's readers.
    stocks = read_stocks(engine)
    assert [(r.ticker, r.price, r.volume, r.source) for r in stocks] == [
        ("AAPL", Decimal("232.8000000000000000000000000000000000000001"), INT64_MAX, "fmp"),
        ("MSFT", Decimal("410.1200"), 0, "fmp"),
    ]
    bars = read_daily_prices(engine)
    assert [(b.symbol, b.day, b.close, b.price_basis, b.source) for b in bars] == [
        ("AAPL", date(2020, 8, 28), Decimal("126.01"), SPLIT_ADJUSTED, "fmp"),
        ("AAPL", date(2020, 8, 31), Decimal("129.04"), SPLIT_ADJUSTED, "fmp"),
        ("MSFT", date(2026, 11, 24), Decimal("500"), SPLIT_ADJUSTED, "fmp"),
        ("NVDA", date(2026, 11, 24), Decimal("181"), AS_TRADED, "fmp"),
    ]
    assert str(bars[0].high) == "127.123456789012345678"
    assert stocks_by_source(engine) == {"fmp": 2}
    assert daily_prices_by_source(engine, date(2026, 1, 1), date(2026, 12, 31)) == {"fmp": 2}


def test_writes_after_the_upgrade_store_the_provider(
    engine_at_0005: tuple[Engine, sa.MetaData],
) -> None:
    engine, _ = engine_at_0005
    upgrade(engine)

    # A newer quote from Massive moves AAPL's stocks row to Massive; a new ticker too.
    summary = write_quotes(
        engine,
        [quote("AAPL", "240.5", 1, "massive"), quote("AMD", "150", 1, "massive")],
        written_at=NOW + timedelta(minutes=1),
    )
    assert (summary.stocks_upserted, summary.snapshots_inserted) == (2, 2)
    assert {r.ticker: r.source for r in read_stocks(engine)} == {
        "AAPL": "massive",
        "AMD": "massive",
        "MSFT": "fmp",
    }
    assert stocks_by_source(engine) == {"fmp": 1, "massive": 2}
    # A later FMP quote moves it back; an older Massive one changes nothing.
    write_quotes(engine, [quote("AAPL", "241", 2, "fmp")], written_at=NOW)
    stale = write_quotes(engine, [quote("AAPL", "1", -60, "massive")], written_at=NOW)
    assert stale.stale_skipped == 1
    (aapl,) = read_stocks(engine, ["AAPL"])
    assert (aapl.price, aapl.source) == (Decimal("241"), "fmp")
    assert stocks_by_source(engine) == {"fmp": 2, "massive": 1}
    assert sources(engine)["quote_snapshots"] == {"fmp": 4, "massive": 3}

    day = date(2026, 11, 25)
    replace_daily_prices(
        engine, ["NVDA", "AMD"], day, day, [daily_bar("AMD", day, "150.25", "massive")]
    )
    # Re-fetching an FMP row's range from Massive relabels it.
    nvda_day = date(2026, 11, 24)
    replace_daily_prices(
        engine, ["NVDA"], nvda_day, nvda_day, [daily_bar("NVDA", nvda_day, "181.5", "massive")]
    )
    stored = {(b.symbol, b.day): b.source for b in read_daily_prices(engine)}
    assert stored == {
        ("AAPL", date(2020, 8, 28)): "fmp",
        ("AAPL", date(2020, 8, 31)): "fmp",
        ("MSFT", nvda_day): "fmp",
        ("NVDA", nvda_day): "massive",
        ("AMD", day): "massive",
    }
    assert daily_prices_by_source(engine, nvda_day, day) == {"fmp": 1, "massive": 2}
    assert daily_prices_by_source(engine, day, day) == {"massive": 1}
    assert daily_prices_by_source(engine, date(2020, 1, 1), date(2020, 12, 31)) == {"fmp": 2}
    assert daily_prices_by_source(engine, date(2030, 1, 1), date(2030, 1, 2)) == {}


def test_a_writer_that_names_no_source_still_works_and_writes_fmp(
    engine_at_0005: tuple[Engine, sa.MetaData],
) -> None:
    # An older process (the column unknown to it) writing during or after a deployment.
    engine, _ = engine_at_0005
    upgrade(engine)
    for name, column in source_columns(engine).items():
        assert column["default"] is not None and "fmp" in column["default"], name
    new_day = date(2026, 11, 25)
    with engine.begin() as conn:
        conn.execute(
            legacy_schema.stocks.insert(), [{**ROWS_AT_0005["stocks"][0], "ticker": "OLD"}]
        )
        conn.execute(
            legacy_schema.quote_snapshots.insert(),
            [{**ROWS_AT_0005["quote_snapshots"][0], "ticker": "OLD"}],
        )
        # Every column 0005 has (price_basis included), source left out.
        conn.execute(
            schema.daily_prices.insert(), [{**ROWS_AT_0005["daily_prices"][0], "date": new_day}]
        )
    counts = sources(engine)
    assert counts == {name: {"fmp": count + 1} for name, count in ROW_COUNTS.items()}


def test_the_downgrade_keeps_every_row(engine_at_0005: tuple[Engine, sa.MetaData]) -> None:
    engine, at_0005 = engine_at_0005
    before = read_rows(engine, at_0005)
    schema_at_0005 = schema_snapshot(engine)
    upgrade(engine)
    # Rows served by Massive after the upgrade: their label is lost on the way down
    # (documented), never the rows or their values.
    write_quotes(engine, [quote("AMD", "150", 1, "massive")], written_at=NOW)
    day = date(2026, 11, 25)
    replace_daily_prices(engine, ["AMD"], day, day, [daily_bar("AMD", day, "150.25", "massive")])
    with_new_rows = read_rows(engine, at_0005)
    assert {name: len(with_new_rows[name]) for name in TABLES} == {
        name: count + 1 for name, count in ROW_COUNTS.items()
    }

    downgrade(engine, BEFORE)

    assert current_revision(engine) == BEFORE
    assert read_rows(engine, at_0005) == with_new_rows
    # The schema is 0005's again: columns, keys, the unique constraint, indexes, comments.
    assert comparable(schema_snapshot(engine)) == comparable(schema_at_0005)
    for name, rows in before.items():
        assert set(rows) <= set(with_new_rows[name]), name

    # Up again: every row is labelled fmp, the rows and values kept.
    upgrade(engine)
    assert read_rows(engine, at_0005) == with_new_rows
    assert sources(engine) == {name: {"fmp": count + 1} for name, count in ROW_COUNTS.items()}
