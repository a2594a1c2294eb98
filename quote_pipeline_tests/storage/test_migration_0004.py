"""Revision 0004 on a database with rows, on SQLite and PostgreSQL: every row kept value for
value, the stored daily rows labelled split_adjusted, the new tables empty; and back to 0003."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from quote_pipeline.price_bars import AS_TRADED, SPLIT_ADJUSTED, DailyBar
from quote_pipeline.storage import create_db_engine, schema
from quote_pipeline.storage.history import read_daily_prices, replace_daily_prices
from quote_pipeline.storage.schema_migrations import (
    VERSION_TABLE,
    _config,
    _hand_over,
    _migration_lock,
    current_revision,
    upgrade,
)
from quote_pipeline_tests.conftest import drop_all_tables
from quote_pipeline_tests.storage import legacy_schema

BEFORE = "0003"
AFTER = "0004"
NOW = datetime(2026, 11, 25, 15, 42, 30, 123456, tzinfo=UTC)
NEW_YORK = timezone(timedelta(hours=-5))
INT64_MAX = 2**63 - 1
NEW_TABLES = (
    "company_profiles",
    "stock_splits",
    "dividends",
    "daily_prices_adjusted",
    "price_adjustment_state",
)
# The tables 0004 leaves alone, with the columns they had at 0003: those made before
# migrations as legacy_schema froze them, the later ones as schema.py still declares them.
OLD_TABLES: dict[str, sa.Table] = {
    **legacy_schema.metadata.tables,
    **{
        name: schema.metadata.tables[name]
        for name in (
            "symbol_retries",
            "api_quota_state",
            "news_articles",
            "news_article_tickers",
            "daily_sentiment",
        )
    },
}

ROWS: dict[str, list[dict[str, Any]]] = {
    "tickers": [
        {"ticker": "AAPL", "added_at": NOW},
        {"ticker": "^GSPC", "added_at": datetime(2020, 3, 8, 1, 59, 59, 999999, NEW_YORK)},
    ],
    "stocks": [
        {
            "ticker": "AAPL",
            "price": Decimal("232.8000000000000000000000000000000000000001"),
            "volume": INT64_MAX,
            "change": Decimal("-0.00001234"),
            "quoted_at": NOW,
            "updated_at": NOW,
        }
    ],
    "quote_snapshots": [
        {
            "ticker": "AAPL",
            "price": Decimal("232.80"),
            "volume": 1,
            "quoted_at": NOW,
            "fetched_at": NOW,
        }
    ],
    "daily_prices": [
        {
            "ticker": "AAPL",
            "date": date(2020, 8, 28),
            "open": Decimal("126.0125"),
            "high": Decimal("127.123456789012345678"),
            "low": Decimal("125.9999999999999999999"),
            "close": Decimal("126.01"),
            "volume": INT64_MAX,
            "change": Decimal("2.70"),
            "change_percent": Decimal("1.17321167883211678832116788321"),
            "vwap": None,
            "fetched_at": datetime(2020, 9, 1, 20, 0, tzinfo=UTC),
        },
        {
            "ticker": "AAPL",
            "date": date(2020, 8, 31),
            "open": Decimal("127"),
            "high": Decimal("131"),
            "low": Decimal("126"),
            "close": Decimal("129.04"),
            "volume": 0,
            "change": None,
            "change_percent": None,
            "vwap": Decimal("128.5000"),
            "fetched_at": datetime(2020, 9, 1, 20, 0, tzinfo=UTC),
        },
        {
            "ticker": "MSFT",
            "date": date(2026, 11, 24),
            "open": Decimal("0.00000001"),
            "high": Decimal("1E+3"),
            "low": Decimal("0.00000001"),
            "close": Decimal("500"),
            "volume": 12,
            "change": Decimal("-1"),
            "change_percent": Decimal("0"),
            "vwap": Decimal("1.5"),
            "fetched_at": datetime(2026, 11, 24, 22, 0, 0, 1, tzinfo=NEW_YORK),
        },
    ],
    "intraday_bars": [
        {
            "ticker": "AAPL",
            "bar_start": datetime(2026, 11, 24, 9, 30, tzinfo=NEW_YORK),
            "open": Decimal("230.10"),
            "high": Decimal("230.55"),
            "low": Decimal("229.97"),
            "close": Decimal("230.4444444444444444444444"),
            "volume": 4_000_000_000_000,
            "fetched_at": NOW,
        }
    ],
    "api_calls": [{"account": "a" * 64, "sent_at": 1_800_000_000.123456}],
    "symbol_retries": [
        {
            "dataset": "daily_prices",
            "ticker": "AAPL",
            "failure_kind": "timeout",
            "last_error": "read timed out",
            "attempts": 3,
            "runs": 1,
            "first_failed_at": NOW,
            "last_failed_at": NOW,
            "next_attempt_at": None,
            "status": "given_up",
        }
    ],
    "api_quota_state": [
        {
            "account": "b" * 64,
            "exhausted_at": NOW,
            "hold_until": NOW + timedelta(hours=1),
            "reason": "429",
        }
    ],
    "news_articles": [
        {
            "url": "https://example.com/a",
            "published_at": NOW,
            "publisher": None,
            "site": "example.com",
            "title": "Apple splits 4-for-1",
            "text": "…",
            "image": None,
            "fetched_at": NOW,
            "sentiment": 0.4215,
            "sentiment_label": "positive",
        }
    ],
    "news_article_tickers": [{"url": "https://example.com/a", "ticker": "AAPL"}],
    "daily_sentiment": [
        {
            "ticker": "AAPL",
            "day": date(2026, 11, 25),
            "articles": 1,
            "mean_sentiment": 0.4215,
            "positive": 1,
            "negative": 0,
            "neutral": 0,
            "updated_at": NOW,
        }
    ],
}


@pytest.fixture
def old_engine(database_url: str) -> Iterator[Engine]:
    """The test's database at revision 0003, with a row or more in every table."""
    engine = create_db_engine(database_url, upgrade=False)
    drop_all_tables(engine)
    upgrade(engine, BEFORE)
    assert current_revision(engine) == BEFORE
    with engine.begin() as conn:
        for name, rows in ROWS.items():
            conn.execute(OLD_TABLES[name].insert(), rows)
    yield engine
    engine.dispose()


