"""Massive (formerly Polygon.io) as a :class:`~quote_pipeline.providers.base.MarketDataProvider`."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date

from quote_pipeline.fetch_engine import FetchEngine
from quote_pipeline.massive.client import MassiveClient
from quote_pipeline.massive.history import daily_aggs_request, grouped_daily
from quote_pipeline.massive.quotes import probe_snapshot, snapshot_request
from quote_pipeline.providers.base import GroupedDay, HistoryRequest, QuoteFetchResult, QuotePlan

NAME = "massive"


@dataclass
class MassiveProvider:
    """Massive's full-market snapshot (many tickers per request; paid plans, 15-minute
    delayed on Starter), its per-ticker daily aggregates and its grouped daily bars (every
    US stock for one session in one request, on every plan). Bars are asked
    ``adjusted=false``: as traded, like every stored `daily_prices` row."""

    client: MassiveClient
    engine: FetchEngine
    held: Callable[[], str | None] = lambda: None
    name: str = NAME

    @property
    def requests_made(self) -> int:
        return self.client.requests_made

    @property
    def has_grouped_daily(self) -> bool:
        return True

    def held_reason(self) -> str | None:
        return self.held()

    def prepare_quotes(
        self, symbols: Sequence[str], *, ask_last: Collection[str] = (), probe: bool = True
    ) -> QuotePlan:
        if not probe:
            return QuotePlan(self.name, multi_symbol=True)
        avoided = set(ask_last)
        ordered = [s for s in symbols if s not in avoided] or list(symbols)
        self.client.pacer.reset_quota()
        probe_snapshot(self.client, ordered[:1])
        return QuotePlan(self.name, multi_symbol=True)

    def fetch_quotes(
        self, symbols: Sequence[str], plan: QuotePlan, *, log: Callable[[str], None]
    ) -> QuoteFetchResult:
        report = self.engine.fetch(
            symbols,
            snapshot_request(self.client),
            symbols_per_request=self.client.settings.tickers_per_snapshot,
            log=log,
        )
        return QuoteFetchResult.from_report(report, used_batch=True, provider=self.name)

    def daily_bars_request(self, start: date, end: date) -> HistoryRequest:
        return daily_aggs_request(self.client, start, end)

    def grouped_daily(self, day: date) -> GroupedDay:
        return grouped_daily(self.client, day, adjusted=False)
