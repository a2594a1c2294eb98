"""Company profiles, stock splits, dividends and split/dividend-adjusted daily history for the
FMP sandbox (pure functions, no I/O).

Daily history starts from the smooth "economic" series of :mod:`quote_pipeline.sandbox.market`
(prices in today's shares). The as-traded ("raw") bars are derived from it: before a 4:1 split
the stock traded four times higher and a quarter as many shares changed hands. The three FMP
daily endpoints are then views of the raw bars as of the sandbox clock:

* ``non-split-adjusted``: the raw bars, whatever the clock says;
* ``full``: raw prices divided by the splits that are known (ex-date on or before the clock's
  date) and came after the bar, volume multiplied by them;
* ``dividend-adjusted``: ``full`` times, for each dividend gone ex after the bar and on or
  before the clock's date, ``1 - dividend / raw close of the session before the ex-date``.

So moving the clock past a split's ex-date changes what ``full`` says about earlier days, as it
does at FMP. Adjustment arithmetic is exact (:class:`fractions.Fraction`), rounded half-even
once to the served number of places (generated levels start as floats, as in ``market``).
For a symbol without splits and dividends all three views give the economic bars unchanged.
"""

from __future__ import annotations

import functools
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from quote_pipeline.sandbox.market import (
    EXTREME_PRICES,
    NEW_YORK,
    _Calendar,
    _daily_bar,
    _daily_row,
    _level,
    _nyse,
    _unit,
    decimal_text,
    reference_range,
    simulated_quote,
    symbol_kind,
)

# (symbol, ex_date, numerator, denominator): from ex_date on, numerator new shares for every
# denominator old ones. (symbol, ex_date, amount): a dividend of amount per share as traded then.
SplitSpec = tuple[str, date, Decimal | int, Decimal | int]
DividendSpec = tuple[str, date, Decimal]

SPLIT_TYPE = "stock-split"
# FMP documents "Maximum 1000 records per request" for splits and dividends.
MAX_ACTION_ROWS = 1000
# Daily bars carry cents (the extreme symbols, which never have actions, aside); FMP's adjusted
# prices carry more places.
_DAILY_PLACES = 2
_ADJUSTED_PLACES = 4
_ADJ_DIVIDEND_PLACES = 6
_YIELD_PLACES = 10
_OHLC = ("open", "high", "low", "close")
_CENT = Decimal("0.01")
_ADJ_NAMES = {"open": "adjOpen", "high": "adjHigh", "low": "adjLow", "close": "adjClose"}
# Since 2024-05-28 (T+1 settlement) the record date is the ex-date; before, it was two sessions
# later.
_T_PLUS_ONE = date(2024, 5, 28)
# An injected dividend is declared (and so listed) this long before its ex-date.
INJECTED_DECLARATION_LEAD = timedelta(days=14)
_INJECTED_PAYMENT_LAG = timedelta(days=14)

PAYMENTS_PER_YEAR = {"Monthly": 12, "Quarterly": 4, "Semi-Annual": 2, "Annual": 1}


# --- splits -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """One stock split: from ``ex_date`` on, ``numerator`` shares for every ``denominator``."""

    symbol: str
    ex_date: date
    numerator: Decimal
    denominator: Decimal

    @property
    def factor(self) -> Fraction:
        """How many times higher the stock traded before the split than after it."""
        return Fraction(self.numerator) / Fraction(self.denominator)


# Splits since 2005 of the well-known symbols, as they happened: the sandbox's history of these
# names shows the jumps a reader may remember. Independent of the seed.
KNOWN_SPLITS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "AAPL": (("2005-02-28", 2, 1), ("2014-06-09", 7, 1), ("2020-08-31", 4, 1)),
    "NVDA": (
        ("2006-04-07", 2, 1),
        ("2007-09-11", 3, 2),
        ("2021-07-20", 4, 1),
        ("2024-06-10", 10, 1),
    ),
    "TSLA": (("2020-08-31", 5, 1), ("2022-08-25", 3, 1)),
    "AMZN": (("2022-06-06", 20, 1),),
    "GOOGL": (("2022-07-18", 20, 1),),
    "GOOG": (("2022-07-18", 20, 1),),
    "NFLX": (("2015-07-15", 7, 1), ("2025-11-17", 10, 1)),
    "WMT": (("2024-02-26", 3, 1),),
    "AVGO": (("2024-07-15", 10, 1),),
    "BRK-B": (("2010-01-21", 50, 1),),
    "KO": (("2012-08-13", 2, 1),),
    "V": (("2015-03-19", 4, 1),),
    "MA": (("2014-01-22", 10, 1),),
    "CRM": (("2013-04-18", 4, 1),),
    "NKE": (("2012-12-26", 2, 1), ("2015-12-23", 2, 1)),
    "SBUX": (("2005-10-24", 2, 1), ("2015-04-09", 2, 1)),
    "UNH": (("2005-05-31", 2, 1),),
    "ADBE": (("2005-05-24", 2, 1),),
    "CAT": (("2005-07-14", 2, 1),),
    "WFC": (("2006-08-14", 2, 1),),
    "GE": (("2021-08-02", 1, 8),),
    "SIRI": (("2024-09-10", 1, 10),),
}

# Share of made-up symbols (stock kind) with generated splits, and where those fall.
SPLIT_SHARE = 0.10
_FORWARD_RATIOS = ((2, 1), (3, 1), (3, 2), (4, 1), (7, 1), (10, 1))
_REVERSE_RATIOS = ((1, 5), (1, 8), (1, 10))
_SPLITS_FROM = date(2005, 1, 3)
_SPLITS_UNTIL = date(2026, 9, 30)
# A reverse split means the stock traded up to 10x lower before it: only for symbols whose level
# keeps that above about a dollar, so the traded bars' cents stay meaningful.
_REVERSE_MIN_PRICE = 10.0


def _today() -> date:
    """The real New York date: what "as of" means when no clock is given."""
    return datetime.now(NEW_YORK).date()


def _next_session(day: date) -> date:
    """``day`` if the NYSE traded then, else the next session (ex-dates are trading days)."""
    cal = _nyse(day + timedelta(days=10))
    return cal.sessions[bisect_left(cal.sessions, day)]


def _positive(value: Decimal | int | str, what: str) -> Decimal:
    try:
        number = Decimal(value) if not isinstance(value, Decimal) else value
    except ArithmeticError:
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise ValueError(f"{what} must be a positive number, got {value}")
    return number


def _action_symbol(symbol: str) -> str:
    sym = str(symbol).strip().upper()
    if not sym:
        raise ValueError("a corporate action needs a symbol")
    if sym in EXTREME_PRICES:
        # Their bars are exact to 8 places; a split would reprice them at cents.
        raise ValueError(f"{sym} never has splits or dividends")
    return sym


def split_spec(
    symbol: str, ex_date: date, numerator: Decimal | int | str, denominator: Decimal | int | str
) -> tuple[str, date, Decimal, Decimal]:
    """A validated injected split: upper-case symbol, a date, positive Decimal ratio terms."""
    if not isinstance(ex_date, date) or isinstance(ex_date, datetime):
        raise ValueError(f"a split's ex-date must be a date, got {ex_date!r}")
    return (
        _action_symbol(symbol),
        ex_date,
        _positive(numerator, "a split's numerator"),
        _positive(denominator, "a split's denominator"),
    )


