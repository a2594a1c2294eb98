"""Do two providers agree on a price? No Dagster, no database.

The comparison is a statistic, so it is a float (a percentage for display); the prices it
compares stay exact decimals. Delayed data differs legitimately: Massive's Starter plan is
15 minutes behind, FMP's quote is the latest trade; the tolerance is for that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from quote_pipeline.models import Quote


@dataclass(frozen=True, slots=True)
class PriceComparison:
    """One ticker's price from two providers."""

    symbol: str
    ours: Quote
    theirs: Quote

    @property
    def difference_pct(self) -> float:
        """|ours - theirs| as a percentage of theirs (float: a statistic, for display)."""
        return float(abs(self.ours.price - self.theirs.price) / self.theirs.price * 100)

    @property
    def minutes_apart(self) -> float:
        """How far apart the two quotes' times are, in minutes (delayed data shows here)."""
        return abs((self.ours.quoted_at - self.theirs.quoted_at).total_seconds()) / 60

    def row(self) -> dict[str, object]:
        return {
            "ticker": self.symbol,
            f"{self.ours.source}_price": str(self.ours.price),
            f"{self.theirs.source}_price": str(self.theirs.price),
            "difference_pct": round(self.difference_pct, 3),
            "minutes_apart": round(self.minutes_apart, 1),
        }


def sample_symbols(symbols: Sequence[str], size: int) -> list[str]:
    """A stable sample of ``size`` symbols: the same tickers run after run (so a
    disagreement can be followed), spread over the universe by a hash, not its first
    letters."""
    ranked = sorted(set(symbols), key=lambda s: hashlib.blake2b(s.encode(), digest_size=8).digest())
    return sorted(ranked[:size])


def compare_prices(ours: Sequence[Quote], theirs: Sequence[Quote]) -> list[PriceComparison]:
    """The tickers both sides quoted, paired, in symbol order."""
    other = {q.symbol: q for q in theirs if q.price > Decimal(0)}
    return [
        PriceComparison(q.symbol, q, other[q.symbol])
        for q in sorted(ours, key=lambda q: q.symbol)
        if q.symbol in other
    ]


__all__ = ["PriceComparison", "compare_prices", "sample_symbols"]
