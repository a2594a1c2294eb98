"""FMP API client: HTTP, endpoints, error kinds, retries, pacing, key redaction. No Dagster."""

from quote_pipeline.fmp.client import (
    DEFAULT_BASE_URL,
    ClientSettings,
    FMPClient,
    MissingAPIKeyError,
    QuoteFetchResult,
    parse_quote,
)
from quote_pipeline.fmp.errors import (
    FMPAuthError,
    FMPEndpointRestrictedError,
    FMPError,
    FMPQuotaExhaustedError,
    redact,
)

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
    "parse_quote",
    "redact",
]
