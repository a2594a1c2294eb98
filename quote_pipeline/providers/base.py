"""What every market-data provider offers the pipeline, whatever its vendor. No Dagster.

A provider is a vendor's client and fetch engine behind one small interface: quotes for
symbols, daily bars for symbols over a date range, and — where the vendor has them —
every US stock's daily bar for one session in a single call. The quote refresh and the
daily history ask providers in the configured order and fall back from one to the next
(`fallback.py`); nothing outside a provider's own module knows a vendor's endpoints.

Adding a provider is a module that implements :class:`MarketDataProvider` for its client,
a resource that builds it (`defs/providers.py`) and its name in that registry.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from quote_pipeline.fetch_engine import FetchEngine, FetchReport, SymbolResult
from quote_pipeline.models import Quote, SymbolFailure
from quote_pipeline.price_bars import DailyBar

HistoryRequest = Callable[[Sequence[str]], list[SymbolResult[Any]]]
"""The fetch engine's request for one symbol's bars over a whole range (a
``SymbolResult[SymbolHistory]`` per symbol, see `quote_pipeline/fmp/history.py`)."""


@dataclass(frozen=True, slots=True)
class QuotePlan:
    """How one provider will fetch quotes this run, decided by its probe before any fan-out."""

    provider: str
    multi_symbol: bool
    """Whether the provider's many-symbols-per-request endpoint is used (FMP's batch quote
    on a plan that has it; Massive's snapshot, always)."""


@dataclass(frozen=True, slots=True)
class ProviderRefusal:
    """A provider that cannot serve this run at all (key refused, quota spent or held,
    endpoint outside the plan, unreachable): the run goes on with the next one."""

    provider: str
    reason: str


@dataclass
class QuoteFetchResult:
    """The outcome of fetching quotes: quotes, per-symbol failures and what it cost.

    Each quote says which provider served it (``Quote.source``); ``requests_by_provider``
    and ``fallbacks`` say what each provider was asked and why the run moved on."""

    quotes: list[Quote] = field(default_factory=list)
    failures: list[SymbolFailure] = field(default_factory=list)
    requests_made: int = 0
    used_batch_endpoint: bool = False
    quota_exhausted: bool = False
    attempts: dict[str, int] = field(default_factory=dict)
    """Requests' passes per symbol that failed (how often it was asked in this run)."""
    passes: int = 0
    """Passes over the symbols (1, plus the retry budget's passes that were needed)."""
    requests_by_provider: dict[str, int] = field(default_factory=dict)
    fallbacks: list[str] = field(default_factory=list)
    """Why symbols, or the whole run, went to a later provider, in words."""

    @classmethod
    def combine(cls, results: Sequence[QuoteFetchResult]) -> QuoteFetchResult:
        """One result from several (the fan-in of mapped fetches)."""
        by_provider: dict[str, int] = {}
        for result in results:
            for name, count in result.requests_by_provider.items():
                by_provider[name] = by_provider.get(name, 0) + count
        return cls(
            quotes=[q for r in results for q in r.quotes],
            failures=[f for r in results for f in r.failures],
            requests_made=sum(r.requests_made for r in results),
            used_batch_endpoint=any(r.used_batch_endpoint for r in results),
            quota_exhausted=any(r.quota_exhausted for r in results),
            attempts={s: n for r in results for s, n in r.attempts.items()},
            passes=max((r.passes for r in results), default=0),
            requests_by_provider=by_provider,
            fallbacks=list(dict.fromkeys(note for r in results for note in r.fallbacks)),
        )

    @classmethod
    def from_report(
        cls, report: FetchReport[Quote], *, used_batch: bool, provider: str = "fmp"
    ) -> QuoteFetchResult:
        failed = report.failed_symbols
        return cls(
            quotes=[r.value for r in report.results if r.value is not None],
            failures=list(report.failures),
            requests_made=report.requests_made,
            used_batch_endpoint=used_batch,
            quota_exhausted=report.quota_exhausted,
            attempts={s: n for s, n in report.attempts.items() if s in failed},
            passes=report.passes,
            requests_by_provider={provider: report.requests_made},
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A result pickled before providers (a stored raw_quotes loaded after an upgrade).
        self.__dict__.update({"requests_by_provider": {}, "fallbacks": [], **state})

    def served_by(self) -> dict[str, int]:
        """Quotes per provider."""
        counts: dict[str, int] = {}
        for quote in self.quotes:
            counts[quote.source] = counts.get(quote.source, 0) + 1
        return counts


@dataclass
class GroupedDay:
    """Every US stock's daily bar for one session, from one request."""

    day: date
    bars: dict[str, DailyBar]
    rejected: dict[str, str]
    """Tickers whose row was unusable, and why."""
    fetched_at: datetime


@dataclass
class ClientProvider:
    """What every provider over an HTTP client shares: the client, the run's fetch engine
    over it, and whether its quota memory lets it be asked (``held``: the reason if not)."""

    client: Any
    engine: FetchEngine
    held: Callable[[], str | None] = lambda: None

    @property
    def requests_made(self) -> int:
        return int(self.client.requests_made)

    def held_reason(self) -> str | None:
        return self.held()


class MarketDataProvider(Protocol):
    """One vendor's data, as the pipeline asks for it."""

    name: str
    """What the `source` columns store for the rows it served ("fmp", "massive")."""

    @property
    def engine(self) -> FetchEngine:
        """The run's fetch engine over this provider's client (pool, pacer, retry budget)."""
        ...

    @property
    def requests_made(self) -> int:
        """HTTP requests this provider's client has sent in this run."""
        ...

    @property
    def has_grouped_daily(self) -> bool:
        """Whether :meth:`grouped_daily` answers for the whole market in one request."""
        ...

    def held_reason(self) -> str | None:
        """Why no request may be made now (an exhausted quota remembered), or None."""
        ...

    def prepare_quotes(
        self, symbols: Sequence[str], *, ask_last: Collection[str] = (), probe: bool = True
    ) -> QuotePlan:
        """One cheap request before any fan-out: can this provider serve the run's quotes?
        Raises :class:`~quote_pipeline.api_errors.ApiError` when it cannot. ``probe=False``
        (a fallback, asked only if symbols are left over) plans without a request."""
        ...

    def fetch_quotes(
        self, symbols: Sequence[str], plan: QuotePlan, *, log: Callable[[str], None]
    ) -> QuoteFetchResult:
        """Quotes for ``symbols`` through the engine; every symbol ends up a quote or a
        failure. Raises ApiAuthError/ApiEndpointRestricted when no symbol can succeed."""
        ...

    def daily_bars_request(self, start: date, end: date) -> HistoryRequest:
        """The engine's request for one symbol's as-traded daily bars from start to end."""
        ...

    def grouped_daily(self, day: date, symbols: Collection[str]) -> GroupedDay:
        """The as-traded bars of ``symbols`` on ``day``, from one request for every stock
        (only if has_grouped_daily)."""
        ...


__all__ = [
    "ClientProvider",
    "GroupedDay",
    "HistoryRequest",
    "MarketDataProvider",
    "ProviderRefusal",
    "QuoteFetchResult",
    "QuotePlan",
]