def dividend_spec(
    symbol: str, ex_date: date, amount: Decimal | int | str
) -> tuple[str, date, Decimal]:
    """A validated injected dividend: upper-case symbol, a date, a positive Decimal amount."""
    if not isinstance(ex_date, date) or isinstance(ex_date, datetime):
        raise ValueError(f"a dividend's ex-date must be a date, got {ex_date!r}")
    return _action_symbol(symbol), ex_date, _positive(amount, "a dividend amount")


def normalize_splits(specs: Iterable[SplitSpec]) -> tuple[tuple[str, date, Decimal, Decimal], ...]:
    """Validated injected splits as a hashable tuple; one split per symbol and day."""
    out = tuple(split_spec(*spec) for spec in specs)
    seen = {(s[0], s[1]) for s in out}
    if len(seen) != len(out):
        raise ValueError("two injected splits of one symbol on the same day")
    return out


def normalize_dividends(specs: Iterable[DividendSpec]) -> tuple[tuple[str, date, Decimal], ...]:
    """Validated injected dividends as a hashable tuple; one dividend per symbol and ex-date."""
    out = tuple(dividend_spec(*spec) for spec in specs)
    seen = {(d[0], d[1]) for d in out}
    if len(seen) != len(out):
        raise ValueError("two injected dividends of one symbol on the same ex-date")
    return out


def _own(specs: Iterable[tuple[Any, ...]], sym: str) -> tuple[tuple[Any, ...], ...]:
    """The (normalised) injected actions of ``sym``, in a hashable (cacheable) form."""
    return tuple(sorted(spec for spec in specs if spec[0] == sym))


def _has_no_actions(sym: str) -> bool:
    # Indexes, currencies and coins do not split or pay; the extreme symbols never do.
    return sym in EXTREME_PRICES or sym.startswith("^") or symbol_kind(sym) == "crypto"


@functools.lru_cache(maxsize=4096)
def _generated_splits(sym: str, seed: int) -> tuple[Split, ...]:
    if _has_no_actions(sym) or symbol_kind(sym) == "penny":
        return ()
    if reference_range(sym) is not None:
        known = KNOWN_SPLITS.get(sym.replace(".", "-"), ())
        return tuple(Split(sym, date.fromisoformat(d), Decimal(n), Decimal(m)) for d, n, m in known)
    if _unit("splits", seed, sym) >= SPLIT_SHARE:
        return ()
    count = 2 if _unit("split-count", seed, sym) < 0.3 else 1
    part = (_SPLITS_UNTIL - _SPLITS_FROM).days // count
    reverse_ok = _level(sym, date(2015, 1, 1), seed) >= _REVERSE_MIN_PRICE
    out = []
    for k in range(count):
        # Each split in its own stretch of the span, a year short of its end: splits of one
        # symbol are at least a year apart.
        offset = part * k + int(_unit("split-date", seed, sym, k) * (part - 365))
        ex = _next_session(_SPLITS_FROM + timedelta(days=offset))
        reverse = reverse_ok and _unit("split-kind", seed, sym, k) < 0.25
        ratios = _REVERSE_RATIOS if reverse else _FORWARD_RATIOS
        n, m = ratios[int(_unit("split-ratio", seed, sym, k) * len(ratios))]
        out.append(Split(sym, ex, Decimal(n), Decimal(m)))
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _splits_of(sym: str, seed: int, own: tuple[tuple[Any, ...], ...]) -> tuple[Split, ...]:
    if own:  # injected splits replace the generated ones, so a test gets what it injected
        return tuple(Split(sym, d, Decimal(n), Decimal(m)) for _, d, n, m in own)
    return _generated_splits(sym, seed)


def all_splits(symbol: str, *, seed: int = 0, injected: Iterable[SplitSpec] = ()) -> list[Split]:
    """Every split of ``symbol`` (known yet or not), oldest first."""
    sym = symbol.upper()
    own = _own(normalize_splits(injected), sym)
    return sorted(_splits_of(sym, seed, own), key=lambda s: s.ex_date)


def _factor(splits: Iterable[Split], after: date, until: date | None) -> Fraction:
    """Product of the split factors with ``after`` < ex-date <= ``until`` (None: no end)."""
    factor = Fraction(1)
    for split in splits:
        if split.ex_date > after and (until is None or split.ex_date <= until):
            factor *= split.factor
    return factor


def _number(value: Decimal) -> Decimal | int:
    """A split term as FMP writes it: 4, not 4.0, unless it has decimals."""
    return int(value) if value == value.to_integral_value() else value


def simulated_splits(
    symbol: str,
    *,
    seed: int = 0,
    as_of: date | None = None,
    injected: Iterable[SplitSpec] = (),
) -> list[dict[str, Any]]:
    """``/stable/splits`` rows of ``symbol`` as of ``as_of``, newest first.

    A split is listed from its ex-date on (it becomes known that day). ``as_of`` defaults to
    the real New York date; ``injected`` (SandboxConfig.splits) replaces the generated splits
    of a symbol it names.
    """
    sym = symbol.upper()
    day = as_of or _today()
    return [
        {
            "symbol": sym,
            "date": s.ex_date.isoformat(),
            "numerator": _number(s.numerator),
            "denominator": _number(s.denominator),
            "splitType": SPLIT_TYPE,
        }
        for s in reversed(all_splits(sym, seed=seed, injected=injected))
        if s.ex_date <= day
    ]


# --- exact scaling --------------------------------------------------------------------------


def _scaled(value: Decimal, factor: Fraction, places: int) -> Decimal:
    """``value * factor`` rounded half-even to ``places`` decimals, never below one quantum.

    Exact: the product is a Fraction, rounded once.
    """
    units = round(Fraction(value) * factor * 10**places)
    return Decimal(max(units, 1)).scaleb(-places)


def _plain(value: Decimal) -> Decimal:
    """Trailing zeros dropped (126.0100 -> 126.01), as FMP's floats look, never as 1E+2."""
    value = value.normalize()
    exponent = value.as_tuple().exponent
    return value.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else value


# --- dividends ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Dividend:
    """One dividend: ``amount`` per share as traded on ``ex_date``.

    ``declared`` is the day it becomes known (listed from then on); the three date strings are
    as served, ``""`` where FMP has no value.
    """

    symbol: str
    ex_date: date
    amount: Decimal
    declared: date
    record_date: str
    payment_date: str
    declaration_date: str
    frequency: str
    prev_close: Decimal | None  # raw close of the last session before the ex-date


# Well-known stocks that pay nothing; every other well-known stock and ETF pays.
_NON_PAYERS = frozenset({"AMZN", "TSLA", "BRK-B", "NFLX", "AMD", "PLTR", "UBER", "PYPL", "BA"})
_KNOWN_FREQUENCY = {"DIA": "Monthly", "DIS": "Semi-Annual"}
# First dividend year of well-known payers that started after 2005 (default 2005).
_DIVIDENDS_SINCE = {
    "META": 2024,
    "GOOGL": 2024,
    "GOOG": 2024,
    "CRM": 2024,
    "AVGO": 2011,
    "ABBV": 2013,
    "V": 2008,
    "MA": 2006,
    "VOO": 2011,
}
# Share of made-up stocks that pay (quarterly).
DIVIDEND_SHARE = 0.30


@dataclass(frozen=True)
class _Plan:
    frequency: str
    first_year: int
    yearly_yield: float
    first_month: int
    day: int


