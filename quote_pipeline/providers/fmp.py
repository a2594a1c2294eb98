"""Financial Modeling Prep as a :class:`~quote_pipeline.providers.base.MarketDataProvider`."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from quote_pipeline.fmp.client import FMPClient
from quote_pipeline.fmp.history import daily_history_request
from quote_pipeline.fmp.quotes import fetch_quotes
from quote_pipeline.fmp.quotes import probe as probe_quotes
from quote_pipeline.providers.base import (
    ClientProvider,
    GroupedDay,
    HistoryRequest,
    QuoteFetchResult,
    QuotePlan,
)

NAME = "fmp"


@dataclass
class FMPProvider(ClientProvider):
    """FMP's quote endpoints (batch where the plan has it, else one symbol per request) and
    its as-traded end-of-day history, one request per symbol for a whole range. FMP has no
    whole-market daily endpoint on its plans, so there is no grouped daily."""

    client: FMPClient
    endpoint_mode: Literal["auto", "single"] = "auto"
    name: str = NAME

    @property
    def has_grouped_daily(self) -> bool:
        return False

    def prepare_quotes(
        self, symbols: Sequence[str], *, ask_last: Collection[str] = (), probe: bool = True
    ) -> QuotePlan:
        try_batch = self.endpoint_mode == "auto"
        if not probe:  # a fallback: a plan without the batch endpoint answers 402, then alone
            return QuotePlan(self.name, multi_symbol=try_batch)
        use_batch = probe_quotes(self.client, symbols, try_batch=try_batch, ask_last=ask_last)
        return QuotePlan(self.name, multi_symbol=use_batch)

    def fetch_quotes(
        self, symbols: Sequence[str], plan: QuotePlan, *, log: Callable[[str], None]
    ) -> QuoteFetchResult:
        return fetch_quotes(
            self.engine,
            self.client,
            symbols,
            use_batch_endpoint=plan.multi_symbol,
            on_fallback=log,
        )

    def daily_bars_request(self, start: date, end: date) -> HistoryRequest:
        return daily_history_request(self.client, start, end)

    def grouped_daily(self, day: date, symbols: Collection[str]) -> GroupedDay:
        raise NotImplementedError("FMP has no whole-market daily endpoint")
