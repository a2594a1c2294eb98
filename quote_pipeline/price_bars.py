"""Plain data of price history, shared by the API client and the storage layer (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from quote_pipeline.models import restore_fields

AS_TRADED = "as_traded"
"""Prices and volume as traded that day: what every daily bar fetched now is."""
SPLIT_ADJUSTED = "split_adjusted"
"""A row fetched from FMP's /full before revision 0004: split-adjusted as of its fetched_at."""
PRICE_BASES = (AS_TRADED, SPLIT_ADJUSTED)


@dataclass(frozen=True, slots=True)
class DailyBar:
    """One symbol's open, high, low, close and volume on one trading day."""

    symbol: str
    day: date  # the NYSE session, a New York calendar date
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    change: Decimal | None
    change_percent: Decimal | None
    vwap: Decimal | None
    fetched_at: datetime  # when the response arrived (aware UTC)
    price_basis: str = AS_TRADED  # see AS_TRADED / SPLIT_ADJUSTED
    source: str = "fmp"  # the provider that served it, e.g. "fmp" or "massive"

    def __setstate__(self, state: Sequence[Any]) -> None:
        restore_fields(self, state)  # a bar pickled before `source`: FMP's


@dataclass(frozen=True, slots=True)
class IntradayBar:
    """One symbol's 5-minute bar."""

    symbol: str
    bar_start: datetime  # aware UTC
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    fetched_at: datetime  # aware UTC; a bar still forming is rewritten with a later one


def bar_problem(
    open_: Decimal, high: Decimal, low: Decimal, close: Decimal, volume: int
) -> str | None:
    """Why a bar is inconsistent (prices positive, low ≤ open, close ≤ high, volume ≥ 0), or
    None when it is not."""
    if low <= 0:
        return f"low {low} is not positive"
    if low > min(open_, close):
        return f"low {low} above open {open_} or close {close}"
    if high < max(open_, close):
        return f"high {high} below open {open_} or close {close}"
    if volume < 0:
        return f"volume {volume} is negative"
    return None