def _dividend_plan(sym: str, seed: int) -> _Plan | None:
    if _has_no_actions(sym):
        return None
    key = sym.replace(".", "-")
    if reference_range(sym) is not None:
        if key in _NON_PAYERS:
            return None
        frequency = _KNOWN_FREQUENCY.get(key, "Quarterly")
        first_year = _DIVIDENDS_SINCE.get(key, 2005)
    else:
        if _unit("dividends", seed, sym) >= DIVIDEND_SHARE:
            return None
        frequency = "Quarterly"
        first_year = 2005 + int(_unit("dividends-since", seed, sym) * 16)
    months_apart = 12 // PAYMENTS_PER_YEAR[frequency]
    return _Plan(
        frequency=frequency,
        first_year=first_year,
        # 1.2% to 3.6% a year: 0.3% to 0.9% of the price a quarter, give or take the drift.
        yearly_yield=0.012 + 0.024 * _unit("dividend-yield", seed, sym),
        first_month=1 + int(_unit("dividend-month", seed, sym) * months_apart),
        day=1 + int(_unit("dividend-day", seed, sym) * 27),
    )


def _raw_close_before(
    sym: str, ex_date: date, seed: int, splits: tuple[Split, ...]
) -> Decimal | None:
    cal = _nyse(ex_date)
    i = bisect_left(cal.sessions, ex_date) - 1
    if i < 0:
        return None
    return _raw_row(sym, cal, i, seed, splits)["close"]


