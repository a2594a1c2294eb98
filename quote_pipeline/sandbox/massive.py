"""Massive's (formerly Polygon.io's) dialect of the sandbox, served beside FMP's /stable paths.

The same server, state, clock, generation, stats and fault injection answer:

* ``GET /v2/snapshot/locale/us/markets/stocks/tickers?tickers=A,B`` (Full Market Snapshot): the
  FMP sandbox's quote of each ticker at the current generation (``lastTrade.p`` = ``day.c`` =
  ``min.c`` = its price, ``todaysChange`` its change, ``prevDay.c`` price - change,
  ``day.v`` its volume), timestamps from the sandbox clock (``updated`` and the trade and
  quote ``t`` in nanoseconds, ``min.t`` in milliseconds). No ``tickers``: the market universe.
* ``GET /v2/aggs/grouped/locale/us/market/stocks/{date}?adjusted=`` (Daily Market Summary):
  every symbol of the market universe on that NYSE session; ``adjusted=false`` bars are the
  ``non-split-adjusted`` FMP bars, ``adjusted=true`` (the default) the ``full`` ones as of the
  sandbox's today. ``t`` is the session's close in ms.
* ``GET /v2/aggs/ticker/{T}/range/1/day/{from}/{to}?adjusted=&sort=&limit=``: the same bars of
  one ticker, ``t`` the session's New York midnight in ms.
* ``GET /v2/aggs/ticker/{T}/prev?adjusted=``: the last session before today, ``t`` its close.

Auth is ``Authorization: Bearer KEY`` or ``apiKey=KEY`` with SandboxConfig.massive_api_key;
errors are Massive's JSON bodies (``{"status":"ERROR","request_id","error"}``, 403
``{"status":"NOT_AUTHORIZED","request_id","message"}``), never FMP's ``{"Error Message"}``.

Faults (the one FaultConfig): latency, server_error_rate, rate_limit_rate, calls_per_minute and
daily_quota (a window and quota of Massive's own, answered with Massive's 429 body or, for some
draws, an empty 429) act on every request. The symbol faults act on the tickers a request
names (``tickers=`` or the path's ticker): server_error_symbols (5xx), hang_symbols,
error_body_symbols (200 with status ERROR), malformed_symbols (a truncated body); and on the
rows: unknown_symbols (absent, or resultsCount 0), bad_shape_symbols (``c``/``v`` broken), the
massive_* endpoint gates (absent from snapshot/grouped answers, 403 on the per-ticker ones).
FaultConfig.plan_gated_symbols and limit_reach_in_200 are FMP's only.

Whole-market answers are built from per-symbol pieces cached where they are pure (a session's
bars for a universe, a generation's snapshot of a symbol), so repeated and 5,000-symbol
requests stay fast; only the clock's timestamps and the faults are applied per request.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import re
import struct
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from decimal import Decimal
from typing import Any, NamedTuple

from aiohttp import web

from quote_pipeline.sandbox.corporate import (
    Split,
    SplitSpec,
    _adjusted_row,
    _factor,
    _raw_row,
    all_splits,
    normalize_splits,
)
from quote_pipeline.sandbox.market import (
    NEW_YORK,
    _Calendar,
    _nyse,
    _unit,
    decimal_text,
    simulated_quote,
)
from quote_pipeline.sandbox.server import (
    _SYMBOL_RE,
    GATED_ENDPOINTS,
    MASSIVE_AGGS_PATH,
    MASSIVE_GROUPED_PATH,
    MASSIVE_PLANS,
    MASSIVE_PREV_PATH,
    MASSIVE_SNAPSHOT_PATH,
    STATE_KEY,
    FaultConfig,
    _break_row,
    _draw,
    _server_error,
    _State,
    json_dumps,
)

PRICING_URL = "https://massive.com/pricing"
UNKNOWN_KEY_MESSAGE = "Unknown API Key"
NOT_ENTITLED_MESSAGE = (
    f"You are not entitled to this data. Please upgrade your plan at {PRICING_URL}"
)
BEFORE_CLOSE_MESSAGE = (
    "Attempted to request today's data before end of day. "
    f"Please upgrade your plan at {PRICING_URL}"
)
RATE_LIMIT_MESSAGE = (
    "You've exceeded the maximum requests per minute, please wait or upgrade your "
    "subscription to continue."
)
ERROR_BODY_MESSAGE = "Unknown error processing the request for {ticker}, please try again."
# Share of Massive's 429s sent with an empty body (the vendor sometimes does), drawn per request.
EMPTY_429_SHARE = 0.25
# Massive's aggregates: limit defaults to 5,000 base bars, at most 50,000.
DEFAULT_AGGS_LIMIT = 5000
MAX_AGGS_LIMIT = 50_000
TIMESPANS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")

_GROUPED_RE = re.compile(r"^/v2/aggs/grouped/locale/us/market/stocks/([^/]*)$")
_RANGE_RE = re.compile(r"^/v2/aggs/ticker/([^/]+)/range/([^/]*)/([^/]*)/([^/]*)/([^/]*)$")
_PREV_RE = re.compile(r"^/v2/aggs/ticker/([^/]+)/prev$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LOGGED_QUERY = ("adjusted", "sort", "limit", "include_otc")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_US = timedelta(microseconds=1)
_PERCENT_QUANTUM = Decimal("0.00001")
# Massive's exchange ids (NYSE, NASDAQ, ARCA, IEX, ...) and trade condition codes a last trade
# plausibly carries.
_EXCHANGES = (1, 4, 7, 8, 10, 11, 12, 15, 19, 21)
_CONDITIONS = ((12, 37), (37,), (14, 41), (12,), (41,), (37, 41))


# --- numbers ------------------------------------------------------------------------------


def number_text(value: Decimal) -> str:
    """``decimal_text(value)`` (the sandbox's exact JSON number), faster for the plain decimals
    bars are made of: those skip normalize()."""
    text = str(value)
    if "E" in text or "e" in text or "N" in text or "I" in text:
        return decimal_text(value)
    if "." in text:
        text = text.rstrip("0")
        return text + "0" if text.endswith(".") else text
    return text + ".0"


def _units_text(units: int, places: int) -> str:
    """The exact decimal ``units / 10**places`` (units >= 0) as ``decimal_text`` writes it."""
    text = str(units)
    if places == 0:
        return text + ".0"
    if len(text) <= places:
        text = "0" * (places + 1 - len(text)) + text
    return f"{text[:-places]}.{text[-places:].rstrip('0') or '0'}"


def _units_decimal(units: int, places: int) -> Decimal:
    return Decimal(units).scaleb(-places)


def _epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def _epoch_ns(moment: datetime) -> int:
    return (moment - _EPOCH) // _US * 1000


def _midnight_ms(day: date) -> int:
    return _epoch_ms(datetime.combine(day, day_time(0), tzinfo=NEW_YORK))


def _draws(*parts: object) -> tuple[int, ...]:
    """Thirty-two draws in [0, 65536) fixed by ``parts`` (one hash instead of thirty-two)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=64).digest()
    return struct.unpack(">32H", digest)


