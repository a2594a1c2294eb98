"""The contract between the pipeline's tables and their readers: every column the reader API
(quote_pipeline.read) promises exists in the live schema the migrations build, on SQLite and
PostgreSQL, with a type and a nullability that fit the dtype promised. A migration that
renames, retypes or re-nulls such a column fails here, not in a notebook. (The Django
example's models are held to the same live schema in django_site/test_models.py.)"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from quote_pipeline import read
from quote_pipeline.storage import create_db_engine, schema

# The live column types (as the database reports them) each promised dtype may be read from.
# SQLite keeps exact decimals as text (the pipeline's ExactDecimal type) and timestamps as
# text without an offset, read back as UTC.
LIVE_TYPES: dict[str, dict[str, tuple[type[sa.types.TypeEngine[Any]], ...]]] = {
    "postgresql": {
        read.EXACT: (sa.Numeric,),
        read.FLOAT64: (sa.Float, sa.Double),
        read.INT64: (sa.BigInteger,),
        read.UTC_TIMESTAMP: (sa.DateTime,),
        read.DATE: (sa.Date,),
        read.TEXT: (sa.String, sa.Text),
        read.BOOLEAN: (sa.Boolean,),
    },
    "sqlite": {
        read.EXACT: (sa.String,),
        read.FLOAT64: (sa.Float, sa.Double),
        read.INT64: (sa.BigInteger, sa.Integer),
        read.UTC_TIMESTAMP: (sa.DateTime,),
        read.DATE: (sa.Date,),
        read.TEXT: (sa.String, sa.Text),
        read.BOOLEAN: (sa.Boolean,),
    },
}
# A float is a Numeric to SQLAlchemy, but never exact.
NOT_EXACT = (sa.Float,)
# Dtypes that cannot hold a NULL: their columns must be NOT NULL.
NEVER_NULL = {read.INT64}


def contract_violations(engine: Engine) -> list[str]:
    """What in the live schema breaks a reader's promise, one line each."""
    inspector = sa.inspect(engine)
    dialect = engine.dialect.name
    live = {
        table: {c["name"]: c for c in inspector.get_columns(table)}
        for table in inspector.get_table_names()
    }
    problems: list[str] = []
    for reader, columns in read.READ_COLUMNS.items():
        for name, dtype in columns.items():
            source = read.READ_SOURCES[reader][name]
            table, column = source.split(".")
            found = live.get(table, {}).get(column)
            where = f"{reader}.{name} ({source})"
            if found is None:
                problems.append(f"{where}: no such column")
                continue
            kind = found["type"]
            fits = isinstance(kind, LIVE_TYPES[dialect][dtype]) and not (
                dtype == read.EXACT and isinstance(kind, NOT_EXACT)
            )
            if not fits:
                problems.append(f"{where}: {kind} cannot be read as {dtype}")
            if dtype == read.UTC_TIMESTAMP and dialect == "postgresql" and not kind.timezone:
                problems.append(f"{where}: {kind} without a time zone, read as UTC")
            if dtype in NEVER_NULL and found["nullable"]:
                problems.append(f"{where}: nullable, but {dtype} holds no NULL")
            declared = schema.metadata.tables[table].columns[column].nullable
            if found["nullable"] and not declared:
                problems.append(f"{where}: nullable, but readers rely on it never being NULL")
    return problems


def test_every_promised_column_is_in_the_live_schema(database_url: str) -> None:
    engine = create_db_engine(database_url)  # migrated to the head, as the pipeline runs
    try:
        assert contract_violations(engine) == []
        assert {source for sources in read.READ_SOURCES.values() for source in sources.values()}
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("change", "violation"),
    [
        (
            "ALTER TABLE stocks RENAME COLUMN price TO last_price",
            "latest_quotes.price (stocks.price): no such column",
        ),
        (
            "ALTER TABLE daily_metrics DROP COLUMN rsi_14",
            "metrics.rsi_14 (daily_metrics.rsi_14): no such column",
        ),
    ],
)
def test_a_migration_that_breaks_a_reader_is_caught(
    database_url: str, change: str, violation: str
) -> None:
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(change)
        assert violation in contract_violations(engine)
    finally:
        engine.dispose()


def test_a_retyped_re_zoned_or_re_nulled_column_is_caught(postgres_url: str) -> None:
    engine = create_db_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE stocks ALTER COLUMN price TYPE double precision")
            conn.exec_driver_sql("ALTER TABLE stocks ALTER COLUMN volume DROP NOT NULL")
            conn.exec_driver_sql("ALTER TABLE stocks ALTER COLUMN quoted_at TYPE timestamp")
            conn.exec_driver_sql("ALTER TABLE daily_prices_adjusted ALTER adj_close DROP NOT NULL")
        problems = contract_violations(engine)
        assert "latest_quotes.price (stocks.price): DOUBLE PRECISION cannot be read as exact" in (
            problems
        )
        assert "latest_quotes.volume (stocks.volume): nullable, but int64 holds no NULL" in (
            problems
        )
        assert (
            "latest_quotes.quoted_at (stocks.quoted_at): TIMESTAMP without a time zone, read as UTC"
        ) in problems
        assert (
            "prices.adj_close (daily_prices_adjusted.adj_close): nullable, but readers rely on "
            "it never being NULL"
        ) in problems
    finally:
        engine.dispose()
