"""Deterministic simulated market data for the FMP sandbox (pure functions, no I/O)."""

from __future__ import annotations

import functools
import hashlib
import math
import warnings
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
BAR_MINUTES = 5
# The calendar is built once over a fixed start so that "previous session" (and therefore
# every bar's open) never depends on when or for which range it was asked.
CALENDAR_START = date(2000, 1, 1)

SymbolKind = Literal["stock", "penny", "crypto"]

# Symbols whose prices sit at the limits of what the tables promise to keep exactly: 15
# integer digits with 8 decimals, and crypto dust with 8 decimals. Their quotes and daily
# bars are exact decimals built from these (never through a float), so a test comparing
# what was stored with the served JSON text, digit for digit, catches a float anywhere on
# the way (a float keeps 15-17 significant digits; the first price has 23) or a scale cut
# short. They move by whole quanta with the market clock and never leave their digits.
EXTREME_PRICES: dict[str, Decimal] = {
    "XBIGPRICE": Decimal("123456789012345.12345678"),
    "XDUSTPRICE": Decimal("0.00001234"),
}
_EXTREME_QUANTUM = Decimal("0.00000001")

# Illustrative price levels (US dollars, low to high) for symbols a demo is likely to show,
# roughly where they might trade in late 2026. They are NOT market data and are never
# refreshed: they only keep the sandbox from quoting AAPL at $5 or KO at $1,125. Keys are
# FMP spellings; "BRK.B" is looked up as "BRK-B". Every range is wide enough (high/low
# above exp(2 * _QUOTE_SWING)) for the generation wiggle to stay inside it.
REFERENCE_PRICES: dict[str, tuple[float, float]] = {
    # Largest US stocks.
    "AAPL": (180, 260),
    "MSFT": (380, 520),
    "NVDA": (100, 200),
    "AMZN": (170, 250),
    "GOOGL": (150, 260),
    "GOOG": (150, 260),
    "META": (500, 800),
    "TSLA": (220, 450),
    "BRK-B": (400, 520),
    "AVGO": (250, 400),
    "LLY": (650, 1000),
    "JPM": (230, 320),
    "V": (300, 380),
    "MA": (480, 620),
    "UNH": (250, 400),
    "XOM": (95, 130),
    "JNJ": (145, 200),
    "PG": (140, 180),
    "HD": (330, 430),
    "KO": (55, 75),
    "PEP": (125, 165),
    "COST": (850, 1050),
    "WMT": (85, 115),
    "DIS": (95, 130),
    "NFLX": (80, 140),  # after the 10-for-1 split of November 2025
    "AMD": (120, 240),
    "INTC": (20, 40),
    "CSCO": (55, 80),
    "ORCL": (150, 300),
    "CRM": (220, 320),
    "ADBE": (320, 460),
    "QCOM": (140, 190),
    "TXN": (160, 220),
    "IBM": (230, 310),
    "PLTR": (110, 200),
    "BAC": (40, 55),
    "WFC": (70, 95),
    "GS": (600, 820),
    "MS": (120, 165),
    "CVX": (135, 175),
    "MRK": (75, 105),
    "ABBV": (175, 235),
    "PFE": (22, 30),
    "AMGN": (270, 340),
    "T": (24, 31),
    "VZ": (37, 47),
    "NKE": (55, 85),
    "MCD": (270, 335),
    "SBUX": (80, 105),
    "BA": (180, 250),
    "CAT": (380, 560),
    "GE": (220, 310),
    "F": (9, 14),
    "SIRI": (19, 27),
    "UBER": (75, 105),
    "PYPL": (60, 85),
    # ETFs.
    "SPY": (560, 700),
    "QQQ": (500, 640),
    "DIA": (410, 510),
    "IWM": (200, 260),
    "VOO": (510, 640),
    "VTI": (280, 350),
    # Indexes.
    "^GSPC": (5600, 7000),
    "^DJI": (41000, 51000),
    "^IXIC": (18500, 24000),
    # Crypto and currencies (still "crypto" kind: their decimals do not change).
    "BTCUSD": (80000, 130000),
    "BTC-USD": (80000, 130000),
    "ETHUSD": (2500, 4800),
    "ETH-USD": (2500, 4800),
    "SOL-USD": (100, 260),
    "DOGE-USD": (0.08, 0.45),
    "EURUSD=X": (1.05, 1.25),
    "GBPUSD=X": (1.2, 1.45),
}