# --- daily bars ---------------------------------------------------------------------------


class _Bar(NamedTuple):
    o: Decimal
    h: Decimal
    low: Decimal
    c: Decimal
    v: int
    vw: Decimal
    n: int


def _trades(sym: str, day: date, seed: int, raw_volume: int) -> int:
    """A deterministic trade count: the as-traded volume over an average trade size of 40-200
    shares (the same whether the bar is split-adjusted or not)."""
    return max(1, raw_volume // (40 + int(_unit("massive-trades", seed, sym, day) * 160)))


def _bar(
    sym: str, cal: _Calendar, i: int, seed: int, splits: tuple[Split, ...], as_of: date | None
) -> _Bar:
    """Session ``i`` of ``sym``: as traded (``as_of`` None, FMP's non-split-adjusted bar) or
    split-adjusted as of ``as_of`` (FMP's ``full`` bar); built by the same functions."""
    raw = _raw_row(sym, cal, i, seed, splits)
    day = cal.sessions[i]
    row = raw if as_of is None else _adjusted_row(raw, sym, day, seed, _factor(splits, day, as_of))
    return _Bar(
        row["open"],
        row["high"],
        row["low"],
        row["close"],
        row["volume"],
        row["vwap"],
        _trades(sym, day, seed, raw["volume"]),
    )


def _bar_dict(bar: _Bar, t: int, ticker: str | None = None) -> dict[str, Any]:
    head: dict[str, Any] = {"T": ticker} if ticker is not None else {}
    return {
        **head,
        "o": bar.o,
        "h": bar.h,
        "l": bar.low,
        "c": bar.c,
        "v": bar.v,
        "vw": bar.vw,
        "t": t,
        "n": bar.n,
    }


def _bar_text(bar: _Bar, t: int, ticker: str | None = None) -> str:
    """``json_dumps(_bar_dict(...))``, written directly (the tickers need no escaping: they
    match the sandbox's symbol pattern)."""
    head = f'"T":"{ticker}",' if ticker is not None else ""
    return (
        f'{{{head}"o":{number_text(bar.o)},"h":{number_text(bar.h)},"l":{number_text(bar.low)},'
        f'"c":{number_text(bar.c)},"v":{bar.v},"vw":{number_text(bar.vw)},"t":{t},"n":{bar.n}}}'
    )


@functools.lru_cache(maxsize=8)
def _universe_splits(
    universe: tuple[str, ...], seed: int, injected: tuple[Any, ...]
) -> dict[str, tuple[Split, ...]]:
    # all_splits' own caches hold 4,096 symbols; a bigger universe would recompute every time.
    return {s: tuple(all_splits(s, seed=seed, injected=injected)) for s in universe}


@dataclass(frozen=True, slots=True)
class _GroupedDay:
    symbols: tuple[str, ...]
    texts: tuple[str, ...]  # each symbol's row as JSON (kept as text: a fifth of the memory)
    close_ms: int


@functools.lru_cache(maxsize=16)
def _grouped_day(
    universe: tuple[str, ...],
    seed: int,
    injected: tuple[Any, ...],
    day: date,
    as_of: date | None,
) -> _GroupedDay | None:
    """The grouped-daily rows of ``universe`` on ``day`` (None: not a session), pure and so
    cached: a backfill asks each day once, a test or a retry asks again."""
    cal = _nyse(day)
    i = cal.index.get(day)
    if i is None:
        return None
    splits = _universe_splits(universe, seed, injected)
    close_ms = _epoch_ms(cal.closes[i])
    texts = tuple(_bar_text(_bar(s, cal, i, seed, splits[s], as_of), close_ms, s) for s in universe)
    return _GroupedDay(universe, texts, close_ms)


def grouped_daily_bars(
    day: date,
    *,
    universe: Iterable[str],
    seed: int = 0,
    adjusted: bool = True,
    as_of: date | None = None,
    injected_splits: Iterable[SplitSpec] = (),
) -> list[dict[str, Any]]:
    """Grouped-daily ``results`` for ``universe`` on ``day`` ([] if not a session): as traded,
    or split-adjusted as of ``as_of`` (default: the real New York date)."""
    symbols = tuple(s.upper() for s in universe)
    injected = normalize_splits(injected_splits)
    as_of = (as_of or datetime.now(NEW_YORK).date()) if adjusted else None
    grouped = _grouped_day(symbols, seed, injected, day, as_of)
    if grouped is None:
        return []
    return [_parsed(text) for text in grouped.texts]


def _parsed(text: str) -> dict[str, Any]:
    """A cached row's JSON text back as a dict of exact Decimals."""
    return json.loads(text, parse_float=Decimal)


def _session_range(start: date, end: date) -> tuple[_Calendar, range]:
    cal = _nyse(end)
    return cal, range(bisect_left(cal.sessions, start), bisect_right(cal.sessions, end))


def daily_aggs(
    symbol: str,
    start: date,
    end: date,
    *,
    seed: int = 0,
    adjusted: bool = True,
    as_of: date | None = None,
    injected_splits: Iterable[SplitSpec] = (),
) -> list[dict[str, Any]]:
    """``/v2/aggs/ticker/{T}/range/1/day/{start}/{end}`` results, oldest first, ``t`` each
    session's New York midnight (ms)."""
    sym = symbol.upper()
    splits = tuple(all_splits(sym, seed=seed, injected=injected_splits))
    as_of = (as_of or datetime.now(NEW_YORK).date()) if adjusted else None
    cal, indexes = _session_range(start, end)
    return [
        _bar_dict(_bar(sym, cal, i, seed, splits, as_of), _midnight_ms(cal.sessions[i]))
        for i in indexes
    ]


# --- snapshot -----------------------------------------------------------------------------


class _Snap(NamedTuple):
    """One ticker's snapshot at one generation, prices in integer units of 10**-places."""

    ticker: str
    places: int
    change: Decimal
    percent: Decimal
    day: tuple[int, int, int, int]
    volume: int
    prev: tuple[int, int, int, int]
    prev_volume: int
    minute: tuple[int, int, int, int]
    minute_volume: int
    minute_trades: int
    trade_size: int
    trade_exchange: int
    trade_id: str
    trade_conditions: tuple[int, ...]
    trade_offset_ns: int
    bid: int
    ask: int
    bid_size: int
    ask_size: int
    quote_offset_ns: int


def _ohlc(open_: int, close: int, up: int, down: int, per: float) -> tuple[int, int, int, int]:
    """A bar from its open and close, the high ``up`` and the low ``down`` (draws out of
    65536) times ``per`` above and below them; every price at least one unit."""
    top, bottom = (open_, close) if open_ >= close else (close, open_)
    return open_, top + int(top * per * up), max(1, bottom - int(bottom * per * down)), close


_D = 1 / 65536  # a 16-bit draw to [0, 1)


def _snap(ticker: str, seed: int, generation: int) -> _Snap:
    quote = simulated_quote(ticker, seed=seed, generation=generation)
    price: Decimal = quote["price"]
    change: Decimal = quote["change"]
    volume: int = quote["volume"]
    places = max(0, -int(price.as_tuple().exponent))
    close = int(price.scaleb(places))
    prev_close = close - int(change.scaleb(places))
    percent = (change / _units_decimal(prev_close, places) * 100).quantize(_PERCENT_QUANTUM)
    percent = abs(percent) if percent.is_zero() else percent
    u = _draws("massive-snapshot", seed, ticker, generation)
    day_open = max(1, prev_close + round(prev_close * 0.006 * (2 * u[0] * _D - 1)))
    prev_open = max(1, prev_close + round(prev_close * 0.012 * (2 * u[3] * _D - 1)))
    minute_open = max(1, close + round(close * 0.0008 * (2 * u[7] * _D - 1)))
    minute_volume = max(1, int(volume * (0.0005 + 0.002 * u[10] * _D)))
    spread = 1 + u[17] * 4 // 65536
    return _Snap(
        ticker,
        places,
        change,
        percent,
        _ohlc(day_open, close, u[1], u[2], 0.01 * _D),
        volume,
        _ohlc(prev_open, prev_close, u[4], u[5], 0.01 * _D),
        max(1, int(volume * (0.7 + 0.6 * u[6] * _D))),
        _ohlc(minute_open, close, u[8], u[9], 0.0005 * _D),
        minute_volume,
        max(1, minute_volume // (20 + u[11] * 80 // 65536)),
        1 + u[12] * 400 // 65536,
        _EXCHANGES[u[13] * len(_EXCHANGES) // 65536],
        str(10**13 + (u[14] << 32 | u[15] << 16 | u[16]) % (9 * 10**13)),
        _CONDITIONS[u[18] * len(_CONDITIONS) // 65536],
        int(u[19] * _D * 5e9),
        max(1, close - spread),
        close + spread,
        100 * (1 + u[20] * 20 // 65536),
        100 * (1 + u[21] * 20 // 65536),
        int(u[22] * _D * 1e9),
    )


def _plan_fields(plan: str) -> tuple[bool, bool]:
    """(lastTrade, lastQuote) in a snapshot on ``plan``: Starter has neither, Developer the
    last trade, Advanced both (Massive's plan table)."""
    return plan in ("developer", "advanced"), plan == "advanced"


def _agg_units(ohlc: tuple[int, int, int, int], places: int, volume: int) -> dict[str, Any]:
    o, h, low, c = ohlc
    return {
        "o": _units_decimal(o, places),
        "h": _units_decimal(h, places),
        "l": _units_decimal(low, places),
        "c": _units_decimal(c, places),
        "v": volume,
        "vw": _units_decimal((o + h + low + c) * 25, places + 2),
    }


def _snap_dict(snap: _Snap, plan: str, updated_ns: int, minute_ms: int) -> dict[str, Any]:
    p = snap.places
    row: dict[str, Any] = {
        "ticker": snap.ticker,
        "todaysChange": snap.change,
        "todaysChangePerc": snap.percent,
        "updated": updated_ns,
        "day": _agg_units(snap.day, p, snap.volume),
        "min": {
            **_agg_units(snap.minute, p, snap.minute_volume),
            "t": minute_ms,
            "av": snap.volume,
            "n": snap.minute_trades,
        },
        "prevDay": _agg_units(snap.prev, p, snap.prev_volume),
    }
    with_trade, with_quote = _plan_fields(plan)
    if with_trade:
        row["lastTrade"] = {
            "p": _units_decimal(snap.day[3], p),
            "s": snap.trade_size,
            "t": updated_ns - snap.trade_offset_ns,
            "x": snap.trade_exchange,
            "i": snap.trade_id,
            "c": list(snap.trade_conditions),
        }
    if with_quote:
        row["lastQuote"] = {
            "p": _units_decimal(snap.bid, p),
            "s": snap.bid_size,
            "P": _units_decimal(snap.ask, p),
            "S": snap.ask_size,
            "t": updated_ns - snap.quote_offset_ns,
        }
    return row


def _agg_text(ohlc: tuple[int, int, int, int], places: int, volume: int) -> str:
    o, h, low, c = ohlc
    vw = _units_text((o + h + low + c) * 25, places + 2)
    return (
        f'"o":{_units_text(o, places)},"h":{_units_text(h, places)},'
        f'"l":{_units_text(low, places)},"c":{_units_text(c, places)},"v":{volume},"vw":{vw}'
    )


@functools.lru_cache(maxsize=32_768)
def _snap_template(ticker: str, seed: int, generation: int, plan: str) -> tuple[str, int, int]:
    """The snapshot's JSON text with %d for updated, min.t and (per plan) the trade and quote
    times; and the trade's and quote's age in ns. ``_snap_dict`` is the same row as a dict."""
    snap = _snap(ticker, seed, generation)
    p = snap.places
    text = (
        f'{{"ticker":"{ticker}","todaysChange":{number_text(snap.change)},'
        f'"todaysChangePerc":{number_text(snap.percent)},"updated":%d,'
        f'"day":{{{_agg_text(snap.day, p, snap.volume)}}},'
        f'"min":{{{_agg_text(snap.minute, p, snap.minute_volume)},"t":%d,'
        f'"av":{snap.volume},"n":{snap.minute_trades}}},'
        f'"prevDay":{{{_agg_text(snap.prev, p, snap.prev_volume)}}}'
    )
    with_trade, with_quote = _plan_fields(plan)
    if with_trade:
        conditions = ",".join(map(str, snap.trade_conditions))
        text += (
            f',"lastTrade":{{"p":{_units_text(snap.day[3], p)},"s":{snap.trade_size},"t":%d,'
            f'"x":{snap.trade_exchange},"i":"{snap.trade_id}","c":[{conditions}]}}'
        )
    if with_quote:
        text += (
            f',"lastQuote":{{"p":{_units_text(snap.bid, p)},"s":{snap.bid_size},'
            f'"P":{_units_text(snap.ask, p)},"S":{snap.ask_size},"t":%d}}'
        )
    return text + "}", snap.trade_offset_ns, snap.quote_offset_ns


def _snapshot_times(now: datetime) -> tuple[int, int]:
    """(updated in ns, the current minute's start in ms) at ``now``."""
    updated_ns = _epoch_ns(now)
    now_ms = updated_ns // 1_000_000
    return updated_ns, now_ms - now_ms % 60_000


def snapshot_ticker(
    ticker: str,
    *,
    seed: int = 0,
    generation: int = 0,
    now: datetime | None = None,
    plan: str = "developer",
) -> dict[str, Any]:
    """One ``tickers`` entry of the full market snapshot (Decimals, exact), at ``now``
    (aware; default the real time) on Massive ``plan``."""
    if plan not in MASSIVE_PLANS:
        raise ValueError(f"plan must be one of {', '.join(MASSIVE_PLANS)}, got {plan!r}")
    updated_ns, minute_ms = _snapshot_times(now or datetime.now(UTC))
    return _snap_dict(_snap(ticker, seed, generation), plan, updated_ns, minute_ms)


# --- HTTP -----------------------------------------------------------------------------------


class _BadRequest(Exception):
    pass


@dataclass(frozen=True)
class _Route:
    template: str  # what stats count the request under
    symbols: list[str]  # the tickers the request names
    params: dict[str, str]  # path parameters worth logging (dates, multiplier, timespan)


def _tickers(raw: str | None) -> list[str]:
    """``tickers=`` as sent (Massive's tickers are case-sensitive), repeats dropped."""
    out: list[str] = []
    for part in (raw or "").split(","):
        ticker = part.strip()
        if ticker and ticker not in out:
            out.append(ticker)
    return out


def _route(request: web.Request) -> _Route | None:
    path = request.path
    if path in (MASSIVE_SNAPSHOT_PATH, MASSIVE_SNAPSHOT_PATH + "/"):
        return _Route(MASSIVE_SNAPSHOT_PATH, _tickers(request.query.get("tickers")), {})
    if match := _GROUPED_RE.match(path):
        return _Route(MASSIVE_GROUPED_PATH, [], {"date": match.group(1)})
    if match := _RANGE_RE.match(path):
        ticker, multiplier, timespan, start, end = match.groups()
        params = {"multiplier": multiplier, "timespan": timespan, "from": start, "to": end}
        return _Route(MASSIVE_AGGS_PATH, [ticker], params)
    if match := _PREV_RE.match(path):
        return _Route(MASSIVE_PREV_PATH, [match.group(1)], {})
    return None


def _auth(request: web.Request) -> tuple[str | None, str]:
    """The key a request offers and how it came: header, query, both (the header counts) or
    none. Only the "how" is ever logged."""
    header = request.headers.get("Authorization")
    query = request.query.get("apiKey")
    how = {(True, True): "both", (True, False): "header", (False, True): "query"}.get(
        (header is not None, query is not None), "none"
    )
    if header is not None:
        scheme, _, key = header.strip().partition(" ")
        return (key.strip() if scheme.lower() == "bearer" else None), how
    return query, how


def _request_id(state: _State) -> str:
    state.massive_requests += 1
    seed = state.config.seed
    return hashlib.blake2b(
        f"massive|{seed}|{state.massive_requests}".encode(), digest_size=16
    ).hexdigest()


def _json_text(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="application/json")


def _json(obj: Any, status: int = 200) -> web.Response:
    return _json_text(json_dumps(obj), status)


def _error(rid: str, message: str, status: int) -> web.Response:
    return _json({"status": "ERROR", "request_id": rid, "error": message}, status)


def _not_authorized(rid: str, message: str) -> web.Response:
    return _json({"status": "NOT_AUTHORIZED", "request_id": rid, "message": message}, 403)


def _rate_limited(state: _State, rid: str, identity: str, n: int) -> web.Response:
    if _draw(state.config.seed, "massive-empty-429", identity, n) < EMPTY_429_SHARE:
        return web.Response(body=b"", status=429, content_type="application/json")
    return _error(rid, RATE_LIMIT_MESSAGE, 429)


def _known(ticker: str, faults: FaultConfig) -> bool:
    return bool(_SYMBOL_RE.match(ticker)) and ticker not in faults.unknown_symbols


def _gated(faults: FaultConfig, template: str) -> frozenset[str]:
    """Every symbol the massive_* gates refuse on ``template``."""
    gates = faults.endpoint_gated_symbols
    out: frozenset[str] = frozenset()
    for name, symbols in gates.items():
        if template in GATED_ENDPOINTS[name]:
            out |= symbols
    return out


def _adjusted(request: web.Request) -> bool:
    raw = request.query.get("adjusted")
    if raw is None or raw == "":
        return True
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise _BadRequest(f"Could not parse the 'adjusted' parameter: {raw!r} is not true or false.")


def _day(raw: str, name: str) -> date:
    """A YYYY-MM-DD date, or (for aggregates) a millisecond timestamp's New York date."""
    if _DATE_RE.match(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    elif raw.isdigit() and name in ("from", "to"):
        try:
            return datetime.fromtimestamp(int(raw) / 1000, NEW_YORK).date()
        except (OverflowError, OSError, ValueError):
            pass
    raise _BadRequest(f"Could not parse the '{name}' parameter: {raw!r} is not a YYYY-MM-DD date.")


def _before_close(state: _State, day: date) -> bool:
    """True if ``day`` is the sandbox's New York today, a session, and it has not closed."""
    now = state.now()
    if day != now.astimezone(NEW_YORK).date():
        return False
    cal = _nyse(day)
    i = cal.index.get(day)
    return i is not None and now < cal.closes[i]


def _bars_wanted(state: _State, adjusted: bool) -> date | None:
    """The as_of of the bars: the sandbox's today if split-adjusted, None if as traded."""
    return state.today() if adjusted else None


def _bad_row(row: dict[str, Any], seed: int, ticker: str) -> dict[str, Any]:
    return _break_row(row, seed, ticker, "c", "v")


def _snapshot(request: web.Request, state: _State, route: _Route, rid: str) -> web.Response:
    config = state.config
    if config.massive_plan == "basic":
        return _not_authorized(rid, NOT_ENTITLED_MESSAGE)
    faults = config.faults
    named = route.symbols
    for ticker in named:
        if ticker in faults.error_body_symbols and _known(ticker, faults):
            return _error(rid, ERROR_BODY_MESSAGE.format(ticker=ticker), 200)
    gated = _gated(faults, MASSIVE_SNAPSHOT_PATH)
    seed, generation, plan = config.seed, state.generation, config.massive_plan
    updated_ns, minute_ms = _snapshot_times(state.now())
    # The template's %d slots: updated, min.t, then lastTrade.t and lastQuote.t per the plan.
    slots = 2 + sum(_plan_fields(plan))
    parts: list[str] = []
    for ticker in named or config.market_universe:
        if ticker in gated or not _known(ticker, faults):
            continue
        if ticker in faults.bad_shape_symbols:
            row = _snap_dict(_snap(ticker, seed, generation), plan, updated_ns, minute_ms)
            broken = {k: dict(v) if isinstance(v, dict) else v for k, v in row.items()}
            for block in ("day", "min"):
                broken[block] = _bad_row(broken[block], seed, ticker)
            if "lastTrade" in broken:
                trade = broken["lastTrade"]
                broken["lastTrade"] = _break_row(trade, seed, ticker, "p", "s", "1.2K")
            parts.append(json_dumps(broken))
            continue
        template, trade_age, quote_age = _snap_template(ticker, seed, generation, plan)
        times = (updated_ns, minute_ms, updated_ns - trade_age, updated_ns - quote_age)
        parts.append(template % times[:slots])
    status = "DELAYED" if plan == "starter" else "OK"
    text = (
        f'{{"status":"{status}","count":{len(parts)},"request_id":"{rid}",'
        f'"tickers":[{",".join(parts)}]}}'
    )
    if any(t in faults.malformed_symbols for t in named):
        return _cut(text)
    return _json_text(text)


def _cut(text: str) -> web.Response:
    # Any proper prefix of a JSON object is invalid JSON, like a body cut off mid-transfer.
    return _json_text(text[: max(1, len(text) * 2 // 3)])


def _grouped(request: web.Request, state: _State, route: _Route, rid: str) -> web.Response:
    config = state.config
    day = _day(route.params["date"], "date")
    adjusted = _adjusted(request)
    if config.massive_plan == "basic" and _before_close(state, day):
        return _not_authorized(rid, BEFORE_CLOSE_MESSAGE)
    head = f'{{"status":"OK","queryCount":%d,"resultsCount":%d,"adjusted":{json_dumps(adjusted)}'
    grouped = None
    if day <= state.today():
        grouped = _grouped_day(
            config.market_universe, config.seed, config.splits, day, _bars_wanted(state, adjusted)
        )
    if grouped is None:  # not a session, or still to come
        return _json_text((head % (0, 0)) + f',"request_id":"{rid}"}}')
    faults = config.faults
    excluded = _gated(faults, MASSIVE_GROUPED_PATH) | faults.unknown_symbols
    bad = faults.bad_shape_symbols
    if not excluded and not bad:
        texts: Iterable[str] = grouped.texts
        count = len(grouped.texts)
    else:
        kept = []
        for symbol, text in zip(grouped.symbols, grouped.texts, strict=True):
            if symbol in excluded:
                continue
            if symbol in bad:
                text = json_dumps(_bad_row(_parsed(text), config.seed, symbol))
            kept.append(text)
        texts, count = kept, len(kept)
    body = head % (count, count) + f',"request_id":"{rid}","results":[{",".join(texts)}]}}'
    return _json_text(body)


def _ticker_fault(state: _State, ticker: str, template: str, rid: str) -> web.Response | None:
    """A per-ticker endpoint's gate (403) or error body (200 ERROR); None to answer."""
    faults = state.config.faults
    if ticker in _gated(faults, template):
        return _not_authorized(rid, NOT_ENTITLED_MESSAGE)
    if _known(ticker, faults) and ticker in faults.error_body_symbols:
        return _error(rid, ERROR_BODY_MESSAGE.format(ticker=ticker), 200)
    return None


def _per_ticker_answer(
    state: _State,
    ticker: str,
    adjusted: bool,
    rid: str,
    rows: list[dict[str, Any]],
) -> web.Response:
    faults = state.config.faults
    if ticker in faults.bad_shape_symbols:
        rows = [_bad_row(r, state.config.seed, ticker) for r in rows]
    body: dict[str, Any] = {
        "ticker": ticker,
        "status": "OK",
        "queryCount": len(rows),
        "resultsCount": len(rows),
        "adjusted": adjusted,
        "request_id": rid,
    }
    if rows:
        body["results"] = rows
    text = json_dumps(body)
    return _cut(text) if ticker in faults.malformed_symbols else _json_text(text)


def _aggs(request: web.Request, state: _State, route: _Route, rid: str) -> web.Response:
    config = state.config
    [ticker] = route.symbols
    multiplier, timespan = route.params["multiplier"], route.params["timespan"]
    if timespan not in TIMESPANS or not multiplier.isdigit() or int(multiplier) < 1:
        raise _BadRequest(
            f"Invalid aggregate window {multiplier}/{timespan}: multiplier must be a positive "
            f"integer and timespan one of {', '.join(TIMESPANS)}."
        )
    if (multiplier, timespan) != ("1", "day"):
        raise _BadRequest(
            f"The sandbox serves daily aggregates only (1/day), not {multiplier}/{timespan}."
        )
    start = _day(route.params["from"], "from")
    end = _day(route.params["to"], "to")
    adjusted = _adjusted(request)
    sort = request.query.get("sort") or "asc"
    if sort not in ("asc", "desc"):
        raise _BadRequest(f"Could not parse the 'sort' parameter: {sort!r} is not asc or desc.")
    raw_limit = request.query.get("limit") or str(DEFAULT_AGGS_LIMIT)
    if not raw_limit.isdigit() or int(raw_limit) < 1:
        raise _BadRequest(f"Could not parse the 'limit' parameter: {raw_limit!r}.")
    limit = min(int(raw_limit), MAX_AGGS_LIMIT)
    today = state.today()
    if config.massive_plan == "basic" and start <= today <= end and _before_close(state, today):
        return _not_authorized(rid, BEFORE_CLOSE_MESSAGE)
    fault = _ticker_fault(state, ticker, MASSIVE_AGGS_PATH, rid)
    if fault is not None:
        return fault
    rows: list[dict[str, Any]] = []
    if _known(ticker, config.faults) and start <= min(end, today):
        rows = daily_aggs(
            ticker,
            start,
            min(end, today),
            seed=config.seed,
            adjusted=adjusted,
            as_of=today,
            injected_splits=config.splits,
        )
        if sort == "desc":
            rows.reverse()
        rows = rows[:limit]
    return _per_ticker_answer(state, ticker, adjusted, rid, rows)


def _prev(request: web.Request, state: _State, route: _Route, rid: str) -> web.Response:
    config = state.config
    [ticker] = route.symbols
    adjusted = _adjusted(request)
    fault = _ticker_fault(state, ticker, MASSIVE_PREV_PATH, rid)
    if fault is not None:
        return fault
    rows: list[dict[str, Any]] = []
    if _known(ticker, config.faults):
        today = state.today()
        cal = _nyse(today)
        i = bisect_left(cal.sessions, today) - 1
        splits = tuple(all_splits(ticker, seed=config.seed, injected=config.splits))
        bar = _bar(ticker, cal, i, config.seed, splits, today if adjusted else None)
        rows = [_bar_dict(bar, _epoch_ms(cal.closes[i]), ticker)]
    return _per_ticker_answer(state, ticker, adjusted, rid, rows)


_HANDLERS = {
    MASSIVE_SNAPSHOT_PATH: _snapshot,
    MASSIVE_GROUPED_PATH: _grouped,
    MASSIVE_AGGS_PATH: _aggs,
    MASSIVE_PREV_PATH: _prev,
}


async def _answer(
    request: web.Request, state: _State, route: _Route | None, rid: str
) -> web.Response:
    config = state.config
    faults = config.faults
    if config.latency_ms:
        await asyncio.sleep(config.latency_ms / 1000)
    if route is None:
        message = f"Not Found: {request.path} is not an endpoint of this API"
        return _json({"status": "NOT_FOUND", "request_id": rid, "message": message}, 404)
    if request.method != "GET":
        return _error(rid, f"Method {request.method} is not allowed, use GET", 405)
    key, _ = _auth(request)
    if key != config.massive_api_key:
        return _error(rid, UNKNOWN_KEY_MESSAGE, 401)
    # Seeded draws keyed on how often this same request was seen: a retry gets a fresh draw
    # and a whole run replays identically.
    identity = f"{request.path}|{','.join(sorted(route.symbols))}"
    n = state.seen[identity]
    state.seen[identity] += 1
    if state.over_quota("massive") or state.over_rate("massive"):
        return _rate_limited(state, rid, identity, n)
    if _draw(config.seed, "rate_limit", identity, n) < faults.rate_limit_rate:
        return _rate_limited(state, rid, identity, n)
    if _draw(config.seed, "server_error", identity, n) < faults.server_error_rate or any(
        s in faults.server_error_symbols for s in route.symbols
    ):
        return _server_error(_draw(config.seed, "server_error_kind", identity, n))
    if any(s in faults.hang_symbols for s in route.symbols):
        await asyncio.sleep(faults.hang_seconds)
    try:
        return _HANDLERS[route.template](request, state, route, rid)
    except _BadRequest as exc:
        return _error(rid, str(exc), 400)


async def massive_api(request: web.Request) -> web.StreamResponse:
    """The aiohttp handler of every Massive path (/v1, /v2, /v3, /vX ...)."""
    state = request.app[STATE_KEY]
    started = time.time()
    route = _route(request)
    rid = _request_id(state)
    status = 499  # stays so if the client hangs up first
    try:
        response = await _answer(request, state, route, rid)
        status = response.status
        return response
    finally:
        params = dict(route.params) if route is not None else {}
        params.update({k: v for k, v in request.query.items() if k in _LOGGED_QUERY})
        state.record(
            started,
            route.template if route is not None else request.path,
            list(route.symbols) if route is not None else [],
            status,
            params,
            # How the key came (header, query, both, none), never the key.
            {"provider": "massive", "auth": _auth(request)[1]},
        )


__all__ = [
    "BEFORE_CLOSE_MESSAGE",
    "NOT_ENTITLED_MESSAGE",
    "RATE_LIMIT_MESSAGE",
    "UNKNOWN_KEY_MESSAGE",
    "daily_aggs",
    "grouped_daily_bars",
    "massive_api",
    "number_text",
    "snapshot_ticker",
]
