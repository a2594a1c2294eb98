"""Market-data providers behind one interface, and falling back from one to the next."""

from quote_pipeline.providers.base import (
    GroupedDay,
    HistoryRequest,
    MarketDataProvider,
    ProviderRefusal,
    QuoteFetchResult,
    QuotePlan,
)

__all__ = [
    "GroupedDay",
    "HistoryRequest",
    "MarketDataProvider",
    "ProviderRefusal",
    "QuoteFetchResult",
    "QuotePlan",
]