# The most the generation wiggle in simulated_quote moves log(price), term by term; a
# reference base is drawn that far inside its range so every quote stays in the range.
_SLOW_SWING, _FAST_SWING, _TICK_SWING = 0.04, 0.02, 0.004
_QUOTE_SWING = _SLOW_SWING + _FAST_SWING + _TICK_SWING

_CENT = Decimal("0.01")
_VWAP_DIVISOR = Decimal(4)
_PERCENT_QUANTUM = Decimal("0.00001")


def _unit(*parts: object) -> float:
    """A uniform draw in [0, 1) fixed by ``parts``."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _signed(*parts: object) -> float:
    """A uniform draw in [-1, 1) fixed by ``parts``."""
    return 2.0 * _unit(*parts) - 1.0


def decimal_text(value: Decimal) -> str:
    """Plain decimal notation, trailing zeros dropped but one kept, as FMP writes floats.

    Lives here (not in the server) so the pure data modules can format numbers inside strings,
    like a profile's "164.08-260.1" range, exactly as the JSON encoder writes them.
    """
    if not value.is_finite():
        raise ValueError(f"cannot encode {value} as JSON")
    text = format(value.normalize(), "f")
    if "." not in text:
        text += ".0"
    return text


def _quantize(value: float, places: int) -> Decimal:
    """Round a positive float to ``places`` decimals, never below one quantum."""
    quantum = Decimal(1).scaleb(-places)
    return max(Decimal(value).quantize(quantum, rounding=ROUND_HALF_EVEN), quantum)


@functools.lru_cache(maxsize=65_536)
def symbol_kind(symbol: str) -> SymbolKind:
    """Classify a symbol; independent of the seed so tests can rely on it."""
    sym = symbol.upper()
    if "-USD" in sym or "=X" in sym or (sym.endswith("USD") and len(sym) > 3):
        return "crypto"
    if reference_range(sym) is not None:
        return "stock"  # the hash below would make some of them (XOM, COST, ...) penny stocks
    if _unit("penny", sym) < 0.12:
        return "penny"
    return "stock"


def price_places(symbol: str) -> int:
    """Number of decimals a quote price of ``symbol`` carries."""
    kind = symbol_kind(symbol)
    if kind == "crypto":
        return 6 + int(_unit("places", symbol.upper()) * 3)
    return 4 if kind == "penny" else 2


def reference_range(symbol: str) -> tuple[float, float] | None:
    """The illustrative (low, high) of ``symbol`` in :data:`REFERENCE_PRICES`, if it has one."""
    sym = symbol.upper()
    return REFERENCE_PRICES.get(sym) or REFERENCE_PRICES.get(sym.replace(".", "-"))


@functools.lru_cache(maxsize=65_536)  # every bar asks; the hash is the cost
def _base_price(symbol: str, seed: int) -> float:
    kind = symbol_kind(symbol)
    u = _unit("base", seed, symbol)
    if (known := reference_range(symbol)) is not None:
        # Log-uniform inside the range, kept _QUOTE_SWING away from both ends.
        low, high = math.log(known[0]) + _QUOTE_SWING, math.log(known[1]) - _QUOTE_SWING
        return math.exp(low + (high - low) * u)
    if kind == "crypto":
        return 10 ** (-4.5 + 9.0 * u)  # 3e-5 .. 3e4: dust coins up to bitcoin-like
    if kind == "penny":
        return 0.01 + 0.9 * u
    return 10 ** (0.3 + 2.94 * u)  # 2 .. 1740, log-uniform; the generation wiggle stays < 2000


def _is_heavy(symbol: str, seed: int) -> bool:
    # About a third of symbols trade more than 2**31 shares so int32 overflows show up.
    return _unit("heavy", seed, symbol) < 1 / 3


@functools.lru_cache(maxsize=65_536)
def _base_volume(symbol: str, seed: int) -> float:
    u = _unit("volume", seed, symbol)
    if reference_range(symbol) is not None and symbol_kind(symbol) == "stock":
        if symbol.startswith("^"):
            # An index's volume is its members' sum: billions, past int32 on every day.
            return 2.6e9 + 3.0e9 * u
        # A listed stock or ETF: 2 to 160 million shares a day, like a large cap.
        return 10 ** (6.3 + 1.9 * u)
    if _is_heavy(symbol, seed):
        return 2.6e9 + 6.0e9 * u  # times 0.85..1.15 stays inside (2**31, 1e10)
    return 10 ** (3.0 + 6.2 * u)  # 1e3 .. ~1.6e9


def simulated_quote(symbol: str, *, seed: int = 0, generation: int = 0) -> dict[str, Any]:
    """Quote for ``symbol`` at market-clock ``generation``: symbol, price, change, volume."""
    sym = symbol.upper()
    if sym in EXTREME_PRICES:
        return _extreme_quote(sym, seed=seed, generation=generation)
    places = price_places(sym)
    phase1 = 2 * math.pi * _unit("phase1", seed, sym)
    phase2 = 2 * math.pi * _unit("phase2", seed, sym)
    wiggle = (
        _SLOW_SWING * math.sin(generation / 5 + phase1)
        + _FAST_SWING * math.sin(generation / 1.7 + phase2)
        + _TICK_SWING * _signed("tick", seed, sym, generation)
    )
    price = _quantize(_base_price(sym, seed) * math.exp(wiggle), places)
    quantum = Decimal(1).scaleb(-places)
    change_share = 0.03 * _signed("change", seed, sym, generation)
    change = (price * Decimal(change_share)).quantize(quantum, rounding=ROUND_HALF_EVEN)
    change = abs(change) if change.is_zero() else change  # no "-0.00"
    volume = int(_base_volume(sym, seed) * (0.85 + 0.3 * _unit("vol", seed, sym, generation)))
    return {"symbol": sym, "price": price, "change": change, "volume": volume}


def _extreme_quote(sym: str, *, seed: int, generation: int) -> dict[str, Any]:
    price = EXTREME_PRICES[sym] + generation % 50 * _EXTREME_QUANTUM
    # Decimal arithmetic throughout (28 significant digits is room for 15 + 8).
    change_share = Decimal(str(round(0.03 * _signed("change", seed, sym, generation), 6)))
    change = (price * change_share).quantize(_EXTREME_QUANTUM, rounding=ROUND_HALF_EVEN)
    change = abs(change) if change.is_zero() else change
    volume = int(_base_volume(sym, seed) * (0.85 + 0.3 * _unit("vol", seed, sym, generation)))
    return {"symbol": sym, "price": price, "change": change, "volume": volume}


@dataclass(frozen=True)
class _Calendar:
    sessions: list[date]
    opens: list[datetime]  # aware UTC
    closes: list[datetime]  # aware UTC
    index: dict[date, int]


@functools.cache
def _calendar(last_year: int) -> _Calendar:
    import exchange_calendars  # slow import; only paid when bars are asked for

    with warnings.catch_warnings():
        # exchange_calendars trips a pandas deprecation warning inside its own constructor.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        cal = exchange_calendars.get_calendar(
            "XNYS", start=CALENDAR_START.isoformat(), end=f"{last_year}-12-31"
        )
    schedule = cal.schedule
    sessions = [ts.date() for ts in schedule.index]
    opens = [ts.to_pydatetime().astimezone(UTC) for ts in schedule["open"]]
    closes = [ts.to_pydatetime().astimezone(UTC) for ts in schedule["close"]]
    return _Calendar(sessions, opens, closes, {d: i for i, d in enumerate(sessions)})


def _nyse(until: date) -> _Calendar:
    # Extend in whole years so the cache holds few calendars.
    return _calendar(max(until.year, date.today().year) + 1)


def nyse_sessions(start: date, end: date) -> list[date]:
    """NYSE trading sessions between ``start`` and ``end`` inclusive, oldest first."""
    cal = _nyse(end)
    return cal.sessions[bisect_left(cal.sessions, start) : bisect_right(cal.sessions, end)]


# Periods (days) and amplitudes (of log price) of the slow sines behind daily history.
_DAILY_WAVES = ((23, 0.05), (71, 0.08), (251, 0.15), (997, 0.25))
_DAILY_SWING = sum(amplitude for _, amplitude in _DAILY_WAVES)  # the most they move log(price)


@functools.lru_cache(maxsize=65_536)
def _daily_swing_scale(symbol: str) -> float:
    """How much of the daily waves a symbol gets: all of them unless it has a reference range.

    Unscaled, history wanders up to exp(0.53), 1.7x, either side of the base: harmless for
    made-up symbols, but SPY at 385 and 750 in the same year is no market. A reference
    symbol's history spans at most its range's own width, centred on the base.
    """
    known = reference_range(symbol)
    if known is None:
        return 1.0
    return min(1.0, math.log(known[1] / known[0]) / (2 * _DAILY_SWING))


@functools.lru_cache(maxsize=65_536)
def _wave_phases(symbol: str, seed: int) -> tuple[float, ...]:
    """The phase of each of the _DAILY_WAVES for ``symbol`` (cached: every bar needs them)."""
    return tuple(2 * math.pi * _unit("dphase", k, seed, symbol) for k in range(len(_DAILY_WAVES)))


def _level(symbol: str, day: date, seed: int) -> float:
    # A sum of slow sines gives trends of weeks to years while staying O(1) per date.
    t = day.toordinal()
    total = 0.0
    for (period, amplitude), phase in zip(_DAILY_WAVES, _wave_phases(symbol, seed), strict=True):
        total += amplitude * math.sin(2 * math.pi * t / period + phase)
    return max(_base_price(symbol, seed), 0.05) * math.exp(_daily_swing_scale(symbol) * total)


@functools.lru_cache(maxsize=65_536)  # each bar's open needs the previous close again
def _daily_close(symbol: str, day: date, seed: int) -> Decimal:
    return _quantize(
        _level(symbol, day, seed) * (1 + 0.012 * _signed("close", seed, symbol, day)), 2
    )


def _extreme_daily_bar(symbol: str, day: date, seed: int) -> dict[str, Any]:
    """A daily bar of an :data:`EXTREME_PRICES` symbol, in exact decimals of 8 places."""
    base = EXTREME_PRICES[symbol]
    open_ = base + int(_unit("xopen", symbol, day) * 90) * _EXTREME_QUANTUM
    close = base + int(_unit("xclose", symbol, day) * 90) * _EXTREME_QUANTUM
    high = max(open_, close) + 7 * _EXTREME_QUANTUM
    low = min(open_, close) - 3 * _EXTREME_QUANTUM
    return _daily_row(symbol, day, open_, high, low, close, seed)


def _daily_row(
    symbol: str, day: date, open_: Decimal, high: Decimal, low: Decimal, close: Decimal, seed: int
) -> dict[str, Any]:
    """An end-of-day row as FMP sends it, from the bar's prices."""
    change = close - open_
    percent = (change / open_ * 100).quantize(_PERCENT_QUANTUM)
    return {
        "symbol": symbol,
        "date": day.isoformat(),
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": int(_base_volume(symbol, seed) * (0.6 + 0.8 * _unit("dvol", seed, symbol, day))),
        "change": change,
        "changePercent": abs(percent) if percent.is_zero() else percent,  # no "-0.0"
        "vwap": (open_ + high + low + close) / _VWAP_DIVISOR,
    }


