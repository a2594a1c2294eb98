"""Storage layer: SQLAlchemy Core tables and transactions. No Dagster, no HTTP."""

from quote_pipeline.storage.database import (
    DATABASE_URL_ENV,
    create_db_engine,
    display_url,
    resolve_database_url,
)
from quote_pipeline.storage.news import (
    DailySentimentRow,
    NewsRow,
    NewsWriteSummary,
    StoredArticle,
    daily_sentiment_for,
    days_fetched_since,
    newest_published,
    read_news,
    rebuild_daily_sentiment,
    write_news,
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
    "DailySentimentRow",
    "NewsRow",
    "NewsWriteSummary",
    "QuoteWriteSummary",
    "StockRow",
    "StoredArticle",
    "add_tickers",
    "count_snapshots",
    "count_stocks",
    "create_db_engine",
    "daily_sentiment_for",
    "days_fetched_since",
    "display_url",
    "list_tickers",
    "newest_published",
    "read_news",
    "read_stocks",
    "rebuild_daily_sentiment",
    "remove_tickers",
    "resolve_database_url",
    "write_news",
    "write_quotes",
]
