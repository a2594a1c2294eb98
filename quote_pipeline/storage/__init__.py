"""Storage layer: SQLAlchemy Core tables and transactions. No Dagster, no HTTP."""

from quote_pipeline.storage.database import (
    DATABASE_URL_ENV,
    create_db_engine,
    display_url,
    resolve_database_url,
)
from quote_pipeline.storage.repository import (
    QuoteWriteSummary,
    StockRow,
    add_tickers,
    count_snapshots,
    count_stocks,
    list_tickers,
    read_stocks,
    remove_tickers,
    write_quotes,
)

__all__ = [
    "DATABASE_URL_ENV",
    "QuoteWriteSummary",
    "StockRow",
    "add_tickers",
    "count_snapshots",
    "count_stocks",
    "create_db_engine",
    "display_url",
    "list_tickers",
    "read_stocks",
    "remove_tickers",
    "resolve_database_url",
    "write_quotes",
]