def _weekday(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _generated_dividends(
    sym: str, seed: int, splits: tuple[Split, ...], last_year: int
) -> list[Dividend]:
    plan = _dividend_plan(sym, seed)
    if plan is None:
        return []
    per_year = PAYMENTS_PER_YEAR[plan.frequency]
    # A calendar through the end of last_year (the one the bars use, not a second one).
    cal = _nyse(date(last_year - 1, 12, 31))
    out = []
    for year in range(plan.first_year, last_year + 1):
        # The amount is set once a year from the price level (in today's shares) mid-year, so
        # the year's drift moves the dividend's share of the price both ways around the plan.
        level = _level(sym, date(year, 7, 1), seed) * plan.yearly_yield / per_year
        economic = Decimal(f"{level:.6f}")
        for k in range(per_year):
            month = plan.first_month + k * (12 // per_year)
            i = bisect_left(cal.sessions, date(year, month, min(plan.day, 28)))
            if i + 2 >= len(cal.sessions):
                break
            ex = cal.sessions[i]
            factor = _factor(splits, ex, None)
            # Cents, unless that would round a small dividend away.
            places = 2 if Fraction(economic) * factor >= Fraction(1, 10) else 4
            amount = _scaled(economic, factor, places)
            declared = ex - timedelta(days=14 + int(_unit("declared", seed, sym, ex) * 15))
            record = ex if ex >= _T_PLUS_ONE else cal.sessions[i + 2]
            paid = _weekday(record + timedelta(days=7 + int(_unit("paid", seed, sym, ex) * 24)))
            fields = [record.isoformat(), paid.isoformat(), declared.isoformat()]
            # FMP leaves some of these empty: old declaration dates often, others now and then.
            if ex.year < 2012 and _unit("no-declaration", seed, sym, ex) < 0.5:
                fields[2] = ""
            elif _unit("blank", seed, sym, ex) < 0.08:
                fields[int(_unit("blank-which", seed, sym, ex) * 3)] = ""
            out.append(
                Dividend(
                    symbol=sym,
                    ex_date=ex,
                    amount=amount,
                    declared=declared,
                    record_date=fields[0],
                    payment_date=fields[1],
                    declaration_date=fields[2],
                    frequency=plan.frequency,
                    prev_close=_raw_close_before(sym, ex, seed, splits),
                )
            )
    return out


def _frequency_of(gap_days: int | None) -> str:
    """The frequency a run of injected dividends suggests, from the gap to the nearest one."""
    if gap_days is None or 45 < gap_days <= 135:
        return "Quarterly"
    if gap_days <= 45:
        return "Monthly"
    return "Semi-Annual" if gap_days <= 270 else "Annual"


def _injected_dividends(
    sym: str, seed: int, own: tuple[tuple[Any, ...], ...], splits: tuple[Split, ...]
) -> list[Dividend]:
    days = sorted(d for _, d, _ in own)
    out = []
    for _, ex, amount in own:
        k = days.index(ex)
        gaps = [abs((days[j] - ex).days) for j in (k - 1, k + 1) if 0 <= j < len(days)]
        declared = ex - INJECTED_DECLARATION_LEAD
        out.append(
            Dividend(
                symbol=sym,
                ex_date=ex,
                amount=Decimal(amount),
                declared=declared,
                record_date=ex.isoformat(),
                payment_date=(ex + _INJECTED_PAYMENT_LAG).isoformat(),
                declaration_date=declared.isoformat(),
                frequency=_frequency_of(min(gaps) if gaps else None),
                prev_close=_raw_close_before(sym, ex, seed, splits),
            )
        )
    return out


@functools.lru_cache(maxsize=1024)
def _dividends_of(
    sym: str,
    seed: int,
    own: tuple[tuple[Any, ...], ...],
    own_splits: tuple[tuple[Any, ...], ...],
    last_year: int,
) -> tuple[Dividend, ...]:
    splits = _splits_of(sym, seed, own_splits)
    if own:  # injected dividends replace the generated ones
        found = _injected_dividends(sym, seed, own, splits)
    else:
        found = _generated_dividends(sym, seed, splits, last_year)
    return tuple(sorted(found, key=lambda d: d.ex_date))


def all_dividends(
    symbol: str,
    *,
    seed: int = 0,
    as_of: date | None = None,
    injected: Iterable[DividendSpec] = (),
    injected_splits: Iterable[SplitSpec] = (),
) -> list[Dividend]:
    """The dividends of ``symbol`` declared on or before ``as_of`` (default: the real New York
    date), oldest first."""
    sym = symbol.upper()
    day = as_of or _today()
    own = _own(normalize_dividends(injected), sym)
    own_splits = _own(normalize_splits(injected_splits), sym)
    found = _dividends_of(sym, seed, own, own_splits, day.year + 1)
    return [d for d in found if d.declared <= day]


def simulated_dividends(
    symbol: str,
    *,
    seed: int = 0,
    as_of: date | None = None,
    injected: Iterable[DividendSpec] = (),
    injected_splits: Iterable[SplitSpec] = (),
) -> list[dict[str, Any]]:
    """``/stable/dividends`` rows of ``symbol`` as of ``as_of``, newest first.

    A dividend is listed once declared (ex-date minus 2-4 weeks; 14 days for an injected one).
    ``adjDividend`` divides ``dividend`` by the splits known as of ``as_of`` that went ex after
    it; ``yield`` is the annualised dividend over the raw close before the ex-date, in percent.
    ``as_of`` defaults to the real New York date; ``injected`` (SandboxConfig.dividends)
    replaces the generated dividends of a symbol it names, ``injected_splits`` as for splits.
    """
    sym = symbol.upper()
    day = as_of or _today()
    splits = all_splits(sym, seed=seed, injected=injected_splits)
    rows = []
    for d in reversed(
        all_dividends(sym, seed=seed, as_of=day, injected=injected, injected_splits=injected_splits)
    ):
        per_year = PAYMENTS_PER_YEAR[d.frequency]
        if d.prev_close:
            percent = Fraction(d.amount) * per_year * 100 / Fraction(d.prev_close)
            yield_ = _plain(Decimal(round(percent * 10**_YIELD_PLACES)).scaleb(-_YIELD_PLACES))
        else:
            yield_ = Decimal(0)
        rows.append(
            {
                "symbol": sym,
                "date": d.ex_date.isoformat(),
                "recordDate": d.record_date,
                "paymentDate": d.payment_date,
                "declarationDate": d.declaration_date,
                "adjDividend": _scaled(
                    d.amount, 1 / _factor(splits, d.ex_date, day), _ADJ_DIVIDEND_PLACES
                ),
                "dividend": d.amount,
                "yield": yield_,
                "frequency": d.frequency,
            }
        )
    return rows


# --- daily bars -----------------------------------------------------------------------------


def _raw_row(
    sym: str, cal: _Calendar, i: int, seed: int, splits: tuple[Split, ...]
) -> dict[str, Any]:
    """The as-traded bar of session ``i``: economic prices times the later splits' factors."""
    row = _daily_bar(sym, cal, i, seed)
    day = cal.sessions[i]
    factor = _factor(splits, day, None)
    if factor == 1:
        return row
    o, h, lo, c = (_scaled(row[k], factor, _DAILY_PLACES) for k in _OHLC)
    raw = _daily_row(sym, day, o, h, lo, c, seed)
    raw["volume"] = max(1, round(Fraction(row["volume"]) / factor))
    return raw


def _adjusted_row(
    raw: dict[str, Any], sym: str, day: date, seed: int, applied: Fraction
) -> dict[str, Any]:
    """``raw`` divided by the split factor ``applied`` (prices to 4 places), volume times it."""
    if applied == 1:
        return raw
    o, h, lo, c = (_plain(_scaled(raw[k], 1 / applied, _ADJUSTED_PLACES)) for k in _OHLC)
    row = _daily_row(sym, day, o, h, lo, c, seed)
    row["volume"] = max(1, round(raw["volume"] * applied))
    return row


def _adj_shape(row: dict[str, Any]) -> dict[str, Any]:
    """The row as the non-split-adjusted and dividend-adjusted endpoints send it."""
    out: dict[str, Any] = {"symbol": row["symbol"], "date": row["date"]}
    out.update({_ADJ_NAMES[k]: row[k] for k in _OHLC})
    out["volume"] = row["volume"]
    return out


def _sessions(start: date, end: date) -> tuple[_Calendar, range]:
    """The calendar and the indexes of its sessions in [start, end], newest first."""
    cal = _nyse(end)
    lo = bisect_left(cal.sessions, start)
    hi = bisect_right(cal.sessions, end)
    return cal, range(hi - 1, lo - 1, -1)


def simulated_raw_daily_bars(
    symbol: str, start: date, end: date, *, seed: int = 0, injected_splits: Iterable[SplitSpec] = ()
) -> list[dict[str, Any]]:
    """``/stable/historical-price-eod/non-split-adjusted`` rows in [start, end], newest first.

    Prices as traded (named adjOpen..adjClose, as FMP names them on this endpoint too),
    whatever the clock says.
    """
    sym = symbol.upper()
    cal, indexes = _sessions(start, end)
    splits = tuple(all_splits(sym, seed=seed, injected=injected_splits))
    return [_adj_shape(_raw_row(sym, cal, i, seed, splits)) for i in indexes]


def split_adjusted_daily_bars(
    symbol: str,
    start: date,
    end: date,
    *,
    seed: int = 0,
    as_of: date | None = None,
    injected_splits: Iterable[SplitSpec] = (),
) -> list[dict[str, Any]]:
    """``/stable/historical-price-eod/full`` rows in [start, end] as of ``as_of``, newest first.

    Raw prices divided by the splits with bar date < ex-date <= ``as_of`` (default: the real
    New York date), volume multiplied by them; change, changePercent and vwap follow.
    """
    sym = symbol.upper()
    day = as_of or _today()
    cal, indexes = _sessions(start, end)
    splits = tuple(all_splits(sym, seed=seed, injected=injected_splits))
    rows = []
    for i in indexes:
        session = cal.sessions[i]
        raw = _raw_row(sym, cal, i, seed, splits)
        rows.append(_adjusted_row(raw, sym, session, seed, _factor(splits, session, day)))
    return rows


def simulated_dividend_adjusted_bars(
    symbol: str,
    start: date,
    end: date,
    *,
    seed: int = 0,
    as_of: date | None = None,
    injected_splits: Iterable[SplitSpec] = (),
    injected_dividends: Iterable[DividendSpec] = (),
) -> list[dict[str, Any]]:
    """``/stable/historical-price-eod/dividend-adjusted`` rows in [start, end], newest first.

    The ``full`` view as of ``as_of`` (default: the real New York date) further multiplied, for
    each dividend with bar date < ex-date <= ``as_of``, by ``1 - dividend / raw close of the
    session before the ex-date``; prices to 4 places, volume as in ``full``.
    """
    sym = symbol.upper()
    day = as_of or _today()
    cal, indexes = _sessions(start, end)
    splits = tuple(all_splits(sym, seed=seed, injected=injected_splits))
    paid = [
        d
        for d in all_dividends(
            sym, seed=seed, as_of=day, injected=injected_dividends, injected_splits=injected_splits
        )
        if d.ex_date <= day and d.prev_close
    ]
    # after[k]: the product of the multipliers of paid[k:], so a bar's factor is one lookup.
    after = [Fraction(1)] * (len(paid) + 1)
    for k in range(len(paid) - 1, -1, -1):
        multiplier = 1 - Fraction(paid[k].amount) / Fraction(paid[k].prev_close or 1)
        after[k] = after[k + 1] * multiplier
    ex_dates = [d.ex_date for d in paid]
    rows = []
    for i in indexes:
        session = cal.sessions[i]
        raw = _raw_row(sym, cal, i, seed, splits)
        split_factor = _factor(splits, session, day)
        dividend_factor = after[bisect_right(ex_dates, session)]
        row = dict(_adjusted_row(raw, sym, session, seed, split_factor))  # may be ``raw``
        if dividend_factor != 1:
            for k in _OHLC:
                scaled = _scaled(raw[k], dividend_factor / split_factor, _ADJUSTED_PLACES)
                row[k] = _plain(scaled)
        rows.append(_adj_shape(row))
    return rows


# --- profiles -------------------------------------------------------------------------------

# Well-known symbols: symbol|name|exchange|industry|website|city|IPO date|shares (billions).
# Illustrative facts of the kind a reader expects to see; the numbers are not market data.
# An ETF's industry is Asset Management or empty, as FMP files some ETFs and not others.
_KNOWN_COMPANY_ROWS = """
AAPL|Apple Inc.|NASDAQ|Consumer Electronics|apple.com|Cupertino|1980-12-12|14.8
MSFT|Microsoft Corporation|NASDAQ|Software - Infrastructure|microsoft.com|Redmond|1986-03-13|7.43
NVDA|NVIDIA Corporation|NASDAQ|Semiconductors|nvidia.com|Santa Clara|1999-01-22|24.3
AMZN|Amazon.com, Inc.|NASDAQ|Specialty Retail|amazon.com|Seattle|1997-05-15|10.7
GOOGL|Alphabet Inc.|NASDAQ|Internet Content & Information|abc.xyz|Mountain View|2004-08-19|12.1
GOOG|Alphabet Inc.|NASDAQ|Internet Content & Information|abc.xyz|Mountain View|2004-08-19|12.1
META|Meta Platforms, Inc.|NASDAQ|Internet Content & Information|investor.atmeta.com|Menlo Park|2012-05-18|2.52
TSLA|Tesla, Inc.|NASDAQ|Auto - Manufacturers|tesla.com|Austin|2010-06-29|3.32
BRK-B|Berkshire Hathaway Inc.|NYSE|Insurance - Diversified|berkshirehathaway.com|Omaha|1996-05-09|2.16
AVGO|Broadcom Inc.|NASDAQ|Semiconductors|broadcom.com|Palo Alto|2009-08-06|4.7
LLY|Eli Lilly and Company|NYSE|Drug Manufacturers - General|lilly.com|Indianapolis|1978-01-13|0.9
JPM|JPMorgan Chase & Co.|NYSE|Banks - Diversified|jpmorganchase.com|New York|1980-03-17|2.75
V|Visa Inc.|NYSE|Financial - Credit Services|visa.com|San Francisco|2008-03-19|1.93
MA|Mastercard Incorporated|NYSE|Financial - Credit Services|mastercard.com|Purchase|2006-05-25|0.91
UNH|UnitedHealth Group Incorporated|NYSE|Medical - Healthcare Plans|unitedhealthgroup.com|Eden Prairie|1984-10-17|0.91
XOM|Exxon Mobil Corporation|NYSE|Oil & Gas Integrated|corporate.exxonmobil.com|Spring|1970-01-02|4.3
JNJ|Johnson & Johnson|NYSE|Drug Manufacturers - General|jnj.com|New Brunswick|1944-09-25|2.41
PG|The Procter & Gamble Company|NYSE|Household & Personal Products|pg.com|Cincinnati|1950-03-22|2.34
HD|The Home Depot, Inc.|NYSE|Home Improvement|homedepot.com|Atlanta|1981-09-22|0.99
KO|The Coca-Cola Company|NYSE|Beverages - Non-Alcoholic|coca-colacompany.com|Atlanta|1962-01-02|4.3
PEP|PepsiCo, Inc.|NASDAQ|Beverages - Non-Alcoholic|pepsico.com|Purchase|1972-06-01|1.37
COST|Costco Wholesale Corporation|NASDAQ|Discount Stores|costco.com|Issaquah|1985-12-05|0.443
WMT|Walmart Inc.|NASDAQ|Discount Stores|corporate.walmart.com|Bentonville|1972-08-25|7.98
DIS|The Walt Disney Company|NYSE|Entertainment|thewaltdisneycompany.com|Burbank|1962-01-02|1.8
NFLX|Netflix, Inc.|NASDAQ|Entertainment|netflix.com|Los Gatos|2002-05-23|4.25
AMD|Advanced Micro Devices, Inc.|NASDAQ|Semiconductors|amd.com|Santa Clara|1972-09-27|1.62
INTC|Intel Corporation|NASDAQ|Semiconductors|intel.com|Santa Clara|1971-10-13|4.7
CSCO|Cisco Systems, Inc.|NASDAQ|Communication Equipment|cisco.com|San Jose|1990-02-16|3.96
ORCL|Oracle Corporation|NYSE|Software - Infrastructure|oracle.com|Austin|1986-03-12|2.81
CRM|Salesforce, Inc.|NYSE|Software - Application|salesforce.com|San Francisco|2004-06-23|0.96
ADBE|Adobe Inc.|NASDAQ|Software - Application|adobe.com|San Jose|1986-08-20|0.42
QCOM|QUALCOMM Incorporated|NASDAQ|Semiconductors|qualcomm.com|San Diego|1991-12-13|1.08
TXN|Texas Instruments Incorporated|NASDAQ|Semiconductors|ti.com|Dallas|1972-06-01|0.91
IBM|International Business Machines Corporation|NYSE|Information Technology Services|ibm.com|Armonk|1962-01-02|0.93
PLTR|Palantir Technologies Inc.|NASDAQ|Software - Infrastructure|palantir.com|Denver|2020-09-30|2.37
BAC|Bank of America Corporation|NYSE|Banks - Diversified|bankofamerica.com|Charlotte|1973-02-21|7.5
WFC|Wells Fargo & Company|NYSE|Banks - Diversified|wellsfargo.com|San Francisco|1972-06-01|3.2
GS|The Goldman Sachs Group, Inc.|NYSE|Financial - Capital Markets|goldmansachs.com|New York|1999-05-04|0.31
MS|Morgan Stanley|NYSE|Financial - Capital Markets|morganstanley.com|New York|1993-02-23|1.6
CVX|Chevron Corporation|NYSE|Oil & Gas Integrated|chevron.com|Houston|1962-01-02|2.0
MRK|Merck & Co., Inc.|NYSE|Drug Manufacturers - General|merck.com|Rahway|1962-01-02|2.5
ABBV|AbbVie Inc.|NYSE|Drug Manufacturers - General|abbvie.com|North Chicago|2013-01-02|1.77
PFE|Pfizer Inc.|NYSE|Drug Manufacturers - General|pfizer.com|New York|1972-06-01|5.69
AMGN|Amgen Inc.|NASDAQ|Drug Manufacturers - General|amgen.com|Thousand Oaks|1983-06-17|0.54
T|AT&T Inc.|NYSE|Telecommunications Services|att.com|Dallas|1984-07-19|7.2
VZ|Verizon Communications Inc.|NYSE|Telecommunications Services|verizon.com|New York|1983-11-21|4.22
NKE|NIKE, Inc.|NYSE|Apparel - Footwear & Accessories|nike.com|Beaverton|1980-12-02|1.48
MCD|McDonald's Corporation|NYSE|Restaurants|mcdonalds.com|Chicago|1966-07-05|0.71
SBUX|Starbucks Corporation|NASDAQ|Restaurants|starbucks.com|Seattle|1992-06-26|1.14
BA|The Boeing Company|NYSE|Aerospace & Defense|boeing.com|Arlington|1962-01-02|0.76
CAT|Caterpillar Inc.|NYSE|Agricultural - Machinery|caterpillar.com|Irving|1962-01-02|0.47
GE|General Electric Company|NYSE|Aerospace & Defense|geaerospace.com|Cincinnati|1962-01-02|1.06
F|Ford Motor Company|NYSE|Auto - Manufacturers|ford.com|Dearborn|1972-06-01|3.98
SIRI|Sirius XM Holdings Inc.|NASDAQ|Entertainment|siriusxm.com|New York|1994-09-13|0.34
UBER|Uber Technologies, Inc.|NYSE|Software - Application|uber.com|San Francisco|2019-05-10|2.09
PYPL|PayPal Holdings, Inc.|NASDAQ|Financial - Credit Services|paypal.com|San Jose|2015-07-06|0.96
SPY|SPDR S&P 500 ETF Trust|AMEX|Asset Management|ssga.com|Boston|1993-01-29|1.03
QQQ|Invesco QQQ Trust, Series 1|NASDAQ|Asset Management|invesco.com|Atlanta|1999-03-10|0.65
DIA|SPDR Dow Jones Industrial Average ETF Trust|AMEX|Asset Management|ssga.com|Boston|1998-01-20|0.078
IWM|iShares Russell 2000 ETF|AMEX|Asset Management|ishares.com|San Francisco|2000-05-26|0.3
VOO|Vanguard S&P 500 ETF|AMEX||investor.vanguard.com|Valley Forge|2010-09-09|1.2
VTI|Vanguard Total Stock Market ETF|AMEX||investor.vanguard.com|Valley Forge|2001-06-15|1.6
"""  # noqa: E501
_INDUSTRY_SECTORS = {
    "Aerospace & Defense": "Industrials",
    "Agricultural - Machinery": "Industrials",
    "Apparel - Footwear & Accessories": "Consumer Cyclical",
    "Apparel - Retail": "Consumer Cyclical",
    "Asset Management": "Financial Services",
    "Auto - Manufacturers": "Consumer Cyclical",
    "Auto - Parts": "Consumer Cyclical",
    "Banks - Diversified": "Financial Services",
    "Banks - Regional": "Financial Services",
    "Beverages - Non-Alcoholic": "Consumer Defensive",
    "Biotechnology": "Healthcare",
    "Communication Equipment": "Technology",
    "Consumer Electronics": "Technology",
    "Discount Stores": "Consumer Defensive",
    "Drug Manufacturers - General": "Healthcare",
    "Entertainment": "Communication Services",
    "Financial - Capital Markets": "Financial Services",
    "Financial - Credit Services": "Financial Services",
    "Gold": "Basic Materials",
    "Home Improvement": "Consumer Cyclical",
    "Household & Personal Products": "Consumer Defensive",
    "Information Technology Services": "Technology",
    "Insurance - Diversified": "Financial Services",
    "Insurance - Property & Casualty": "Financial Services",
    "Integrated Freight & Logistics": "Industrials",
    "Internet Content & Information": "Communication Services",
    "Medical - Devices": "Healthcare",
    "Medical - Healthcare Plans": "Healthcare",
    "Oil & Gas Exploration & Production": "Energy",
    "Oil & Gas Integrated": "Energy",
    "Packaged Foods": "Consumer Defensive",
    "REIT - Industrial": "Real Estate",
    "Regulated Electric": "Utilities",
    "Restaurants": "Consumer Cyclical",
    "Semiconductors": "Technology",
    "Software - Application": "Technology",
    "Software - Infrastructure": "Technology",
    "Specialty Chemicals": "Basic Materials",
    "Specialty Industrial Machinery": "Industrials",
    "Specialty Retail": "Consumer Cyclical",
    "Telecommunications Services": "Communication Services",
}


def _known_companies() -> dict[str, tuple[str, str, str, str, str, str, str, float]]:
    """_KNOWN_COMPANY_ROWS by symbol: name, exchange, sector, industry, website, city, IPO
    date, shares outstanding in billions."""
    out = {}
    for line in _KNOWN_COMPANY_ROWS.strip().splitlines():
        sym, name, exchange, industry, site, city, ipo, shares = line.split("|")
        host = site if site.count(".") > 1 else f"www.{site}"
        sector = _INDUSTRY_SECTORS.get(industry, "")
        out[sym] = (name, exchange, sector, industry, f"https://{host}", city, ipo, float(shares))
    return out


_KNOWN_COMPANIES = _known_companies()
_ETF_INDEXES = {
    "SPY": "S&P 500 Index",
    "QQQ": "Nasdaq-100 Index",
    "DIA": "Dow Jones Industrial Average",
    "IWM": "Russell 2000 Index",
    "VOO": "S&P 500 Index",
    "VTI": "CRSP US Total Market Index",
}
# Indexes, coins and currencies the sandbox knows: a name, no company fields.
_KNOWN_OTHERS = {
    "^GSPC": "S&P 500",
    "^DJI": "Dow Jones Industrial Average",
    "^IXIC": "NASDAQ Composite",
    "BTCUSD": "Bitcoin USD",
    "BTC-USD": "Bitcoin USD",
    "ETHUSD": "Ethereum USD",
    "ETH-USD": "Ethereum USD",
    "SOL-USD": "Solana USD",
    "DOGE-USD": "Dogecoin USD",
    "EURUSD=X": "EUR/USD",
    "GBPUSD=X": "GBP/USD",
}
_EXCHANGE_NAMES = {
    "NASDAQ": "NASDAQ Global Select",
    "NYSE": "New York Stock Exchange",
    "AMEX": "New York Stock Exchange Arca",
    "INDEX": "Index",
    "CRYPTO": "Crypto",
    "FOREX": "Forex",
}
_NASDAQ_TIERS = ("NASDAQ Global Select", "NASDAQ Global Market", "NASDAQ Capital Market")
# city: (state, zip, area code)
_CITIES: dict[str, tuple[str, str, str]] = {
    "Cupertino": ("CA", "95014", "408"),
    "Redmond": ("WA", "98052", "425"),
    "Santa Clara": ("CA", "95051", "408"),
    "Seattle": ("WA", "98109", "206"),
    "Mountain View": ("CA", "94043", "650"),
    "Menlo Park": ("CA", "94025", "650"),
    "Austin": ("TX", "78701", "512"),
    "Omaha": ("NE", "68131", "402"),
    "Palo Alto": ("CA", "94304", "650"),
    "Indianapolis": ("IN", "46285", "317"),
    "New York": ("NY", "10017", "212"),
    "San Francisco": ("CA", "94105", "415"),
    "Purchase": ("NY", "10577", "914"),
    "Eden Prairie": ("MN", "55344", "952"),
    "Spring": ("TX", "77389", "832"),
    "New Brunswick": ("NJ", "08933", "732"),
    "Cincinnati": ("OH", "45202", "513"),
    "Atlanta": ("GA", "30339", "770"),
    "Issaquah": ("WA", "98027", "425"),
    "Bentonville": ("AR", "72716", "479"),
    "Burbank": ("CA", "91521", "818"),
    "Los Gatos": ("CA", "95032", "408"),
    "San Jose": ("CA", "95134", "408"),
    "San Diego": ("CA", "92121", "858"),
    "Dallas": ("TX", "75202", "214"),
    "Armonk": ("NY", "10504", "914"),
    "Denver": ("CO", "80202", "303"),
    "Charlotte": ("NC", "28255", "704"),
    "Houston": ("TX", "77002", "713"),
    "Rahway": ("NJ", "07065", "732"),
    "North Chicago": ("IL", "60064", "847"),
    "Thousand Oaks": ("CA", "91320", "805"),
    "Beaverton": ("OR", "97005", "503"),
    "Chicago": ("IL", "60607", "312"),
    "Arlington": ("VA", "22202", "703"),
    "Irving": ("TX", "75039", "972"),
    "Dearborn": ("MI", "48126", "313"),
    "Boston": ("MA", "02111", "617"),
    "Valley Forge": ("PA", "19482", "610"),
    "Minneapolis": ("MN", "55402", "612"),
    "Columbus": ("OH", "43215", "614"),
    "Phoenix": ("AZ", "85004", "602"),
    "Nashville": ("TN", "37203", "615"),
    "Pittsburgh": ("PA", "15222", "412"),
    "Salt Lake City": ("UT", "84101", "801"),
    "Raleigh": ("NC", "27601", "919"),
    "Boise": ("ID", "83702", "208"),
    "Portland": ("OR", "97204", "503"),
    "Cambridge": ("MA", "02139", "617"),
    "Irvine": ("CA", "92618", "949"),
}
_GENERATED_CITIES = (
    "Austin", "Boston", "Chicago", "Denver", "Atlanta", "Seattle", "San Diego", "Minneapolis",
    "Charlotte", "Columbus", "Phoenix", "Nashville", "Pittsburgh", "Houston", "Salt Lake City",
    "Raleigh", "Boise", "Portland", "Cambridge", "Irvine", "New York", "Dallas",
)  # fmt: skip
_NAME_WORDS = (
    "Northwind", "Bluewater", "Summit", "Crescent", "Ironwood", "Harbor", "Pinecrest",
    "Silverline", "Redstone", "Keystone", "Brightpath", "Cedar Ridge", "Granite", "Meridian",
    "Sterling", "Lakeshore", "Riverbend", "Oakmont", "Evergreen", "Falcon", "Horizon", "Beacon",
    "Copperleaf", "Westbrook", "Stonebridge", "Clearwater", "Alder", "Polaris", "Juniper",
    "Highland", "Aurora", "Cobalt", "Vantage", "Tidewater", "Blackhawk", "Silver Creek",
)  # fmt: skip
_NAME_ENDINGS = ("Inc.", "Corporation", "Holdings, Inc.", "Group, Inc.", "Corp.", "Co.")
# Made-up companies: name word|industry|what the company does.
_BUSINESS_ROWS = """
Dynamics|Aerospace & Defense|designs and builds flight-control systems and precision components for aerospace and defense customers
Therapeutics|Biotechnology|develops small-molecule therapies for cancer and rare diseases
Biosciences|Biotechnology|develops antibody treatments for immune and inflammatory disorders
Medical|Medical - Devices|makes minimally invasive surgical and patient-monitoring devices
Semiconductor|Semiconductors|designs analog and mixed-signal chips for industrial and automotive markets
Software|Software - Application|provides cloud software for finance and operations teams
Networks|Communication Equipment|makes routing and optical networking equipment for carriers and data centers
Systems|Information Technology Services|provides IT consulting, managed services and systems integration
Energy|Oil & Gas Exploration & Production|explores for and produces oil and natural gas in North America
Power|Regulated Electric|generates, transmits and distributes electricity to homes and businesses
Logistics|Integrated Freight & Logistics|offers trucking, freight brokerage and warehousing services
Financial|Banks - Regional|operates a regional bank offering commercial and consumer loans, deposits and wealth management
Capital|Asset Management|manages investment funds for institutional and retail clients
Insurance|Insurance - Property & Casualty|writes property and casualty insurance for homes, cars and small businesses
Foods|Packaged Foods|makes and markets packaged snacks, frozen meals and beverages
Brands|Apparel - Retail|designs and sells apparel and accessories through its stores and online
Motors|Auto - Parts|makes drivetrain and electrical components for vehicle makers
Restaurants|Restaurants|operates and franchises casual-dining restaurants
Materials|Specialty Chemicals|produces specialty chemicals and coatings for industrial customers
Resources|Gold|explores for and mines gold and silver in North America
Media|Entertainment|produces and distributes film, television and streaming content
Telecom|Telecommunications Services|provides fiber broadband, wireless and voice services
Realty|REIT - Industrial|owns and leases warehouses and distribution centers
Robotics|Specialty Industrial Machinery|builds industrial robots and factory automation systems
"""  # noqa: E501
_LINES_OF_BUSINESS = tuple(tuple(line.split("|")) for line in _BUSINESS_ROWS.strip().splitlines())
_STREETS = (
    "Market Street", "Innovation Drive", "Commerce Parkway", "Main Street", "Technology Way",
    "Harbor Boulevard", "Park Avenue", "Corporate Center Drive", "Research Boulevard",
    "Lake Street", "Enterprise Way", "Riverfront Plaza",
)  # fmt: skip
_FIRST_NAMES = {
    "Mr.": ("James", "Michael", "David", "Robert", "Daniel", "Thomas", "Andrew", "Mark", "Brian"),
    "Ms.": ("Sarah", "Jennifer", "Laura", "Karen", "Emily", "Rachel", "Susan", "Anne", "Maria"),
    "Dr.": ("Alan", "Priya", "Wei", "Elena", "Samuel", "Nadia"),
}
_LAST_NAMES = (
    "Whitfield", "Moreno", "Chen", "Patel", "Okafor", "Lindqvist", "Harrington", "Novak",
    "Brennan", "Takahashi", "Alvarez", "Sullivan", "Kowalski", "Reyes", "Fischer", "Greene",
)  # fmt: skip
# Share of made-up symbols whose ipoDate or website FMP leaves empty.
_BLANK_SHARE = 0.08
_IMAGE_URL = "https://images.financialmodelingprep.com/symbol/{symbol}.png"


def _pick(options: tuple[Any, ...], *parts: object) -> Any:
    return options[int(_unit(*parts) * len(options))]


def cusip_check(base: str) -> int:
    """The CUSIP check digit of an 8-character base (letters count 10..35)."""
    total = 0
    for k, ch in enumerate(base):
        value = int(ch, 36) * (2 if k % 2 else 1)
        total += value // 10 + value % 10
    return (10 - total % 10) % 10


def isin_check(base: str) -> int:
    """The ISIN check digit (Luhn over the digits, letters as 10..35) of an 11-character base."""
    digits = "".join(str(int(ch, 36)) for ch in base)
    total = 0
    for k, ch in enumerate(reversed(digits)):
        value = int(ch) * (2 if k % 2 == 0 else 1)
        total += value // 10 + value % 10
    return (10 - total % 10) % 10


def _identifiers(sym: str) -> tuple[str, str, str]:
    """cik, cusip and isin of ``sym``: plausible, fixed per symbol, check digits right."""
    if sym == "AAPL":  # FMP's own documentation example
        return "0000320193", "037833100", "US0378331005"
    cik = f"{1_000_000 + int(_unit('cik', sym) * 1_900_000):010d}"
    base = f"{int(_unit('cusip', sym) * 1_000_000):06d}10"  # issuer, then "10": common stock
    cusip = base + str(cusip_check(base))
    isin = "US" + cusip
    return cik, cusip, isin + str(isin_check(isin))


def _generated_name(sym: str) -> tuple[str, str, str, str]:
    """A plausible company name, sector, industry and business line for a made-up symbol."""
    word, industry, business = _pick(_LINES_OF_BUSINESS, "business", sym)
    sector = _INDUSTRY_SECTORS[industry]
    name = f"{_pick(_NAME_WORDS, 'name', sym)} {word} {_pick(_NAME_ENDINGS, 'ending', sym)}"
    return name, sector, industry, business


def _website(name: str) -> str:
    """www.<first two words>.com: "Cedar Ridge Media Inc." -> https://www.cedarridge.com."""
    slug = "".join(ch for ch in "".join(name.split()[:2]).lower() if ch.isalnum())
    return f"https://www.{slug}.com"


def _company_facts(sym: str) -> dict[str, Any]:
    """The parts of a profile that do not move with prices, keyed by FMP field name."""
    key = sym.replace(".", "-")
    tier = _pick(_NASDAQ_TIERS, "tier", sym)
    if key in _KNOWN_COMPANIES:
        name, exchange, sector, industry, website, city, ipo, shares = _KNOWN_COMPANIES[key]
        etf = key in _ETF_INDEXES
        if etf:
            description = (
                f"{name} is an exchange-traded fund that seeks to track the performance of the "
                f"{_ETF_INDEXES[key]}."
            )
        else:
            description = (
                f"{name} is a {sector.lower()} company ({industry}) headquartered in "
                f"{city}, {_CITIES[city][0]}."
            )
        full_name = _EXCHANGE_NAMES[exchange]
        default_image = False
    else:
        etf = False
        name, sector, industry, business = _generated_name(sym)
        city = _pick(_GENERATED_CITIES, "city", sym)
        founded = 1950 + int(_unit("founded", sym) * 65)
        description = (
            f"{name} {business}. The company was founded in {founded} and is headquartered in "
            f"{city}, {_CITIES[city][0]}."
        )
        exchange = "NASDAQ" if _unit("exchange", sym) < 0.6 else "NYSE"
        full_name = tier if exchange == "NASDAQ" else _EXCHANGE_NAMES["NYSE"]
        ipo_day = date(1985, 1, 1) + timedelta(days=int(_unit("ipo", sym) * 14_000))
        ipo = "" if _unit("no-ipo-date", sym) < _BLANK_SHARE else _weekday(ipo_day).isoformat()
        website = "" if _unit("no-website", sym) < _BLANK_SHARE else _website(name)
        shares = 10 ** (-2.3 + 2.5 * _unit("shares", sym))  # 5 million to 1.6 billion
        default_image = _unit("default-image", sym) < 0.35
    state, zip_code, area = _CITIES[city]
    title = _pick(tuple(_FIRST_NAMES), "ceo-title", sym)
    first, last = _pick(_FIRST_NAMES[title], "ceo-first", sym), _pick(_LAST_NAMES, "ceo-last", sym)
    cik, cusip, isin = _identifiers(sym)
    exchange_code = 200 + int(_unit("phone", sym) * 799)
    # Well-known companies employ tens of thousands to a few hundred thousand people.
    low, width = (4.0, 1.5) if key in _KNOWN_COMPANIES else (2.0, 3.2)
    employees = int(10 ** (low + width * _unit("employees", sym)))
    return {
        "companyName": name,
        "currency": "USD",
        "cik": cik,
        "isin": isin,
        "cusip": cusip,
        "exchangeFullName": full_name,
        "exchange": exchange,
        "industry": industry,
        "website": website,
        "description": description,
        "ceo": "" if etf else f"{title} {first} {last}",
        "sector": sector,
        "country": "US",
        "fullTimeEmployees": "" if etf else str(employees),
        "phone": f"({area}) {exchange_code}-{int(_unit('line', sym) * 10_000):04d}",
        "address": f"{1 + int(_unit('street-no', sym) * 4_000)} {_pick(_STREETS, 'street', sym)}",
        "city": city,
        "state": state,
        "zip": zip_code,
        "image": _IMAGE_URL.format(symbol=sym),
        "ipoDate": ipo,
        "defaultImage": default_image,
        "isEtf": etf,
        "shares": shares,
    }


def _other_facts(sym: str) -> dict[str, Any]:
    """Profile fields of an index, coin or currency: a name and an exchange, nothing else."""
    if sym.startswith("^"):
        exchange, name = "INDEX", _KNOWN_OTHERS.get(sym, f"{sym[1:]} Index")
    elif "=X" in sym:
        pair = sym.replace("=X", "")
        exchange, name = "FOREX", _KNOWN_OTHERS.get(sym, f"{pair[:3]}/{pair[3:]}")
    else:
        exchange, name = (
            "CRYPTO",
            _KNOWN_OTHERS.get(sym, sym.replace("-", "").replace("USD", " USD")),
        )
    blank = dict.fromkeys(
        ("cik", "isin", "cusip", "industry", "website", "ceo", "sector", "country",
         "fullTimeEmployees", "phone", "address", "city", "state", "zip", "ipoDate"),
        "",
    )  # fmt: skip
    return {
        **blank,
        "companyName": name,
        "currency": "USD",
        "exchangeFullName": _EXCHANGE_NAMES[exchange],
        "exchange": exchange,
        "description": f"{name}.",
        "image": _IMAGE_URL.format(symbol=sym),
        "defaultImage": False,
        "isEtf": False,
        # Circulating supply of a coin; an index or a currency has no market cap.
        "shares": 0.0 if exchange != "CRYPTO" else 10 ** (7 + 4 * _unit("supply", sym)) / 1e9,
    }


_PROFILE_FIELDS = (
    "symbol", "price", "marketCap", "beta", "lastDividend", "range", "change",
    "changePercentage", "volume", "averageVolume", "companyName", "currency", "cik", "isin",
    "cusip", "exchangeFullName", "exchange", "industry", "website", "description", "ceo",
    "sector", "country", "fullTimeEmployees", "phone", "address", "city", "state", "zip",
    "image", "ipoDate", "defaultImage", "isEtf", "isActivelyTrading", "isAdr", "isFund",
)  # fmt: skip


def company_profile(
    symbol: str,
    *,
    seed: int = 0,
    inactive: bool = False,
    generation: int = 0,
    as_of: date | None = None,
    injected_splits: Iterable[SplitSpec] = (),
    injected_dividends: Iterable[DividendSpec] = (),
) -> dict[str, Any]:
    """The ``/stable/profile`` row of ``symbol``: FMP's 36 fields in FMP's order.

    Identity fields (name, cik, sector, ...) depend on the symbol only; price, change and
    volume are the quote at market-clock ``generation``; ``range`` and ``averageVolume`` come
    from the ``full`` daily bars of the year up to ``as_of`` (default: the real New York date)
    and ``lastDividend`` is the split-adjusted sum of the dividends that went ex in that year.
    ``inactive`` makes ``isActivelyTrading`` false, as for a delisted symbol.
    """
    sym = symbol.upper()
    day = as_of or _today()
    kind = symbol_kind(sym)
    company = kind != "crypto" and not sym.startswith("^")
    facts = _company_facts(sym) if company else _other_facts(sym)
    quote = simulated_quote(sym, seed=seed, generation=generation)
    price, change = quote["price"], quote["change"]
    previous = price - change
    percent = (change / previous * 100).quantize(Decimal("0.0001")) if previous else Decimal(0)
    # The 52-week range and average volume are drawn around today's quote: building a year
    # of bars made each profile cost ~40 ms of the sandbox's one thread, which a 500-ticker
    # refresh then waited for in turn.
    low = (price * Decimal(0.62 + 0.25 * _unit("range_low", seed, sym))).quantize(_CENT)
    high = (price * Decimal(1.05 + 0.35 * _unit("range_high", seed, sym))).quantize(_CENT)
    price_range = f"{decimal_text(low)}-{decimal_text(high)}"
    average_volume = int(quote["volume"] * (0.8 + 0.4 * _unit("avg_volume", seed, sym)))
    year_ago = day - timedelta(days=365)
    last_dividend = sum(
        (
            d["adjDividend"]
            for d in simulated_dividends(
                sym,
                seed=seed,
                as_of=day,
                injected=injected_dividends,
                injected_splits=injected_splits,
            )
            if year_ago < date.fromisoformat(d["date"]) <= day
        ),
        Decimal(0),
    )
    if not company:
        beta = Decimal(0)
    elif facts["isEtf"]:
        beta = Decimal(950 + int(_unit("beta", seed, sym) * 300)).scaleb(-3)
    else:
        beta = Decimal(400 + int(_unit("beta", seed, sym) * 1500)).scaleb(-3)
    shares = Decimal(round(facts.pop("shares") * 1e9))
    row = {
        **facts,
        "symbol": sym,
        "price": price,
        "marketCap": int(price * shares),
        "beta": beta,
        "lastDividend": _plain(last_dividend) if last_dividend else Decimal(0),
        "range": price_range,
        "change": change,
        "changePercentage": abs(percent) if percent.is_zero() else percent,
        "volume": quote["volume"],
        "averageVolume": average_volume,
        "isActivelyTrading": not inactive,
        "isAdr": False,
        "isFund": False,
    }
    return {name: row[name] for name in _PROFILE_FIELDS}
