"""The provider registry: from a run's configured order to the providers that serve it.

Each provider is a plain-Python adapter (`quote_pipeline/providers/`) built by its resource
(`defs/resources.py`) for the run. A provider without a key stands in the chain as one that
cannot be asked, so the run says so in words and uses the next one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import dagster as dg

from quote_pipeline.defs.metadata import counts_text
from quote_pipeline.defs.resources import (
    PROVIDER_NAMES,
    FMPResource,
    MassiveResource,
    ProviderChoice,
    ProviderResource,
)
from quote_pipeline.providers.base import (
    GroupedDay,
    HistoryRequest,
    MarketDataProvider,
    QuoteFetchResult,
    QuotePlan,
)

_LABELS = {"fmp": "The FMP API", "massive": "The Massive API"}


@dataclass
class UnavailableProvider:
    """A configured provider that cannot be asked at all this run (no key): always skipped."""

    name: str
    reason: str

    engine: Any = None
    requests_made: int = 0
    has_grouped_daily: bool = False

    def held_reason(self) -> str | None:
        return self.reason

    def prepare_quotes(
        self, symbols: Sequence[str], *, ask_last: Collection[str] = (), probe: bool = True
    ) -> QuotePlan:
        raise AssertionError("an unavailable provider is never asked")

    def fetch_quotes(
        self, symbols: Sequence[str], plan: QuotePlan, *, log: Callable[[str], None]
    ) -> QuoteFetchResult:
        raise AssertionError("an unavailable provider is never asked")

    def daily_bars_request(self, start: date, end: date) -> HistoryRequest:
        raise AssertionError("an unavailable provider is never asked")

    def grouped_daily(self, day: date, symbols: Collection[str]) -> GroupedDay:
        raise AssertionError("an unavailable provider is never asked")


def provider_for(name: str, fmp: FMPResource, massive: MassiveResource) -> MarketDataProvider:
    """The run's provider called ``name`` (one of :data:`PROVIDER_NAMES`)."""
    resources: dict[str, ProviderResource] = {"fmp": fmp, "massive": massive}
    try:
        return resources[name].provider
    except dg.Failure as exc:  # no key: the run goes on with the next provider
        return UnavailableProvider(name, exc.description or f"{name} has no key")


def quote_provider_chain(
    choice: ProviderChoice, fmp: FMPResource, massive: MassiveResource
) -> list[MarketDataProvider]:
    """The quote providers of this run, primary first."""
    return [provider_for(name, fmp, massive) for name in _order(choice.quote_order)]


def history_provider_chain(
    choice: ProviderChoice, fmp: FMPResource, massive: MassiveResource
) -> list[MarketDataProvider]:
    """The daily-history providers of this run, primary first."""
    return [provider_for(name, fmp, massive) for name in _order(choice.history_order)]


def _order(read: Callable[[], list[str]]) -> list[str]:
    try:
        return read()
    except ValueError as exc:  # a misspelt provider: the run fails in one line
        raise dg.Failure(str(exc), allow_retries=False) from None


def refused_by(chain: Sequence[MarketDataProvider]) -> str:
    """Who refused a run, for its one-line failure."""
    if len(chain) == 1:
        return _LABELS.get(chain[0].name, chain[0].name)
    return f"Every provider ({', '.join(p.name for p in chain)})"


def requests_made(chain: Sequence[MarketDataProvider]) -> int:
    return sum(p.requests_made for p in chain)


def describe_plans(plans: Sequence[QuotePlan]) -> str:
    """ "fmp (batch endpoint), then massive (snapshot)": what a quote run will ask."""
    endpoints = {
        ("fmp", True): "batch endpoint",
        ("fmp", False): "single-symbol requests",
        ("massive", True): "snapshot",
    }
    return ", then ".join(
        f"{p.provider} ({endpoints.get((p.provider, p.multi_symbol), 'its endpoint')})"
        for p in plans
    )


def provider_split(result: QuoteFetchResult) -> dict[str, Any]:
    """Quotes and requests per provider, for a materialization: one number per provider
    (they plot run over run) and one line of text."""
    served = result.served_by()
    return {
        **{f"quotes_from_{name}": served.get(name, 0) for name in PROVIDER_NAMES},
        "served_by": counts_text(Counter(served)),
        "api_requests_by_provider": counts_text(Counter(result.requests_by_provider)),
    }


__all__ = [
    "PROVIDER_NAMES",
    "UnavailableProvider",
    "describe_plans",
    "history_provider_chain",
    "provider_for",
    "provider_split",
    "quote_provider_chain",
    "refused_by",
    "requests_made",
]
