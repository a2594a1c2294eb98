"""Split- and dividend-adjusted daily history, computed from stored rows. No I/O, no Dagster.

The convention (CRSP-style backward adjustment; the README states it for users):

- split factor of day *d* = product of ``numerator / denominator`` over the ticker's splits
  with ``ex_date > d``; prices are divided by it, volume multiplied;
- dividend factor of day *d* = product over dividends with ``ex_date > d`` of
  ``1 - dividend / close_raw(p)``, where *p* is the last stored session before the ex-date,
  with the dividend as declared and the close as traded (divided by the ratio of any split
  after *p* and on or before the ex-date, so both are per the same share); prices are
  multiplied by it.

Only actions that have happened count: ``ex_date <= as_of`` (a split announced for next week
does not re-base today's history; it does on its ex-date). A split whose ratio is not
positive or is exactly 1 (reported by the ``split_ratio_valid`` check), and a dividend that
would take the factor to zero or below, are left out rather than corrupt a whole history.

Arithmetic is exact: factors are products of rationals kept as Decimals with 60 significant
digits (far beyond any stored digit), and each adjusted price is rounded once, half to even,
to :data:`PRICE_PLACES` decimal places; volume to a whole share. Stored factors are rounded
to :data:`FACTOR_PLACES` for display only.

A row stored before revision 0004 is split-adjusted as of the day it was fetched
(``price_basis = split_adjusted``): it is first brought back to as traded by the ratios of
the splits between its date and that fetch day (FMP applies a split from its ex-date on).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

from quote_pipeline.price_bars import AS_TRADED, SPLIT_ADJUSTED
from quote_pipeline.reference_data import Dividend, StockSplit

PRICE_PLACES = 8
FACTOR_PLACES = 12
# Bumped when the convention changes: every ticker's adjusted history is then rewritten.
CONVENTION_VERSION = "crsp-backward-1"

_PRICE_QUANTUM = Decimal(1).scaleb(-PRICE_PLACES)
_FACTOR_QUANTUM = Decimal(1).scaleb(-FACTOR_PLACES)
_EXACT = Context(prec=60, rounding=ROUND_HALF_EVEN)
_ONE = Decimal(1)


# Not frozen: a frozen dataclass costs twice as much to build, and a first derivation builds
# two per stored row (over half a million for five years of 500 tickers).
@dataclass(slots=True)
class RawDay:
    """One stored daily_prices row, as the adjustment needs it."""

    day: date
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    price_basis: str = AS_TRADED
    fetched_on: date | None = None  # New York date of fetched_at (legacy rows need it)


@dataclass(slots=True)
class AdjustedDay:
    """One row of daily_prices_adjusted."""

    symbol: str
    day: date
    adj_open: Decimal
    adj_high: Decimal
    adj_low: Decimal
    adj_close: Decimal
    adj_volume: int
    split_factor: Decimal
    dividend_factor: Decimal


@dataclass(frozen=True, slots=True)
class CorporateActions:
    """The splits and dividends of one ticker that apply as of a date (valid ones only)."""

    splits: tuple[StockSplit, ...]
    dividends: tuple[Dividend, ...]

    @property
    def latest_ex_date(self) -> date | None:
        dates = [s.ex_date for s in self.splits] + [d.ex_date for d in self.dividends]
        return max(dates) if dates else None

    def fingerprint(self) -> str:
        """A hash of exactly what the adjustment depends on, besides the rows themselves."""
        # By value, not spelling: a re-fetch that writes 4 as 4.0 changes nothing.
        parts = [CONVENTION_VERSION]
        parts += [
            f"s|{s.ex_date}|{s.numerator.normalize()}|{s.denominator.normalize()}"
            for s in self.splits
        ]
        parts += [f"d|{d.ex_date}|{d.dividend.normalize()}" for d in self.dividends]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def effective_actions(
    splits: Iterable[StockSplit], dividends: Iterable[Dividend], as_of: date
) -> CorporateActions:
    """The ticker's actions that have happened by ``as_of`` and can be applied, oldest first."""
    applied_splits = sorted(
        (s for s in splits if s.ex_date <= as_of and s.is_valid), key=lambda s: s.ex_date
    )
    applied_dividends = sorted(
        (d for d in dividends if d.ex_date <= as_of and d.dividend > 0), key=lambda d: d.ex_date
    )
    return CorporateActions(tuple(applied_splits), tuple(applied_dividends))


def split_ratio(split: StockSplit) -> Decimal:
    """``numerator / denominator`` to the adjustment's precision (60 digits)."""
    return _EXACT.divide(split.numerator, split.denominator)


def legacy_factor(day: RawDay, splits: Sequence[StockSplit]) -> Decimal:
    """How much FMP had divided a legacy row's prices by when it was fetched: the ratios of
    the splits after its date and on or before its fetch day. 1 for an as-traded row."""
    if day.price_basis != SPLIT_ADJUSTED or day.fetched_on is None:
        return _ONE
    factor = _ONE
    for split in splits:
        if day.day < split.ex_date <= day.fetched_on:
            factor = _EXACT.multiply(factor, split_ratio(split))
    return factor