def _daily_bar(symbol: str, cal: _Calendar, i: int, seed: int) -> dict[str, Any]:
    day = cal.sessions[i]
    if symbol in EXTREME_PRICES:
        return _extreme_daily_bar(symbol, day, seed)
    close = _daily_close(symbol, day, seed)
    if i > 0:
        previous = _daily_close(symbol, cal.sessions[i - 1], seed)
        open_ = _quantize(float(previous) * (1 + 0.006 * _signed("gap", seed, symbol, day)), 2)
    else:
        open_ = _quantize(_level(symbol, day, seed), 2)
    high = _quantize(float(max(open_, close)) * (1 + 0.01 * _unit("hi", seed, symbol, day)), 2)
    low = _quantize(float(min(open_, close)) * (1 - 0.01 * _unit("lo", seed, symbol, day)), 2)
    # Rounding can only land on the grid point itself, so these are belt and braces.
    high = max(high, open_, close)
    low = min(low, open_, close)
    return _daily_row(symbol, day, open_, high, low, close, seed)


def simulated_daily_bars(
    symbol: str,
    start: date,
    end: date,
    *,
    seed: int = 0,
    as_of: date | None = None,
    injected_splits: Iterable[tuple[str, date, Decimal | int, Decimal | int]] = (),
) -> list[dict[str, Any]]:
    """Daily bars on NYSE sessions in [start, end], newest first, as ``historical-price-eod/full``
    serves them: split-adjusted as of ``as_of``.

    A split counts once ``as_of`` is on or after its ex-date; ``as_of`` None means the real
    New York date, which is what a sandbox following real time serves (and, once every split of
    the symbol is past, the same as any later clock). For a symbol without splits these are
    the economic bars, whatever ``as_of`` is. ``injected_splits`` is SandboxConfig.splits.
    """
    # corporate builds on this module's bar generator, so it is imported when first needed.
    from quote_pipeline.sandbox.corporate import split_adjusted_daily_bars

    return split_adjusted_daily_bars(
        symbol, start, end, seed=seed, as_of=as_of, injected_splits=injected_splits
    )


