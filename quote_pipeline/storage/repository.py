"""Reads and writes of the project's tables. Every write is one transaction."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from quote_pipeline.models import Quote, normalize_symbols
from quote_pipeline.storage.faults import crash_point
from quote_pipeline.storage.schema import quote_snapshots, stocks, tickers

Bind = Engine | Connection
"""An engine (a transaction of its own) or a connection (the caller's transaction)."""

# Bind parameters in one IN (...) list, well under SQLite's limit of 32,766.
IN_LIST_LIMIT = 1_000


@contextmanager
def transaction(bind: Engine | Connection) -> Iterator[Connection]:
    """A transaction on ``bind``: a new one for an engine, committed at the end; the caller's
    own for a connection, so that several writes can be one transaction."""
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.begin() as conn:
            yield conn


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """INSERT with ``on_conflict_do_*`` for the connection's dialect."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for the {name} dialect (use PostgreSQL or SQLite)")


def copy_csv(
    conn: Connection, table_name: str, buffer: io.StringIO, columns: Sequence[str] = ()
) -> None:
    """PostgreSQL ``COPY table FROM STDIN`` of CSV rows (an empty unquoted field is NULL),
    inside the connection's transaction: one stream instead of a statement per row."""
    buffer.seek(0)
    target = f"{table_name} ({', '.join(columns)})" if columns else table_name
    copy = f"COPY {target} FROM STDIN WITH (FORMAT csv)"
    # The driver's cursor shares the connection, so COPY runs inside this transaction.
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(copy, buffer)
    except conn.dialect.dbapi.Error as exc:  # type: ignore[union-attr]
        # Raised like every other statement's error, so callers catch one kind.
        raise sa.exc.DBAPIError.instance(copy, None, exc, conn.dialect.dbapi.Error) from exc  # type: ignore[union-attr]
    finally:
        cursor.close()


def one_writer_at_a_time(conn: Connection, name: str) -> None:
    """Make concurrent transactions that rewrite ``name`` take turns, until this one ends.

    PostgreSQL: a transaction-scoped advisory lock, so that a second refresh (a manual
    materialization during an automation run) waits and then finds the work done, instead
    of inserting the same keys and failing. SQLite already lets one writer in at a time."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(name))))


def count_rows(bind: Bind, table: sa.Table) -> int:
    """How many rows ``table`` holds."""
    with transaction(bind) as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


@dataclass(frozen=True, slots=True)
class StaleRows:
    """What a derived table lacks: rows of its source without a derived row (``missing``),
    or whose derived row was computed from an older fetch (``outdated``)."""

    missing: int
    outdated: int
    examples: list[str]


def stale_rows(conn: Connection, query: sa.Select[Any], *, example_limit: int) -> StaleRows:
    """Tally ``query``'s (ticker, date, missing) rows, naming the first ``example_limit``."""
    missing = outdated = 0
    examples: list[str] = []
    for ticker, day, is_missing in conn.execute(query):
        if is_missing:
            missing += 1
        else:
            outdated += 1
        if len(examples) < example_limit:
            examples.append(f"{ticker} {day}: {'missing' if is_missing else 'outdated'}")
    return StaleRows(missing, outdated, examples)


def as_date(value: Any) -> date:
    """A DATE value as a date: SQLite hands aggregates of a DATE column back as text."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# --- tickers -------------------------------------------------------------------------------


def list_tickers(engine: Engine) -> list[str]:
    """Every tracked ticker, sorted."""
    with engine.connect() as conn:
        return list(conn.scalars(sa.select(tickers.c.ticker).order_by(tickers.c.ticker)))


def add_tickers(engine: Engine, raw_symbols: Iterable[str], *, now: datetime) -> list[str]:
    """Track the symbols (validated first: one bad symbol adds none). Returns the new ones."""
    symbols = normalize_symbols(raw_symbols)
    if not symbols:
        return []
    with engine.begin() as conn:
        stmt = dialect_insert(conn, tickers).on_conflict_do_nothing(index_elements=["ticker"])
        added = conn.scalars(
            stmt.returning(tickers.c.ticker),
            [{"ticker": s, "added_at": now} for s in symbols],
        ).all()
    return sorted(added)


def remove_tickers(engine: Engine, raw_symbols: Iterable[str]) -> list[str]:
    """Stop tracking the symbols. Returns those that were tracked. Stored quotes stay."""
    symbols = normalize_symbols(raw_symbols)
    if not symbols:
        return []
    with engine.begin() as conn:
        removed = conn.scalars(
            sa.delete(tickers).where(tickers.c.ticker.in_(symbols)).returning(tickers.c.ticker)
        ).all()
    return sorted(removed)


# --- quotes --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuoteWriteSummary:
    """What one write of quotes changed."""

    stocks_upserted: int  # rows inserted or moved forward in ``stocks``
    stale_skipped: int  # quotes older than what ``stocks`` already holds
    snapshots_inserted: int  # new rows in ``quote_snapshots`` (repeats are ignored)


def write_quotes(
    bind: Engine | Connection, quotes: Sequence[Quote], *, written_at: datetime
) -> QuoteWriteSummary:
    """Upsert ``quotes`` into ``stocks`` and append them to ``quote_snapshots``.

    One transaction (``bind``'s own, if it is a connection) and one bulk statement per
    table: all rows land, or none do. A quote
    never replaces a newer one already stored, so re-running an old materialization cannot
    move prices backwards; a repeated (ticker, quoted_at) adds no snapshot. Both tables
    record ``quote.source``, the provider that served it: a newer quote from another provider
    moves the ``stocks`` row to that provider along with its price.
    """
    if len({q.symbol for q in quotes}) != len(quotes):
        raise ValueError("write_quotes got the same ticker twice; de-duplicate first")
    for moment in (written_at, *(t for q in quotes for t in (q.quoted_at, q.fetched_at))):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"naive datetime {moment.isoformat()} refused: use an aware one")
    if not quotes:
        return QuoteWriteSummary(0, 0, 0)
    with transaction(bind) as conn:
        if conn.dialect.name == "postgresql":
            upserted, appended = _write_quotes_postgresql(conn, quotes, written_at)
        else:
            upserted, appended = _write_quotes_executemany(conn, quotes, written_at)
    return QuoteWriteSummary(
        stocks_upserted=upserted,
        stale_skipped=len(quotes) - upserted,
        snapshots_inserted=appended,
    )


def _stock_update(excluded: Any) -> dict[str, Any]:
    return {
        "price": excluded.price,
        "volume": excluded.volume,
        "change": excluded.change,
        "quoted_at": excluded.quoted_at,
        "updated_at": excluded.updated_at,
        "source": excluded.source,
    }


def _write_quotes_executemany(
    conn: Connection, quotes: Sequence[Quote], written_at: datetime
) -> tuple[int, int]:
    """Two bulk statements (SQLAlchemy batches the rows into multi-row VALUES)."""
    insert_stock = dialect_insert(conn, stocks)
    upsert = insert_stock.on_conflict_do_update(
        index_elements=["ticker"],
        set_=_stock_update(insert_stock.excluded),
        where=stocks.c.quoted_at <= insert_stock.excluded.quoted_at,
    ).returning(stocks.c.ticker)
    stock_rows = [
        {
            "ticker": q.symbol,
            "price": q.price,
            "volume": q.volume,
            "change": q.change,
            "quoted_at": q.quoted_at,
            "updated_at": written_at,
            "source": q.source,
        }
        for q in quotes
    ]
    upserted = len(conn.scalars(upsert, stock_rows).all())
    crash_point("after_stocks_upsert")  # tests only: see storage/faults.py
    append = (
        dialect_insert(conn, quote_snapshots)
        .on_conflict_do_nothing(index_elements=["ticker", "quoted_at"])
        .returning(quote_snapshots.c.ticker)
    )
    snapshot_rows = [
        {
            "ticker": q.symbol,
            "price": q.price,
            "volume": q.volume,
            "quoted_at": q.quoted_at,
            "fetched_at": q.fetched_at,
            "source": q.source,
        }
        for q in quotes
    ]
    return upserted, len(conn.scalars(append, snapshot_rows).all())


def _write_quotes_postgresql(
    conn: Connection, quotes: Sequence[Quote], written_at: datetime
) -> tuple[int, int]:
    """COPY the quotes into a temporary table, then upsert from it with two statements.

    Row-by-row parameter binding costs ~5 s for 50,000 quotes; COPY moves them in one
    stream, and the server then does both tables' set-based writes (~10x faster).
    """
    stage = sa.Table(
        "quote_stage",
        sa.MetaData(),
        sa.Column("ticker", sa.String(15)),
        sa.Column("price", sa.Numeric()),
        sa.Column("volume", sa.BigInteger()),
        sa.Column("change", sa.Numeric()),
        sa.Column("quoted_at", sa.DateTime(timezone=True)),
        sa.Column("fetched_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        sa.Column("source", sa.String(16)),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    stage.create(conn)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    updated = written_at.isoformat()
    for q in quotes:
        change = "" if q.change is None else str(q.change)  # empty and unquoted: NULL
        row = (q.symbol, str(q.price), q.volume, change, q.quoted_at.isoformat(),
               q.fetched_at.isoformat(), updated, q.source)  # fmt: skip
        writer.writerow(row)
    copy_csv(conn, "quote_stage", buffer)

    stock_columns = ["ticker", "price", "volume", "change", "quoted_at", "updated_at", "source"]
    insert_stock = postgresql.insert(stocks).from_select(
        stock_columns, sa.select(*(stage.c[c] for c in stock_columns))
    )
    upsert = insert_stock.on_conflict_do_update(
        index_elements=["ticker"],
        set_=_stock_update(insert_stock.excluded),
        where=stocks.c.quoted_at <= insert_stock.excluded.quoted_at,
    )
    upserted = conn.execute(upsert).rowcount
    crash_point("after_stocks_upsert")  # tests only: see storage/faults.py
    snapshot_columns = ["ticker", "price", "volume", "quoted_at", "fetched_at", "source"]
    append = (
        postgresql.insert(quote_snapshots)
        .from_select(snapshot_columns, sa.select(*(stage.c[c] for c in snapshot_columns)))
        .on_conflict_do_nothing(index_elements=["ticker", "quoted_at"])
    )
    return upserted, conn.execute(append).rowcount


@dataclass(frozen=True, slots=True)
class StockRow:
    """A row of the ``stocks`` table."""

    ticker: str
    price: Decimal
    volume: int
    change: Decimal | None
    quoted_at: datetime
    updated_at: datetime
    source: str  # the provider that served the quote: "fmp", "massive"


def read_stocks(engine: Engine, symbols: Iterable[str] | None = None) -> list[StockRow]:
    """Rows of ``stocks`` (all, or those of ``symbols``), sorted by ticker."""
    query = sa.select(stocks).order_by(stocks.c.ticker)
    if symbols is not None:
        query = query.where(stocks.c.ticker.in_(list(symbols)))
    with engine.connect() as conn:
        return [StockRow(**row._mapping) for row in conn.execute(query)]


def count_stocks(bind: Engine | Connection) -> int:
    """How many rows ``stocks`` holds (one per ticker ever quoted and still stored)."""
    with transaction(bind) as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(stocks)) or 0


def stocks_by_source(bind: Bind) -> dict[str, int]:
    """How many rows ``stocks`` holds per provider (``source``): the split per provider of the
    latest quotes. Providers without a row are left out."""
    query = sa.select(stocks.c.source, sa.func.count()).group_by(stocks.c.source)
    with transaction(bind) as conn:
        return {source: count for source, count in conn.execute(query).tuples()}


def count_snapshots(engine: Engine) -> int:
    """How many rows ``quote_snapshots`` holds."""
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(quote_snapshots)) or 0