def read_rows(engine: Engine) -> dict[str, list[tuple[str, ...]]]:
    """Every row of the 0003 tables, only their 0003 columns, each value as its repr:
    ``Decimal('232.80')`` and ``Decimal('232.8')`` differ."""
    with engine.connect() as conn:
        return {
            name: [
                tuple(map(repr, row))
                for row in conn.execute(sa.select(table).order_by(*table.primary_key.columns))
            ]
            for name, table in OLD_TABLES.items()
        }


def table_names(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names()) - {VERSION_TABLE}


def price_bases(engine: Engine) -> dict[tuple[str, date], str]:
    table = schema.daily_prices
    with engine.connect() as conn:
        query = sa.select(table.c.ticker, table.c.date, table.c.price_basis)
        return {(ticker, day): basis for ticker, day, basis in conn.execute(query)}


def price_basis_column(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        columns = sa.inspect(conn).get_columns("daily_prices")
    (column,) = [c for c in columns if c["name"] == "price_basis"]
    return column


def downgrade(engine: Engine, revision: str) -> None:
    """Alembic's downgrade, run as schema_migrations.upgrade runs upgrades (it offers none)."""
    with _migration_lock(engine) as conn:
        _hand_over(conn)
        command.downgrade(_config(connection=conn), revision)


def as_traded_bar(symbol: str, day: date, close: str) -> DailyBar:
    c = Decimal(close)
    return DailyBar(symbol, day, c, c, c, c, 100, None, None, None, NOW, AS_TRADED)


def test_the_upgrade_keeps_every_row_and_labels_daily_rows_split_adjusted(
    old_engine: Engine,
) -> None:
    before = read_rows(old_engine)
    assert [len(rows) for rows in before.values()] == [len(ROWS[name]) for name in OLD_TABLES]

    upgrade(old_engine, AFTER)

    assert current_revision(old_engine) == AFTER
    assert read_rows(old_engine) == before
    assert price_bases(old_engine) == {
        (row["ticker"], row["date"]): SPLIT_ADJUSTED for row in ROWS["daily_prices"]
    }
    assert table_names(old_engine) == set(OLD_TABLES) | set(NEW_TABLES)
    with old_engine.connect() as conn:
        for name in NEW_TABLES:
            count = conn.scalar(
                sa.select(sa.func.count()).select_from(schema.metadata.tables[name])
            )
            assert count == 0, name
    # Value for value what was written, read through the project's own reader (which reads
    # the head's schema: the later revisions keep every value).
    upgrade(old_engine)
    bars = read_daily_prices(old_engine, ["AAPL"])
    assert [(b.day, b.close, b.volume, b.price_basis) for b in bars] == [
        (date(2020, 8, 28), Decimal("126.01"), INT64_MAX, SPLIT_ADJUSTED),
        (date(2020, 8, 31), Decimal("129.04"), 0, SPLIT_ADJUSTED),
    ]
    assert str(bars[0].high) == "127.123456789012345678"


def test_rows_written_after_the_upgrade_are_as_traded(old_engine: Engine) -> None:
    upgrade(old_engine)
    day = date(2026, 11, 25)
    replace_daily_prices(old_engine, ["MSFT", "NEW"], day, day, [as_traded_bar("NEW", day, "10")])
    # The next fetch of a legacy row's range replaces it as traded.
    replace_daily_prices(
        old_engine,
        ["AAPL"],
        date(2020, 8, 28),
        date(2020, 8, 28),
        [as_traded_bar("AAPL", date(2020, 8, 28), "504.04")],
    )
    assert price_bases(old_engine) == {
        ("AAPL", date(2020, 8, 28)): AS_TRADED,
        ("AAPL", date(2020, 8, 31)): SPLIT_ADJUSTED,
        ("MSFT", date(2026, 11, 24)): SPLIT_ADJUSTED,
        ("NEW", day): AS_TRADED,
    }


def test_the_price_basis_default_is_left_only_on_sqlite(old_engine: Engine) -> None:
    upgrade(old_engine)
    column = price_basis_column(old_engine)
    assert column["nullable"] is False
    legacy = legacy_schema.daily_prices
    row = {**ROWS["daily_prices"][2], "date": date(2026, 11, 25)}
    if old_engine.dialect.name == "postgresql":
        # No default left: a writer that forgets the basis fails instead of mislabelling.
        assert column["default"] is None
        with (
            pytest.raises(sa.exc.IntegrityError, match="price_basis"),
            old_engine.begin() as conn,
        ):
            conn.execute(legacy.insert(), [row])
    else:
        # SQLite keeps the documented default (dropping it would copy the whole table).
        assert column["default"] == f"'{SPLIT_ADJUSTED}'"
        with old_engine.begin() as conn:
            conn.execute(legacy.insert(), [row])
        assert price_bases(old_engine)[("MSFT", date(2026, 11, 25))] == SPLIT_ADJUSTED


def test_a_fresh_database_gets_the_same_price_basis_column(database_url: str) -> None:
    engine = create_db_engine(database_url, upgrade=False)
    try:
        drop_all_tables(engine)
        upgrade(engine)
        column = price_basis_column(engine)
        assert column["nullable"] is False
        if engine.dialect.name == "postgresql":
            assert column["default"] is None
        else:
            assert column["default"] == f"'{SPLIT_ADJUSTED}'"
    finally:
        engine.dispose()


def test_the_downgrade_keeps_the_daily_rows_and_drops_the_new_tables(old_engine: Engine) -> None:
    before = read_rows(old_engine)
    upgrade(old_engine)
    day = date(2026, 11, 25)
    new_bar = as_traded_bar("NEW", day, "10.50")
    replace_daily_prices(old_engine, ["NEW"], day, day, [new_bar])
    with old_engine.begin() as conn:
        conn.execute(
            schema.stock_splits.insert(),
            [
                {
                    "ticker": "AAPL",
                    "ex_date": date(2020, 8, 31),
                    "numerator": Decimal(4),
                    "denominator": Decimal(1),
                    "split_type": None,
                    "fetched_at": NOW,
                }
            ],
        )

    downgrade(old_engine, BEFORE)

    assert current_revision(old_engine) == BEFORE
    assert table_names(old_engine) == set(OLD_TABLES)
    with old_engine.connect() as conn:
        columns = [c["name"] for c in sa.inspect(conn).get_columns("daily_prices")]
    assert columns == [c.name for c in legacy_schema.daily_prices.columns]
    after = read_rows(old_engine)
    new_row = (
        repr("NEW"),
        repr(day),
        *map(repr, (Decimal("10.50"),) * 4),
        repr(100),
        *map(repr, (None, None, None)),
        repr(NOW),
    )
    assert after == {**before, "daily_prices": sorted([*before["daily_prices"], new_row])}

    # Up again: the label of the row fetched as traded is lost (documented), its prices kept.
    upgrade(old_engine)
    assert set(price_bases(old_engine).values()) == {SPLIT_ADJUSTED}
    assert read_rows(old_engine) == after


def daily_prices_comment(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return sa.inspect(conn).get_table_comment("daily_prices")["text"]


def test_the_downgrade_restores_the_0003_table_comment_on_postgresql(postgres_url: str) -> None:
    # PostgreSQL only: SQLite keeps no comments.
    engine = create_db_engine(postgres_url, upgrade=False)
    try:
        drop_all_tables(engine)
        upgrade(engine, BEFORE)
        at_0003 = daily_prices_comment(engine)
        assert at_0003 == legacy_schema.daily_prices.comment
        upgrade(engine)
        assert daily_prices_comment(engine) == schema.daily_prices.comment
        downgrade(engine, BEFORE)
        assert daily_prices_comment(engine) == at_0003
    finally:
        engine.dispose()