def _intraday_path(symbol: str, cal: _Calendar, i: int, seed: int, n_bars: int) -> list[float]:
    """Prices at each 5-minute boundary: a Brownian bridge from the day's open to its close."""
    day = cal.sessions[i]
    bar = _daily_bar(symbol, cal, i, seed)
    first, last = float(bar["open"]), float(bar["close"])
    walk = [0.0]
    for k in range(n_bars):
        walk.append(walk[-1] + 0.002 * _signed("step", seed, symbol, day, k))
    path = []
    for k in range(n_bars + 1):
        share = k / n_bars
        bridge = walk[k] - share * walk[-1]
        path.append((first + (last - first) * share) * (1 + bridge))
    return path


def _as_new_york(moment: datetime | None) -> datetime:
    """``moment`` as naive New York wall time; naive input is taken as New York time already."""
    if moment is None:
        moment = datetime.now(UTC)
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(NEW_YORK).replace(tzinfo=None)


def _intraday_bars_for(
    symbol: str, cal: _Calendar, i: int, seed: int, now_ny: datetime
) -> list[dict[str, Any]]:
    day = cal.sessions[i]
    open_at = cal.opens[i].astimezone(NEW_YORK).replace(tzinfo=None)
    close_at = cal.closes[i].astimezone(NEW_YORK).replace(tzinfo=None)
    step = timedelta(minutes=BAR_MINUTES)
    n_bars = int((close_at - open_at) / step)
    if n_bars <= 0 or open_at > now_ny:
        return []
    path = _intraday_path(symbol, cal, i, seed, n_bars)
    day_volume = _base_volume(symbol, seed) * (0.6 + 0.8 * _unit("dvol", seed, symbol, day))
    # U-shaped volume profile: busy open and close, quiet lunch.
    weights = [1 + 6 * (k / max(n_bars - 1, 1) - 0.5) ** 2 for k in range(n_bars)]
    weight_sum = sum(weights)
    bars: list[dict[str, Any]] = []
    for k in range(n_bars):
        bar_start = open_at + k * step
        if bar_start > now_ny:
            break
        open_ = _quantize(path[k], 2)
        close = _quantize(path[k + 1], 2)
        spread = 0.0015 * _unit("ihl", seed, symbol, day, k)
        high = max(_quantize(float(max(open_, close)) * (1 + spread), 2), open_, close)
        low = min(_quantize(float(min(open_, close)) * (1 - spread), 2), open_, close)
        noise = 0.5 + _unit("ivol", seed, symbol, day, k)
        volume = int(day_volume * weights[k] / weight_sum * noise)
        elapsed = int((now_ny - bar_start).total_seconds())
        if elapsed < BAR_MINUTES * 60:
            # The bar holding "now" is still forming: it drifts from its open towards its
            # final close and fills in high/low/volume as seconds pass.
            share = elapsed / (BAR_MINUTES * 60)
            jitter = 0.0005 * _signed("form", seed, symbol, day, k, elapsed)
            close = _quantize(
                (float(open_) + (float(close) - float(open_)) * share) * (1 + jitter), 2
            )
            high = max(
                open_, close, _quantize(float(open_) + (float(high) - float(open_)) * share, 2)
            )
            low = min(
                open_, close, _quantize(float(open_) - (float(open_) - float(low)) * share, 2)
            )
            volume = int(volume * (elapsed + 1) / (BAR_MINUTES * 60))
        bars.append(
            {
                "date": bar_start.strftime("%Y-%m-%d %H:%M:%S"),
                "open": open_,
                "low": low,
                "high": high,
                "close": close,
                "volume": volume,
            }
        )
    bars.reverse()
    return bars


def simulated_intraday_bars(
    symbol: str,
    start: date,
    end: date,
    *,
    seed: int = 0,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """5-minute bars on NYSE sessions in [start, end], newest first, none starting after ``now``.

    ``now`` defaults to the current time; a naive ``now`` is read as New York wall time.
    """
    sym = symbol.upper()
    now_ny = _as_new_york(now)
    cal = _nyse(end)
    lo = bisect_left(cal.sessions, start)
    hi = bisect_right(cal.sessions, min(end, now_ny.date()))
    bars: list[dict[str, Any]] = []
    for i in range(hi - 1, lo - 1, -1):
        bars.extend(_intraday_bars_for(sym, cal, i, seed, now_ny))
    return bars