def as_traded(day: RawDay, splits: Sequence[StockSplit]) -> RawDay:
    """``day`` brought back to as traded (unchanged if it already is)."""
    factor = legacy_factor(day, splits)
    if factor == _ONE:
        return day if day.price_basis == AS_TRADED else _relabel(day)
    return RawDay(
        day=day.day,
        open=_EXACT.multiply(day.open, factor),
        high=_EXACT.multiply(day.high, factor),
        low=_EXACT.multiply(day.low, factor),
        close=_EXACT.multiply(day.close, factor),
        volume=int(_EXACT.divide(Decimal(day.volume), factor).to_integral_value(ROUND_HALF_EVEN)),
        price_basis=AS_TRADED,
    )


def _relabel(day: RawDay) -> RawDay:
    return RawDay(day.day, day.open, day.high, day.low, day.close, day.volume, AS_TRADED)


def dividend_factor_of(event: Dividend, previous: RawDay, splits: Sequence[StockSplit]) -> Decimal:
    """``1 - dividend / close`` for ``event``, ``previous`` the last stored session before its
    ex-date (as traded). A split between that session and the ex-date (or on the ex-date)
    puts the close on the old share basis while the dividend is per new share: the close is
    divided by those splits' ratios first, so a gap in the stored days or a split on the
    dividend's own ex-date changes nothing."""
    close = previous.close
    for split in splits:
        if previous.day < split.ex_date <= event.ex_date:
            close = _EXACT.divide(close, split_ratio(split))
    return _EXACT.subtract(_ONE, _EXACT.divide(event.dividend, close))


def adjust_history(
    symbol: str, days: Sequence[RawDay], actions: CorporateActions
) -> list[AdjustedDay]:
    """The adjusted rows of ``days`` (one ticker's stored history, in date order).

    A new day after the latest ex-date has both factors 1: appending it never changes an
    earlier row, which is what lets the asset add a day without recomputing the history.
    """
    raw = [as_traded(day, actions.splits) for day in days]
    dates = [day.day for day in raw]
    # Each action's own factor, keyed by ex-date (several on one date multiply).
    step: dict[date, tuple[Decimal, Decimal]] = {}
    for split in actions.splits:
        ratio, dividend = step.get(split.ex_date, (_ONE, _ONE))
        step[split.ex_date] = (_EXACT.multiply(ratio, split_ratio(split)), dividend)
    for event in actions.dividends:
        index = bisect_left(dates, event.ex_date) - 1
        if index < 0:
            continue  # no stored session before it: no stored day it applies to
        factor = dividend_factor_of(event, raw[index], actions.splits)
        if factor <= 0:
            continue  # a dividend worth the whole price is a data error, not an adjustment
        ratio, dividend = step.get(event.ex_date, (_ONE, _ONE))
        step[event.ex_date] = (ratio, _EXACT.multiply(dividend, factor))

    # Walk from the newest day back, taking in each action once its ex-date is passed.
    pending = sorted(step.items(), reverse=True)
    split_factor = dividend_factor = price_factor = _ONE
    shown_split = shown_dividend = _ONE
    result: list[AdjustedDay] = []
    with localcontext(_EXACT):
        for day in reversed(raw):
            if pending and pending[0][0] > day.day:
                while pending and pending[0][0] > day.day:
                    _, (ratio, dividend) = pending.pop(0)
                    split_factor *= ratio
                    dividend_factor *= dividend
                price_factor = dividend_factor / split_factor
                shown_split, shown_dividend = _factor(split_factor), _factor(dividend_factor)
            if price_factor == _ONE:  # after the latest ex-date, most rows: just rounded
                prices = (day.open, day.high, day.low, day.close)
            else:
                prices = (
                    day.open * price_factor,
                    day.high * price_factor,
                    day.low * price_factor,
                    day.close * price_factor,
                )
            result.append(
                AdjustedDay(
                    symbol,
                    day.day,
                    *map(_price, prices),
                    adj_volume=day.volume
                    if split_factor == _ONE
                    else int((day.volume * split_factor).to_integral_value()),
                    split_factor=shown_split,
                    dividend_factor=shown_dividend,
                )
            )
    result.reverse()
    return result


def _price(value: Decimal) -> Decimal:
    return value.quantize(_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


def _factor(value: Decimal) -> Decimal:
    """Rounded for display, without trailing zeros (0.25, not 0.250000000000; 100, not 1E+2)."""
    shown = value.quantize(_FACTOR_QUANTUM, rounding=ROUND_HALF_EVEN).normalize()
    return shown if shown.as_tuple().exponent <= 0 else shown.quantize(_ONE)


__all__ = [
    "CONVENTION_VERSION",
    "FACTOR_PLACES",
    "PRICE_PLACES",
    "AdjustedDay",
    "CorporateActions",
    "RawDay",
    "adjust_history",
    "as_traded",
    "dividend_factor_of",
    "effective_actions",
    "legacy_factor",
    "split_ratio",
]
