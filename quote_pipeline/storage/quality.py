"""Data-quality queries behind the asset checks (plain SQL, no Dagster)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from quote_pipeline.storage.schema import stocks, tickers


def invalid_stock_rows(engine: Engine, limit: int = 50) -> list[tuple[str, str, int]]:
    """(ticker, price, volume) of rows whose price is not positive or volume is negative."""
    # The sign survives a cast to float on every backend (SQLite stores the decimal as text).
    price = sa.cast(stocks.c.price, sa.Float)
    query = (
        sa.select(stocks.c.ticker, stocks.c.price, stocks.c.volume)
        .where(sa.or_(price <= 0, stocks.c.volume < 0))
        .order_by(stocks.c.ticker)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [(t, str(p), v) for t, p, v in conn.execute(query)]


def duplicate_tickers(engine: Engine) -> dict[str, int]:
    """Tickers stored more than once, compared as the pipeline writes them (trimmed, upper).

    The primary key stops exact repeats; this catches ``aapl`` beside ``AAPL`` or a padded
    ``'AAPL '`` written by hand or by another tool.
    """
    normalized = sa.func.upper(sa.func.trim(stocks.c.ticker)).label("ticker")
    query = (
        sa.select(normalized, sa.func.count().label("rows"))
        .group_by(normalized)
        .having(sa.func.count() > 1)
        .order_by(normalized)
    )
    with engine.connect() as conn:
        return {ticker: rows for ticker, rows in conn.execute(query)}


def stale_tickers(engine: Engine, *, updated_before: datetime) -> list[str]:
    """Tracked tickers whose stored row was last written before the cut-off.

    Only rows that exist: a tracked ticker that never got a quote has nothing to go stale
    (the refresh's coverage check reports it)."""
    query = (
        sa.select(tickers.c.ticker)
        .select_from(tickers.join(stocks, stocks.c.ticker == tickers.c.ticker))
        .where(stocks.c.updated_at < updated_before)
        .order_by(tickers.c.ticker)
    )
    with engine.connect() as conn:
        return list(conn.scalars(query))
