"""Writes and reads of price history (``daily_prices``, ``intraday_bars``).

Every write is one transaction. Rows reach the database in chunks of bounded size, so a
caller can stream a large range through without the database driver building one giant
statement; what the caller holds in memory is up to the caller.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from quote_pipeline.compat import batched
from quote_pipeline.price_bars import DailyBar, IntradayBar, bar_problem
from quote_pipeline.storage.faults import crash_point
from quote_pipeline.storage.repository import IN_LIST_LIMIT, as_date, dialect_insert, transaction
from quote_pipeline.storage.schema import daily_prices, intraday_bars

DEFAULT_CHUNK_ROWS = 5_000

_T = TypeVar("_T")

_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
_DAILY_UPDATE = (
    *_PRICE_COLUMNS,
    "change",
    "change_percent",
    "vwap",
    "fetched_at",
    "price_basis",
    "source",
)
_INTRADAY_UPDATE = (*_PRICE_COLUMNS, "fetched_at")


def _daily_row(bar: DailyBar) -> dict[str, Any]:
    return {
        "ticker": bar.symbol,
        "date": bar.day,
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
        "change": bar.change,
        "change_percent": bar.change_percent,
        "vwap": bar.vwap,
        "fetched_at": bar.fetched_at,
        "price_basis": bar.price_basis,
        "source": bar.source,
    }


def _intraday_row(bar: IntradayBar) -> dict[str, Any]:
    return {
        "ticker": bar.symbol,
        "bar_start": bar.bar_start,
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
        "fetched_at": bar.fetched_at,
    }


def _upsert(conn: Connection, table: sa.Table, keys: Sequence[str], columns: Sequence[str]) -> Any:
    insert = dialect_insert(conn, table)
    # Plain inserts would do after the delete; the upsert keeps a concurrent writer of the
    # same rows (a schedule tick beside a backfill) from failing on the primary key.
    # RETURNING makes SQLAlchemy send the rows as multi-row VALUES pages
    # ("insertmanyvalues"); without it psycopg2's executemany costs a round trip per row.
    return insert.on_conflict_do_update(
        index_elements=list(keys), set_={c: insert.excluded[c] for c in columns}
    ).returning(table.c[keys[0]])


@dataclass(frozen=True, slots=True)
class DailyReplaceSummary:
    """What one replacement of a range of daily prices changed."""

    rows_deleted: int  # rows of the symbols in the range before the write
    rows_written: int  # rows of the symbols in the range after it
    statements: int  # bulk insert statements (chunks) sent


def replace_daily_prices(
    engine: Engine,
    symbols: Sequence[str],
    start: date,
    end: date,
    bars: Iterable[DailyBar],
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    starts: Mapping[str, date] | None = None,
) -> DailyReplaceSummary:
    """Make ``bars`` exactly the rows of ``symbols`` dated ``start`` to ``end``.

    One transaction: the range's rows of those symbols are deleted and ``bars`` inserted
    (as bulk upserts keyed (ticker, date), ``chunk_rows`` at a time), so no old row outlives
    a re-materialization and no reader ever sees the range half written. Rows of other
    symbols, or outside the range, are never touched. ``starts`` narrows a symbol's replaced
    range to begin later (where the API's history for it begins), so rows older than what
    the API still serves are kept. A bar outside ``symbols`` and range, or a repeated
    (ticker, date), is a caller's bug and raises ValueError before anything changes. Each
    row records ``bar.source``, the provider that served it.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    wanted = set(symbols)
    seen: set[tuple[str, date]] = set()

    def checked(bar: DailyBar) -> dict[str, Any]:
        if bar.symbol not in wanted or not start <= bar.day <= end:
            raise ValueError(f"{bar.symbol} {bar.day} is outside the range being replaced")
        key = (bar.symbol, bar.day)
        if key in seen:
            raise ValueError(f"{bar.symbol} {bar.day} appears twice")
        seen.add(key)
        return _daily_row(bar)

    deleted = written = statements = 0
    with engine.begin() as conn:
        by_start: dict[date, list[str]] = {}
        for symbol in sorted(wanted):
            by_start.setdefault(max(start, (starts or {}).get(symbol, start)), []).append(symbol)
        for first_day, group in by_start.items():
            for chunk in batched(group, IN_LIST_LIMIT):
                result = conn.execute(
                    sa.delete(daily_prices).where(
                        daily_prices.c.ticker.in_(chunk),
                        daily_prices.c.date.between(first_day, end),
                    )
                )
                deleted += result.rowcount
        crash_point("after_daily_delete")  # tests only: see storage/faults.py
        upsert = _upsert(conn, daily_prices, ("ticker", "date"), _DAILY_UPDATE)
        for rows in batched(map(checked, bars), chunk_rows):
            written += len(conn.execute(upsert, list(rows)).all())
            statements += 1
    return DailyReplaceSummary(rows_deleted=deleted, rows_written=written, statements=statements)


def upsert_intraday_bars(
    engine: Engine, bars: Iterable[IntradayBar], *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> int:
    """Insert or update ``bars`` keyed (ticker, bar_start), in one transaction.

    A bar fetched while still forming is overwritten by the next fetch of the same bar,
    whose prices and volume are further along (or final). Returns the rows written.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    seen: set[tuple[str, datetime]] = set()

    def checked(bar: IntradayBar) -> dict[str, Any]:
        key = (bar.symbol, bar.bar_start)
        if key in seen:
            raise ValueError(f"{bar.symbol} {bar.bar_start.isoformat()} appears twice")
        seen.add(key)
        return _intraday_row(bar)

    written = 0
    with engine.begin() as conn:
        upsert = _upsert(conn, intraday_bars, ("ticker", "bar_start"), _INTRADAY_UPDATE)
        for rows in batched(map(checked, bars), chunk_rows):
            written += len(conn.execute(upsert, list(rows)).all())
            crash_point("after_intraday_chunk")  # tests only: see storage/faults.py
    return written


# --- reads -----------------------------------------------------------------------------------


def read_daily_prices(
    engine: Engine,
    symbols: Iterable[str] | None = None,
    start: date | None = None,
    end: date | None = None,
) -> list[DailyBar]:
    """Stored daily bars (all, or of ``symbols``, dated ``start`` to ``end``), in order."""
    query = sa.select(daily_prices).order_by(daily_prices.c.ticker, daily_prices.c.date)
    query = _filtered(query, daily_prices.c.ticker, daily_prices.c.date, symbols, start, end)
    with engine.connect() as conn:
        return [_daily_bar(row._mapping) for row in conn.execute(query)]


def read_intraday_bars(
    engine: Engine,
    symbols: Iterable[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[IntradayBar]:
    """Stored 5-minute bars (all, or of ``symbols``, starting ``start`` to ``end``), in order."""
    query = sa.select(intraday_bars).order_by(intraday_bars.c.ticker, intraday_bars.c.bar_start)
    query = _filtered(query, intraday_bars.c.ticker, intraday_bars.c.bar_start, symbols, start, end)
    with engine.connect() as conn:
        return [_intraday_bar(row._mapping) for row in conn.execute(query)]


def _filtered(
    query: sa.Select[Any],
    ticker: sa.ColumnElement[str],
    when: sa.ColumnElement[Any],
    symbols: Iterable[str] | None,
    start: Any,
    end: Any,
) -> sa.Select[Any]:
    if symbols is not None:
        query = query.where(ticker.in_(list(symbols)))
    if start is not None:
        query = query.where(when >= start)
    if end is not None:
        query = query.where(when <= end)
    return query


def _daily_bar(row: Any) -> DailyBar:
    return DailyBar(
        symbol=row["ticker"],
        day=row["date"],
        open=row["open"],
        high=row["high"],
        low=row["low"],
        close=row["close"],
        volume=row["volume"],
        change=row["change"],
        change_percent=row["change_percent"],
        vwap=row["vwap"],
        fetched_at=row["fetched_at"],
        price_basis=row["price_basis"],
        source=row["source"],
    )


def _intraday_bar(row: Any) -> IntradayBar:
    return IntradayBar(
        symbol=row["ticker"],
        bar_start=row["bar_start"],
        open=row["open"],
        high=row["high"],
        low=row["low"],
        close=row["close"],
        volume=row["volume"],
        fetched_at=row["fetched_at"],
    )


# --- checks ----------------------------------------------------------------------------------


@dataclass
class BarConsistency:
    """The result of checking stored bars: how many, how many bad, a few examples."""

    rows_checked: int = 0
    inconsistent: int = 0
    examples: list[str] = field(default_factory=list)


def _consistency(
    engine: Engine, query: sa.Select[Any], label_column: str, example_limit: int
) -> BarConsistency:
    result = BarConsistency()
    # Compared in Python, as exact Decimals: on SQLite the prices are text, and a SQL
    # comparison would be lexicographic ("9.5" > "10.2") or go through floats.
    with engine.connect() as conn:
        rows = conn.execution_options(yield_per=DEFAULT_CHUNK_ROWS).execute(query)
        for row in rows:
            result.rows_checked += 1
            problem = bar_problem(row.open, row.high, row.low, row.close, row.volume)
            if problem is not None:
                result.inconsistent += 1
                if len(result.examples) < example_limit:
                    when = row._mapping[label_column]
                    shown = when.isoformat() if hasattr(when, "isoformat") else str(when)
                    result.examples.append(f"{row.ticker} {shown}: {problem}")
    return result


def daily_price_consistency(
    engine: Engine, symbols: Sequence[str], start: date, end: date, *, example_limit: int = 20
) -> BarConsistency:
    """Check the stored daily bars of ``symbols`` from ``start`` to ``end``."""
    columns = [daily_prices.c[c] for c in ("ticker", "date", *_PRICE_COLUMNS)]
    query = _filtered(
        sa.select(*columns), daily_prices.c.ticker, daily_prices.c.date, symbols, start, end
    )
    return _consistency(engine, query, "date", example_limit)


def intraday_bar_consistency(
    engine: Engine,
    symbols: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    example_limit: int = 20,
) -> BarConsistency:
    """Check the stored 5-minute bars of ``symbols`` starting from ``start`` to ``end``."""
    columns = [intraday_bars.c[c] for c in ("ticker", "bar_start", *_PRICE_COLUMNS)]
    query = _filtered(
        sa.select(*columns),
        intraday_bars.c.ticker,
        intraday_bars.c.bar_start,
        symbols,
        start,
        end,
    )
    return _consistency(engine, query, "bar_start", example_limit)


def missing_sessions(
    engine: Engine, symbols: Sequence[str], sessions: Sequence[date]
) -> dict[str, list[date]]:
    """Sessions without a row, per symbol, between the symbol's first and last stored row.

    ``sessions`` are the trading days of the range (sorted). Before a symbol's first row and
    after its last nothing counts as missing: a listing or delisting inside the range is not
    a gap. Symbols without any row in the range are left out (they have no data, not gaps).
    """
    if not sessions:
        return {}
    start, end = sessions[0], sessions[-1]
    spans: dict[str, tuple[int, date, date]] = {}
    with engine.connect() as conn:
        for chunk in batched(sorted(set(symbols)), IN_LIST_LIMIT):
            query = (
                sa.select(
                    daily_prices.c.ticker,
                    sa.func.count(),
                    sa.func.min(daily_prices.c.date),
                    sa.func.max(daily_prices.c.date),
                )
                .where(daily_prices.c.ticker.in_(chunk), daily_prices.c.date.between(start, end))
                .group_by(daily_prices.c.ticker)
            )
            for ticker, count, first, last in conn.execute(query):
                spans[ticker] = (count, as_date(first), as_date(last))
        missing: dict[str, list[date]] = {}
        for ticker, (count, first, last) in sorted(spans.items()):
            expected = sessions[bisect_left(sessions, first) : bisect_right(sessions, last)]
            if count >= len(expected):
                continue
            # Only the (few) tickers with gaps have their dates read back.
            stored = set(
                conn.scalars(
                    sa.select(daily_prices.c.date).where(
                        daily_prices.c.ticker == ticker,
                        daily_prices.c.date.between(first, last),
                    )
                )
            )
            missing[ticker] = [day for day in expected if day not in stored]
    return missing


def daily_rows_by_day_and_source(
    engine: Engine, start: date, end: date
) -> dict[date, dict[str, int]]:
    """Rows ``daily_prices`` holds per day and provider from ``start`` to ``end``: each daily
    partition's split per provider, as stored (a row rewritten by a fallback counts once)."""
    query = (
        sa.select(daily_prices.c.date, daily_prices.c.source, sa.func.count())
        .where(daily_prices.c.date.between(start, end))
        .group_by(daily_prices.c.date, daily_prices.c.source)
    )
    found: dict[date, dict[str, int]] = {}
    with engine.connect() as conn:
        for day, source, count in conn.execute(query):
            found.setdefault(as_date(day), {})[source] = count
    return found


def daily_prices_by_source(bind: Engine | Connection, start: date, end: date) -> dict[str, int]:
    """How many rows ``daily_prices`` holds per provider (``source``) for the days ``start``
    to ``end`` (every ticker's; providers without a row are left out): a partition's split
    per provider."""
    query = (
        sa.select(daily_prices.c.source, sa.func.count())
        .where(daily_prices.c.date.between(start, end))
        .group_by(daily_prices.c.source)
    )
    with transaction(bind) as conn:
        return {source: count for source, count in conn.execute(query).tuples()}


__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "BarConsistency",
    "DailyReplaceSummary",
    "daily_price_consistency",
    "daily_prices_by_source",
    "daily_rows_by_day_and_source",
    "intraday_bar_consistency",
    "missing_sessions",
    "read_daily_prices",
    "read_intraday_bars",
    "replace_daily_prices",
    "upsert_intraday_bars",
]
