"""FMP API client: HTTP, endpoints, error kinds, retries, pacing, key redaction. No Dagster."""

from quote_pipeline.fmp.client import (
    DEFAULT_BASE_URL,
    ClientSettings,
    FMPClient,
    MissingAPIKeyError,
)
from quote_pipeline.fmp.errors import (
    FMPAuthError,
    FMPEndpointRestrictedError,
    FMPError,
    FMPQuotaExhaustedError,
    redact,
)
from quote_pipeline.fmp.quotes import QuoteFetchResult, fetch_quotes, parse_quote, probe

__all__ = [
    "DEFAULT_BASE_URL",
    "ClientSettings",
    "FMPAuthError",
    "FMPClient",
    "FMPEndpointRestrictedError",
    "FMPError",
    "FMPQuotaExhaustedError",
    "MissingAPIKeyError",
    "QuoteFetchResult",
    "fetch_quotes",
    "parse_quote",
    "probe",
    "redact",
]

# Stock news (news.py), exported after the rest.
from quote_pipeline.fmp.news import (
    NEWS_PATH,
    NewsArticle,
    TickerNews,
    news_request,
    parse_news_rows,
    probe_news,
)

__all__ += [
    "NEWS_PATH",
    "NewsArticle",
    "TickerNews",
    "news_request",
    "parse_news_rows",
    "probe_news",
]
