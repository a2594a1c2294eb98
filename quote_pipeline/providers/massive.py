"""Massive (formerly Polygon.io) as a :class:`~quote_pipeline.providers.base.MarketDataProvider`."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import TypeVar

from quote_pipeline.fetch_engine import RequestFunction, SymbolResult
from quote_pipeline.fmp.history import SymbolHistory
from quote_pipeline.massive.client import MassiveClient
from quote_pipeline.massive.errors import MassiveEndpointRestricted, MassiveError
from quote_pipeline.massive.history import daily_aggs_request, grouped_daily
from quote_pipeline.massive.quotes import probe_snapshot, snapshot_request
from quote_pipeline.models import FailureKind, Quote
from quote_pipeline.price_bars import DailyBar
from quote_pipeline.providers.base import (
    ClientProvider,
    GroupedDay,
    HistoryRequest,
    QuoteFetchResult,
    QuotePlan,
)

NAME = "massive"
T = TypeVar("T")

# A share class: FMP spells it BRK-B, Massive BRK.B. Tracked symbols may use either.
_SHARE_CLASS = re.compile(r"([A-Z]+)-([A-Z]{1,2})")


def massive_ticker(symbol: str) -> str:
    """How Massive spells a tracked symbol (``BRK-B`` → ``BRK.B``; others unchanged)."""
    return _SHARE_CLASS.sub(r"\1.\2", symbol) if _SHARE_CLASS.fullmatch(symbol) else symbol


def _respelled(request: RequestFunction[T], respell: Callable[[T, str], T]) -> RequestFunction[T]:
    """``request`` asking Massive's spelling of each symbol, its results under the symbol
    the caller asked for."""

    def ask(unit: Sequence[str]) -> list[SymbolResult[T]]:
        ours = {massive_ticker(s): s for s in unit}
        results = request(list(ours))
        return [
            SymbolResult(
                ours.get(r.symbol, r.symbol),
                None if r.value is None else respell(r.value, ours.get(r.symbol, r.symbol)),
                None
                if r.failure is None
                else replace(r.failure, symbol=ours.get(r.symbol, r.symbol)),
                r.ask_alone,
            )
            if r.symbol in ours and ours[r.symbol] != r.symbol
            else r
            for r in results
        ]

    return ask


def _quote_as(quote: Quote, symbol: str) -> Quote:
    return replace(quote, symbol=symbol)


def _history_as(history: SymbolHistory[DailyBar], symbol: str) -> SymbolHistory[DailyBar]:
    history.symbol = symbol
    history.bars = [replace(bar, symbol=symbol) for bar in history.bars]
    if history.failure is not None:
        history.failure = replace(history.failure, symbol=symbol)
    return history


@dataclass
class MassiveProvider(ClientProvider):
    """Massive's full-market snapshot (many tickers per request; paid plans, 15-minute
    delayed on Starter), its per-ticker daily aggregates and its grouped daily bars (every
    US stock for one session in one request, on every plan). Bars are asked
    ``adjusted=false``: as traded, like every stored `daily_prices` row."""

    client: MassiveClient
    name: str = NAME

    @property
    def has_grouped_daily(self) -> bool:
        return True

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
            _respelled(snapshot_request(self.client), _quote_as),
            symbols_per_request=self.client.settings.tickers_per_snapshot,
            log=log,
        )
        return QuoteFetchResult.from_report(report, used_batch=True, provider=self.name)

    def daily_bars_request(self, start: date, end: date) -> HistoryRequest:
        return _respelled(daily_aggs_request(self.client, start, end), _history_as)

    def grouped_daily(self, day: date, symbols: Collection[str]) -> GroupedDay:
        spelled = {massive_ticker(s) for s in symbols}
        try:
            found = grouped_daily(self.client, day, adjusted=False, tickers=spelled)
        except MassiveEndpointRestricted as exc:
            # A plan refuses some dates (before its history horizon, today before the
            # close): that session's failure, passed on; the other sessions stand.
            raise MassiveError(FailureKind.NOT_IN_PLAN, str(exc), status=exc.status) from None
        # A share class under FMP's spelling too (BRK.B and BRK-B): whichever is tracked.
        for ticker, bar in list(found.bars.items()):
            if "." in ticker and (fmp_spelling := ticker.replace(".", "-")) not in found.bars:
                found.bars[fmp_spelling] = replace(bar, symbol=fmp_spelling)
        for ticker, reason in list(found.rejected.items()):
            if "." in ticker:
                found.rejected.setdefault(ticker.replace(".", "-"), reason)
        return found
