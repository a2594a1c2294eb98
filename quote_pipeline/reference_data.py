"""Plain data of company reference facts: profiles, stock splits, dividends (no I/O).

Shared by the API parsers and whatever stores or checks them. Amounts are exact decimals as
the API sent them; nothing here judges them (a split of 0:1 or 1:1 is kept as sent and
reported by :attr:`StockSplit.is_valid`, so that an asset check can show it instead of a gap).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, localcontext

RATIO_PRECISION = 34
"""Significant digits of :attr:`StockSplit.ratio` (decimal128's): exact for every ratio of
terminating decimals FMP sends (4:1, 3:2, 1:10), and far past any use for 2:3."""


@dataclass(frozen=True, slots=True)
class CompanyProfile:
    """One company's profile as FMP describes it; None where FMP sent nothing ("" or "NA")."""

    symbol: str
    company_name: str | None
    exchange: str | None  # the short code, e.g. "NASDAQ"
    exchange_full_name: str | None  # e.g. "NASDAQ Global Select"
    currency: str | None
    country: str | None
    sector: str | None
    industry: str | None
    market_cap: Decimal | None  # exact
    is_etf: bool | None
    is_fund: bool | None
    is_adr: bool | None
    is_actively_trading: bool | None
    ipo_date: date | None
    cik: str | None  # kept as the zero-padded string FMP sends: leading zeros matter to EDGAR
    isin: str | None
    cusip: str | None
    website: str | None
    description: str | None
    fetched_at: datetime  # when the response arrived (aware UTC)


@dataclass(frozen=True, slots=True)
class StockSplit:
    """A split on its ex-date: ``numerator`` new shares for every ``denominator`` old ones
    (4:1 is a forward split, 1:10 a reverse one)."""

    symbol: str
    ex_date: date
    numerator: Decimal
    denominator: Decimal
    split_type: str | None

    @property
    def ratio(self) -> Decimal | None:
        """New shares per old share, or None when either side is not positive.

        Divided in a local context so the ambient precision (28 digits by default, or
        whatever a caller set) never rounds an exact ratio such as 1.5 or 0.1.
        """
        if self.numerator <= 0 or self.denominator <= 0:
            return None
        with localcontext() as context:
            context.prec = RATIO_PRECISION
            return self.numerator / self.denominator

    @property
    def is_valid(self) -> bool:
        """True for a split that changes the share count: a positive ratio other than 1."""
        ratio = self.ratio
        return ratio is not None and ratio != 1


@dataclass(frozen=True, slots=True)
class Dividend:
    """One dividend per share, keyed by its ex-dividend date."""

    symbol: str
    ex_date: date
    dividend: Decimal  # as declared (unadjusted)
    adj_dividend: Decimal | None  # split-adjusted by FMP
    record_date: date | None
    payment_date: date | None
    declaration_date: date | None
    frequency: str | None  # e.g. "Quarterly", "Semi-Annual"


__all__ = ["RATIO_PRECISION", "CompanyProfile", "Dividend", "StockSplit"]
