"""An FMP-compatible HTTP server with deterministic fault injection, for demos and tests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import functools
import hashlib
import ipaddress
import json
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from typing import Any

from aiohttp import web

from quote_pipeline.sandbox.corporate import (
    MAX_ACTION_ROWS,
    DividendSpec,
    SplitSpec,
    company_profile,
    normalize_dividends,
    normalize_splits,
    simulated_dividend_adjusted_bars,
    simulated_dividends,
    simulated_raw_daily_bars,
    simulated_splits,
)
from quote_pipeline.sandbox.market import (
    NEW_YORK,
    decimal_text,
    simulated_daily_bars,
    simulated_intraday_bars,
    simulated_quote,
)
from quote_pipeline.sandbox.news import (
    DEFAULT_LIMIT,
    LATEST_SYMBOLS,
    MAX_PAGE,
    news_page,
)

PRICING_URL = "https://financialmodelingprep.com/developer/docs/pricing"
INVALID_KEY_MESSAGE = (
    "Invalid API KEY. Feel free to create a Free API Key or visit "
    "https://site.financialmodelingprep.com/faqs?search=why-is-my-api-key-invalid "
    "for more information."
)
RESTRICTED_MESSAGE = (
    "Restricted Endpoint: This endpoint is not available under your current subscription "
    f"please visit our subscription page to upgrade your plan at {PRICING_URL}"
)
PLAN_GATED_MESSAGE = (
    "Premium Query Parameter: 'Special Endpoint : This value set for 'symbol' is not available "
    "under your current subscription please visit our subscription page to upgrade your plan "
    f"at {PRICING_URL}'"
)
LIMIT_REACH_MESSAGE = (
    "Limit Reach . Please upgrade your plan or visit our documentation for more details at "
    "https://site.financialmodelingprep.com/"
)
LEGACY_MESSAGE = (
    "Legacy Endpoint : Due to Legacy endpoints being no longer supported - This endpoint is only "
    "available for legacy users who have valid subscriptions prior August 31, 2025. Please visit "
    "our pricing page for more details about the available endpoints: "
    "https://site.financialmodelingprep.com/pricing-plans"
)
# FMP answers an out-of-range news page with a plain-text 400 (a JSON parser throws on it).
NEWS_PAGE_MESSAGE = "Invalid page parameter: the page must be an integer between 0 and {max_page}."
NEWS_LIMIT_MESSAGE = "Invalid limit parameter: the limit must be an integer."
LIMIT_MESSAGE = NEWS_LIMIT_MESSAGE
OTHER_ERROR_MESSAGE = (
    "Error processing the request for symbol '{symbol}': upstream data temporarily unavailable."
)

QUOTE_PATH = "/stable/quote-short"
BATCH_QUOTE_PATH = "/stable/batch-quote-short"
EOD_PATH = "/stable/historical-price-eod/full"
EOD_NON_SPLIT_ADJUSTED_PATH = "/stable/historical-price-eod/non-split-adjusted"
EOD_DIVIDEND_ADJUSTED_PATH = "/stable/historical-price-eod/dividend-adjusted"
EOD_PATHS = (EOD_PATH, EOD_NON_SPLIT_ADJUSTED_PATH, EOD_DIVIDEND_ADJUSTED_PATH)
INTRADAY_PATH = "/stable/historical-chart/5min"
NEWS_PATH = "/stable/news/stock"
NEWS_LATEST_PATH = "/stable/news/stock-latest"
NEWS_PATHS = (NEWS_PATH, NEWS_LATEST_PATH)
PROFILE_PATH = "/stable/profile"
SPLITS_PATH = "/stable/splits"
DIVIDENDS_PATH = "/stable/dividends"
API_PATHS = (
    QUOTE_PATH,
    BATCH_QUOTE_PATH,
    *EOD_PATHS,
    INTRADAY_PATH,
    *NEWS_PATHS,
    PROFILE_PATH,
    SPLITS_PATH,
    DIVIDENDS_PATH,
)
# Massive (formerly Polygon.io) endpoints, served by quote_pipeline.sandbox.massive beside FMP's.
# These are the stable templates the request log and by_endpoint count them under (the ticker
# and dates are in the real path, so it cannot be the key).
MASSIVE_SNAPSHOT_PATH = "/v2/snapshot/locale/us/markets/stocks/tickers"
MASSIVE_GROUPED_PATH = "/v2/aggs/grouped/locale/us/market/stocks"
MASSIVE_AGGS_PATH = "/v2/aggs/ticker/range"
MASSIVE_PREV_PATH = "/v2/aggs/ticker/prev"
MASSIVE_PATHS = (MASSIVE_SNAPSHOT_PATH, MASSIVE_GROUPED_PATH, MASSIVE_AGGS_PATH, MASSIVE_PREV_PATH)
# Massive's stock plans, cheapest first (see SandboxConfig.massive_plan).
MASSIVE_PLANS = ("basic", "starter", "developer", "advanced")
DEFAULT_MASSIVE_KEY = "sandbox-massive-key"
# The short endpoint names FaultConfig.endpoint_gated_symbols (and --gate) take, and the paths
# each gates. "eod" is the three daily variants at once; each also has a name of its own. The
# massive_* names gate one Massive endpoint: the symbol is left out of a snapshot or grouped
# answer and answers 403 NOT_AUTHORIZED on the per-ticker ones.
GATED_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "quote": (QUOTE_PATH,),
    "batch-quote": (BATCH_QUOTE_PATH,),
    "eod": EOD_PATHS,
    "eod-full": (EOD_PATH,),
    "eod-non-split-adjusted": (EOD_NON_SPLIT_ADJUSTED_PATH,),
    "eod-dividend-adjusted": (EOD_DIVIDEND_ADJUSTED_PATH,),
    "intraday": (INTRADAY_PATH,),
    "news": (NEWS_PATH,),
    "profile": (PROFILE_PATH,),
    "splits": (SPLITS_PATH,),
    "dividends": (DIVIDENDS_PATH,),
    "massive_snapshot": (MASSIVE_SNAPSHOT_PATH,),
    "massive_grouped": (MASSIVE_GROUPED_PATH,),
    "massive_aggs": (MASSIVE_AGGS_PATH,),
    "massive_prev": (MASSIVE_PREV_PATH,),
}
# FMP's news/stock answers for AAPL when `symbols` is missing (the singular is ignored).
NEWS_DEFAULT_SYMBOL = "AAPL"
LEGACY_PREFIXES = ("/api/v3", "/api/v4")

# Index symbols start with ^ (^GSPC); FX pairs end in =X.
_SYMBOL_RE = re.compile(r"^(?=.*[A-Z0-9])[A-Z0-9.\-=^]{1,20}$")
_LOG_LIMIT = 100_000

_HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_HTML_503 = (
    "<!DOCTYPE html><html><head><title>503 Service Temporarily Unavailable</title></head>"
    "<body><h1>Service Temporarily Unavailable</h1><p>The server is temporarily unable to "
    "service your request. Please try again later.</p></body></html>"
)


# --- exact JSON -------------------------------------------------------------------------


# Plain decimal notation, trailing zeros dropped but one kept, as FMP writes floats (defined
# next to the generators so they can format numbers inside strings the same way).
_decimal_text = decimal_text


def json_dumps(obj: Any) -> str:
    """Serialise to compact JSON, writing Decimals as exact numbers (never through float)."""
    if isinstance(obj, Decimal):
        return _decimal_text(obj)
    if obj is None or isinstance(obj, bool | int | float | str):
        return json.dumps(obj)
    if isinstance(obj, Mapping):
        items = (f"{json.dumps(str(k))}:{json_dumps(v)}" for k, v in obj.items())
        return "{" + ",".join(items) + "}"
    if isinstance(obj, list | tuple):
        return "[" + ",".join(json_dumps(v) for v in obj) + "]"
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


# --- configuration ----------------------------------------------------------------------


def _symbol_set(symbols: Collection[str]) -> frozenset[str]:
    if isinstance(symbols, str):  # a bare "AAPL,MSFT" is an easy slip
        symbols = symbols.split(",")
    return frozenset(s.strip().upper() for s in symbols if s.strip())


class GateMap(Mapping[str, frozenset[str]]):
    """An immutable, hashable mapping of endpoint name (see GATED_ENDPOINTS) to upper-case
    symbols, so a FaultConfig holding one stays hashable like the rest of the configuration."""

    __slots__ = ("_items",)

    def __init__(
        self, items: Mapping[str, Collection[str]] | Iterable[tuple[str, Collection[str]]] = ()
    ) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        merged: dict[str, frozenset[str]] = {}
        for name, symbols in pairs:
            endpoint = str(name).strip().lower()
            if endpoint not in GATED_ENDPOINTS:
                raise ValueError(
                    f"unknown endpoint {name!r} to gate; use one of {', '.join(GATED_ENDPOINTS)}"
                )
            merged[endpoint] = merged.get(endpoint, frozenset()) | _symbol_set(symbols)
        self._items = merged

    def __getitem__(self, key: str) -> frozenset[str]:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self._items == {k: frozenset(v) for k, v in other.items()}

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {sorted(v)!r}" for k, v in self._items.items())
        return f"GateMap({{{inner}}})"

    def gates(self, path: str, symbol: str) -> bool:
        """True if ``symbol`` is refused on the endpoint at ``path``."""
        return any(
            path in GATED_ENDPOINTS[name] and symbol in symbols
            for name, symbols in self._items.items()
        )


@dataclass(frozen=True)
class FaultConfig:
    """Which failures the sandbox injects; all draws are deterministic given the seed."""

    server_error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    calls_per_minute: int | None = None
    daily_quota: int | None = None
    limit_reach_in_200: bool = False
    unknown_symbols: Collection[str] = frozenset()
    error_body_symbols: Collection[str] = frozenset()
    malformed_symbols: Collection[str] = frozenset()
    bad_shape_symbols: Collection[str] = frozenset()
    hang_symbols: Collection[str] = frozenset()
    hang_seconds: float = 30.0
    # FMP only: these symbols answer FMP's 402 on every /stable endpoint. Massive paths ignore
    # them; refuse a symbol there with endpoint_gated_symbols' massive_* names instead.
    plan_gated_symbols: Collection[str] = frozenset()
    # These symbols answer 500 on every request (until the faults are changed at run time,
    # as a test does to let an outage of one symbol end).
    server_error_symbols: Collection[str] = frozenset()
    # Length of the calls_per_minute window; only tests should want anything but 60.
    rate_window_seconds: float = 60.0
    # These symbols' profiles say isActivelyTrading: false (delisted), nothing else changes.
    inactive_symbols: Collection[str] = frozenset()
    # FMP's free plan refuses some symbols on one endpoint and serves them on others (PG's
    # dividends answer 402 while its profile works). Endpoint name (see GATED_ENDPOINTS) ->
    # symbols that answer the plain-text 402 PLAN_GATED_MESSAGE there (and are left out of
    # batch and news answers there); on a massive_* endpoint, Massive's 403 NOT_AUTHORIZED
    # (and left out of snapshot and grouped daily answers).
    #
    # The other faults apply to Massive's paths too (see quote_pipeline.sandbox.massive), with
    # Massive's bodies; the symbol faults there act on the tickers a request names, and
    # calls_per_minute and daily_quota count each provider's calls apart (its own key's).
    endpoint_gated_symbols: Mapping[str, Collection[str]] = field(default_factory=GateMap)

    def __post_init__(self) -> None:
        for name in ("server_error_rate", "rate_limit_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate}")
        for name in ("calls_per_minute", "daily_quota"):
            limit = getattr(self, name)
            if limit is not None and limit < 0:
                raise ValueError(f"{name} must be >= 0, got {limit}")
        if self.hang_seconds < 0 or self.rate_window_seconds <= 0:
            raise ValueError("hang_seconds must be >= 0 and rate_window_seconds > 0")
        for name in (
            "unknown_symbols",
            "error_body_symbols",
            "malformed_symbols",
            "bad_shape_symbols",
            "hang_symbols",
            "plan_gated_symbols",
            "server_error_symbols",
            "inactive_symbols",
        ):
            object.__setattr__(self, name, _symbol_set(getattr(self, name)))
        object.__setattr__(self, "endpoint_gated_symbols", GateMap(self.endpoint_gated_symbols))

    def gated(self, path: str, symbol: str) -> bool:
        """True if ``symbol`` is refused on ``path`` by endpoint_gated_symbols."""
        gates = self.endpoint_gated_symbols
        return isinstance(gates, GateMap) and gates.gates(path, symbol)


def check_clock(moment: datetime | None) -> datetime | None:
    """``moment`` if it is None or time-zone aware; a naive time is ambiguous, so refused."""
    if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
        raise ValueError(
            f"the sandbox clock needs a time zone (like 2026-11-24T15:42:30-05:00), got {moment}"
        )
    return moment


def synthetic_symbols(count: int) -> list[str]:
    """``count`` made-up four-letter symbols, AAAA, AAAB, ...: the ones benchmarks/run.py
    tracks, so a benchmark's tickers are in a universe made with --universe-size."""
    if count < 0:
        raise ValueError(f"the number of synthetic symbols must be >= 0, got {count}")
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return ["".join(letters[i // 26**k % 26] for k in (3, 2, 1, 0)) for i in range(count)]


@functools.cache
def default_market_universe() -> tuple[str, ...]:
    """The symbols of quote_pipeline/data/sample_tickers.csv (its ``ticker`` column)."""
    text = (resources.files("quote_pipeline") / "data" / "sample_tickers.csv").read_text("utf-8")
    rows = csv.DictReader(text.splitlines())
    return normalize_universe(row["ticker"] for row in rows if (row.get("ticker") or "").strip())


def normalize_universe(symbols: Iterable[str]) -> tuple[str, ...]:
    """Upper-cased, stripped, first-seen order, repeats dropped; ValueError names any symbol
    the sandbox would not serve."""
    if isinstance(symbols, str):
        symbols = symbols.split(",")
    out: dict[str, None] = {}
    bad: list[str] = []
    for raw in symbols:
        symbol = str(raw).strip().upper()
        if not symbol:
            continue
        if _SYMBOL_RE.match(symbol):
            out.setdefault(symbol, None)
        else:
            bad.append(str(raw))
    if bad:
        raise ValueError(f"invalid symbol(s) in the market universe: {', '.join(map(repr, bad))}")
    return tuple(out)


@dataclass(frozen=True)
class SandboxConfig:
    """How the sandbox behaves: accepted key, plan, seed, latency, faults and clock.

    ``clock`` (aware) freezes the sandbox's "now" at that moment: the forming 5-minute bar,
    the end of the daily history, the newest news and the day the quota counts are all
    taken from it. None follows the real time.

    ``news_plan`` grants the news endpoints (FMP's Starter plan); ``premium`` (which
    includes Starter) grants them too, and also batch-quote-short.

    ``splits`` ((symbol, ex_date, numerator, denominator), ...) and ``dividends`` ((symbol,
    ex_date, amount), ...) inject corporate actions: a symbol named in one of them has exactly
    those actions of that kind instead of its generated ones, in /stable/splits,
    /stable/dividends, the three daily history endpoints and the profile alike. Decimal, int
    or numeric-string amounts are taken; they are kept as Decimal tuples (hashable).

    Massive's dialect (quote_pipeline.sandbox.massive) is served on the same port under /v2:
    ``massive_api_key`` is the key it accepts (``Authorization: Bearer KEY`` or ``apiKey=``;
    the FMP ``api_key`` is refused there, and it here), ``massive_plan`` one of MASSIVE_PLANS
    (basic refuses the snapshot and today's bars before the close; starter's snapshot is
    DELAYED, without lastTrade; only advanced has lastQuote), and ``market_universe`` the
    symbols the whole-market answers (grouped daily, a snapshot without ``tickers``) list:
    by default the sample tickers, any iterable of symbols (upper-cased, deduplicated).
    """

    api_key: str = "sandbox-key"
    premium: bool = False
    news_plan: bool = False
    seed: int = 0
    latency_ms: float = 0.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    clock: datetime | None = None
    # Seconds (monotonic) for the calls_per_minute window. Tests pass a fake they advance,
    # so a window's sliding is checked without waiting for it in real time.
    rate_clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    splits: tuple[SplitSpec, ...] = ()
    dividends: tuple[DividendSpec, ...] = ()
    massive_api_key: str = DEFAULT_MASSIVE_KEY
    massive_plan: str = "developer"
    market_universe: tuple[str, ...] = field(default_factory=default_market_universe, repr=False)

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms}")
        if self.massive_plan not in MASSIVE_PLANS:
            raise ValueError(
                f"massive_plan must be one of {', '.join(MASSIVE_PLANS)}, got {self.massive_plan!r}"
            )
        check_clock(self.clock)
        object.__setattr__(self, "market_universe", normalize_universe(self.market_universe))
        object.__setattr__(self, "splits", normalize_splits(self.splits))
        object.__setattr__(self, "dividends", normalize_dividends(self.dividends))


# --- state ------------------------------------------------------------------------------


def _draw(*parts: object) -> float:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class _State:
    """Mutable sandbox state; only touched from the event loop's thread."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.generation = 0
        # Like the generation, the clock is not a counter: reset() leaves it alone.
        self.clock: datetime | None = config.clock
        self.reset()

    def reset(self) -> None:
        self.log: deque[dict[str, Any]] = deque(maxlen=_LOG_LIMIT)
        self.requests_total = 0
        self.by_endpoint: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()
        # FMP's calls_per_minute window and daily quota; Massive's own are kept apart (each
        # vendor counts its own key's calls), with the same FaultConfig limits.
        self.window: deque[float] = deque()
        self.quota_day: date | None = None
        self.quota_used = 0
        self.massive_window: deque[float] = deque()
        self.massive_quota_day: date | None = None
        self.massive_quota_used = 0
        self.massive_requests = 0  # numbers Massive's request_id

    def record(
        self,
        t: float,
        path: str,
        symbols: list[str],
        status: int,
        window: dict[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.requests_total += 1
        self.by_endpoint[path] += 1
        self.by_status[str(status)] += 1
        entry: dict[str, object] = {"t": t, "path": path, "symbols": symbols, "status": status}
        if window:
            entry["params"] = window
        if extra:
            entry.update(extra)
        self.log.append(entry)

    def now(self) -> datetime:
        """The sandbox's current time (aware): the simulated clock if set, else the real one."""
        return self.clock if self.clock is not None else datetime.now(UTC)

    def today(self) -> date:
        """The sandbox's current New York date."""
        return self.now().astimezone(NEW_YORK).date()

    def clock_info(self) -> dict[str, Any]:
        return {"now": self.now().isoformat(), "simulated": self.clock is not None}

    def stats(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "by_endpoint": dict(self.by_endpoint),
            "by_status": dict(self.by_status),
            "generation": self.generation,
            "clock": self.clock.isoformat() if self.clock is not None else None,
            "quota_used": self.quota_used,
            "massive_quota_used": self.massive_quota_used,
            "requests": list(self.log),
        }

    def over_quota(self, provider: str = "fmp") -> bool:
        """Count one API request against ``provider``'s daily quota; True once it is spent."""
        today = self.today()
        if provider == "massive":
            if today != self.massive_quota_day:
                self.massive_quota_day, self.massive_quota_used = today, 0
            self.massive_quota_used += 1
            used = self.massive_quota_used
        else:
            if today != self.quota_day:
                self.quota_day, self.quota_used = today, 0
            self.quota_used += 1
            used = self.quota_used
        quota = self.config.faults.daily_quota
        return quota is not None and used > quota

    def over_rate(self, provider: str = "fmp") -> bool:
        """True if ``provider``'s rolling window is full; otherwise the request takes a slot."""
        faults = self.config.faults
        if faults.calls_per_minute is None:
            return False
        window = self.massive_window if provider == "massive" else self.window
        now = self.config.rate_clock()
        while window and window[0] <= now - faults.rate_window_seconds:
            window.popleft()
        if len(window) >= faults.calls_per_minute:
            return True
        window.append(now)
        return False


STATE_KEY = web.AppKey("fmp_sandbox_state", _State)


# --- responses --------------------------------------------------------------------------


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(text=json_dumps(obj), status=status, content_type="application/json")


def _error(message: str, status: int) -> web.Response:
    return _json({"Error Message": message}, status)


def _limit_reach(state: _State) -> web.Response:
    return _error(LIMIT_REACH_MESSAGE, 200 if state.config.faults.limit_reach_in_200 else 429)


def _server_error(draw: float) -> web.Response:
    if draw < 1 / 3:
        return web.Response(text="Internal Server Error", status=500, content_type="text/plain")
    if draw < 2 / 3:
        return web.Response(text=_HTML_502, status=502, content_type="text/html")
    return web.Response(text=_HTML_503, status=503, content_type="text/html")


def _truncated(obj: Any) -> web.Response:
    # Any proper prefix of a JSON array is invalid JSON, like a body cut off mid-transfer.
    text = json_dumps(obj)
    return web.Response(
        text=text[: max(1, len(text) * 2 // 3)], status=200, content_type="application/json"
    )


def _break_row(
    row: dict[str, Any],
    seed: int,
    symbol: str,
    price_field: str,
    count_field: str = "volume",
    bad_count: str = "1.2M",
) -> dict[str, Any]:
    """A row of ``symbol`` made wrong in one of a few ways real feeds have shown: a price that
    is text or null, the count field (volume; a date where a row has no volume) missing or
    text in the wrong format."""
    row = dict(row)
    variant = int(_draw(seed, "bad-shape", symbol) * 4)
    if variant == 0:
        row[price_field] = "n/a"
    elif variant == 1:
        row.pop(count_field, None)
    elif variant == 2:
        row[price_field] = None
    else:
        row[count_field] = bad_count
    return row


def _split_symbols(raw: str | None) -> list[str]:
    if not raw:
        return []
    out: list[str] = []
    for part in raw.split(","):
        sym = part.strip().upper()
        if sym and sym not in out:
            out.append(sym)
    return out


def _news_symbols(raw: str | None) -> list[str]:
    """The symbols news/stock filters on: exact spelling (lower case matches nothing, so it
    is kept as sent) and AAPL when the plural parameter is missing or empty."""
    out: list[str] = []
    for part in (raw or "").split(","):
        sym = part.strip()
        if sym and sym not in out:
            out.append(sym)
    return out or [NEWS_DEFAULT_SYMBOL]


def _request_symbols(request: web.Request) -> list[str]:
    query = request.query
    if request.path == NEWS_PATH:
        return _news_symbols(query.get("symbols"))
    if request.path == NEWS_LATEST_PATH:
        return []  # market-wide: FMP ignores any symbols filter there
    return _split_symbols(query.get("symbols")) or _split_symbols(query.get("symbol"))


def _parse_date(raw: str | None, name: str) -> date | None:
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise _BadRequest(f"Invalid '{name}' parameter: expected YYYY-MM-DD, got {raw!r}") from None


class _BadRequest(Exception):
    pass


def _is_known(symbol: str, state: _State) -> bool:
    return bool(_SYMBOL_RE.match(symbol)) and symbol not in state.config.faults.unknown_symbols


# --- endpoint handlers ------------------------------------------------------------------


def _plan_gated_text() -> web.Response:
    # FMP's per-endpoint refusal as measured: plain text, which a JSON parser throws on.
    return web.Response(text=PLAN_GATED_MESSAGE, status=402, content_type="text/plain")


def _single_symbol_fault(symbol: str, state: _State, path: str) -> web.Response | None:
    faults = state.config.faults
    if symbol in faults.plan_gated_symbols:
        return _error(PLAN_GATED_MESSAGE, 402)
    if faults.gated(path, symbol):
        return _plan_gated_text()
    if not _is_known(symbol, state):
        return _json([])
    if symbol in faults.error_body_symbols:
        return _error(OTHER_ERROR_MESSAGE.format(symbol=symbol), 200)
    return None


def _quote_row(symbol: str, state: _State) -> dict[str, Any]:
    seed = state.config.seed
    row = simulated_quote(symbol, seed=seed, generation=state.generation)
    if symbol in state.config.faults.bad_shape_symbols:
        row = _break_row(row, seed, symbol, "price")
    return row


def _single_symbol(request: web.Request) -> str:
    symbols = _split_symbols(request.query.get("symbol"))
    if not symbols:
        raise _BadRequest("Invalid or missing query parameter - symbol")
    return symbols[0]


def _quote(request: web.Request, state: _State) -> web.Response:
    symbol = _single_symbol(request)
    fault = _single_symbol_fault(symbol, state, QUOTE_PATH)
    if fault is not None:
        return fault
    rows = [_quote_row(symbol, state)]
    return _truncated(rows) if symbol in state.config.faults.malformed_symbols else _json(rows)


def _batch_quote(request: web.Request, state: _State) -> web.Response:
    if not state.config.premium:
        return _error(RESTRICTED_MESSAGE, 402)
    symbols = _split_symbols(request.query.get("symbols"))
    if not symbols:
        raise _BadRequest("Invalid or missing query parameter - symbols")
    faults = state.config.faults
    for symbol in symbols:
        if symbol in faults.error_body_symbols and _is_known(symbol, state):
            return _error(OTHER_ERROR_MESSAGE.format(symbol=symbol), 200)
    rows = [
        _quote_row(s, state)
        for s in symbols
        if _is_known(s, state)
        and s not in faults.plan_gated_symbols
        and not faults.gated(BATCH_QUOTE_PATH, s)
    ]
    if any(s in faults.malformed_symbols for s in symbols):
        return _truncated(rows)
    return _json(rows)


class _PlainBadRequest(Exception):
    """A 400 FMP answers in plain text rather than as a JSON error object."""


def _int_param(request: web.Request, name: str, default: int, message: str) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _PlainBadRequest(message) from None


def _break_news_row(row: dict[str, Any], seed: int, symbol: str) -> dict[str, Any]:
    """A news row of ``symbol`` made wrong in one of the ways a feed can be."""
    row = dict(row)
    variant = int(_draw(seed, "bad-shape-news", symbol) * 4)
    if variant == 0:
        row["publishedDate"] = row["publishedDate"].replace(" ", "T") + ".000Z"
    elif variant == 1:
        row.pop("title", None)
    elif variant == 2:
        row["publishedDate"] = None
    else:
        row["url"] = ""
    return row


def _news(request: web.Request, state: _State, latest: bool) -> web.Response:
    config = state.config
    if not (config.news_plan or config.premium):
        return _error(RESTRICTED_MESSAGE, 402)
    page_message = NEWS_PAGE_MESSAGE.format(max_page=MAX_PAGE)
    page = _int_param(request, "page", 0, page_message)
    if not 0 <= page <= MAX_PAGE:
        raise _PlainBadRequest(page_message)
    limit = _int_param(request, "limit", DEFAULT_LIMIT, NEWS_LIMIT_MESSAGE)
    start = _parse_date(request.query.get("from"), "from")
    end = _parse_date(request.query.get("to"), "to")
    faults = config.faults
    symbols: list[str | None]
    if latest:
        symbols = [*LATEST_SYMBOLS, None]
    else:
        requested = _news_symbols(request.query.get("symbols"))
        for symbol in requested:
            if symbol in faults.error_body_symbols and _is_known(symbol, state):
                return _error(OTHER_ERROR_MESSAGE.format(symbol=symbol), 200)
        # Unknown and plan-gated symbols are left out, as batch requests leave them out.
        symbols = [
            s
            for s in requested
            if _is_known(s, state)
            and s not in faults.plan_gated_symbols
            and not faults.gated(NEWS_PATH, s)
        ]
    now = state.now().astimezone(NEW_YORK).replace(tzinfo=None)
    rows = news_page(
        symbols, start=start, end=end, now=now, seed=config.seed, page=page, limit=limit
    )
    if faults.bad_shape_symbols:
        rows = [
            _break_news_row(r, config.seed, r["symbol"])
            if r["symbol"] in faults.bad_shape_symbols
            else r
            for r in rows
        ]
    if any(s in faults.malformed_symbols for s in symbols):
        return _truncated(rows)
    return _json(rows)


def _history_rows(
    request: web.Request, state: _State, path: str
) -> tuple[str, list[dict[str, Any]]] | web.Response:
    symbol = _single_symbol(request)
    start = _parse_date(request.query.get("from"), "from")
    end = _parse_date(request.query.get("to"), "to")
    fault = _single_symbol_fault(symbol, state, path)
    if fault is not None:
        return fault
    now = state.now()
    today = now.astimezone(NEW_YORK).date()
    config = state.config
    seed = config.seed
    if path == INTRADAY_PATH:
        end = end or today
        rows = simulated_intraday_bars(symbol, start or end, end, seed=seed, now=now)
        price_field = "close"
    else:
        # Future sessions have no bars yet; the default window is FMP's five years.
        end = min(end or today, today)
        if start is None:
            try:
                start = end.replace(year=end.year - 5)
            except ValueError:  # 29 February
                start = end.replace(year=end.year - 5, day=28)
        if path == EOD_NON_SPLIT_ADJUSTED_PATH:
            rows = simulated_raw_daily_bars(
                symbol, start, end, seed=seed, injected_splits=config.splits
            )
        elif path == EOD_DIVIDEND_ADJUSTED_PATH:
            rows = simulated_dividend_adjusted_bars(
                symbol,
                start,
                end,
                seed=seed,
                as_of=today,
                injected_splits=config.splits,
                injected_dividends=config.dividends,
            )
        else:
            rows = simulated_daily_bars(
                symbol, start, end, seed=seed, as_of=today, injected_splits=config.splits
            )
        price_field = "close" if path == EOD_PATH else "adjClose"
    if symbol in config.faults.bad_shape_symbols:
        rows = [_break_row(r, seed, symbol, price_field) for r in rows]
    return symbol, rows


def _history(request: web.Request, state: _State, path: str) -> web.Response:
    result = _history_rows(request, state, path)
    if isinstance(result, web.Response):
        return result
    symbol, rows = result
    return _respond(symbol, rows, state)


def _respond(symbol: str, rows: list[dict[str, Any]], state: _State) -> web.Response:
    """``rows`` as JSON, or cut short for a malformed symbol."""
    return _truncated(rows) if symbol in state.config.faults.malformed_symbols else _json(rows)


def _profile(request: web.Request, state: _State) -> web.Response:
    symbol = _single_symbol(request)
    fault = _single_symbol_fault(symbol, state, PROFILE_PATH)
    if fault is not None:
        return fault
    config = state.config
    row = company_profile(
        symbol,
        seed=config.seed,
        inactive=symbol in config.faults.inactive_symbols,
        generation=state.generation,
        as_of=state.today(),
        injected_splits=config.splits,
        injected_dividends=config.dividends,
    )
    if symbol in config.faults.bad_shape_symbols:
        row = _break_row(row, config.seed, symbol, "price")
    return _respond(symbol, [row], state)


def _corporate_actions(request: web.Request, state: _State, path: str) -> web.Response:
    """/stable/splits and /stable/dividends: one symbol's actions known by the clock's date,
    newest first, at most ``limit`` (FMP's cap: 1000)."""
    symbol = _single_symbol(request)
    limit = _int_param(request, "limit", MAX_ACTION_ROWS, LIMIT_MESSAGE)
    fault = _single_symbol_fault(symbol, state, path)
    if fault is not None:
        return fault
    config = state.config
    if path == SPLITS_PATH:
        rows = simulated_splits(
            symbol, seed=config.seed, as_of=state.today(), injected=config.splits
        )
        price_field = "numerator"
    else:
        rows = simulated_dividends(
            symbol,
            seed=config.seed,
            as_of=state.today(),
            injected=config.dividends,
            injected_splits=config.splits,
        )
        price_field = "dividend"
    rows = rows[: max(0, min(limit, MAX_ACTION_ROWS))]
    if symbol in config.faults.bad_shape_symbols:
        rows = [_break_row(r, config.seed, symbol, price_field, "date", "08/31/2020") for r in rows]
    return _respond(symbol, rows, state)


async def _answer(request: web.Request, state: _State, symbols: list[str]) -> web.Response:
    config = state.config
    faults = config.faults
    if config.latency_ms:
        await asyncio.sleep(config.latency_ms / 1000)
    path = request.path
    legacy = any(path == p or path.startswith(p + "/") for p in LEGACY_PREFIXES)
    if not legacy and path not in API_PATHS:
        return _error(f"Not Found: {path} is not an endpoint of this API", 404)
    if request.method != "GET":
        return _error(f"Method {request.method} is not allowed, use GET", 405)
    if request.query.get("apikey") != config.api_key:
        return _error(INVALID_KEY_MESSAGE, 401)
    if legacy:
        return _error(LEGACY_MESSAGE, 403)
    if state.over_quota() or state.over_rate():
        return _limit_reach(state)
    # Seeded draws keyed on how often this same request was seen: a retry gets a fresh draw
    # and a whole run replays identically.
    identity = f"{path}|{','.join(sorted(symbols))}"
    n = state.seen[identity]
    state.seen[identity] += 1
    if _draw(config.seed, "rate_limit", identity, n) < faults.rate_limit_rate:
        return _limit_reach(state)
    if _draw(config.seed, "server_error", identity, n) < faults.server_error_rate or any(
        s in faults.server_error_symbols for s in symbols
    ):
        return _server_error(_draw(config.seed, "server_error_kind", identity, n))
    if any(s in faults.hang_symbols for s in symbols):
        await asyncio.sleep(faults.hang_seconds)
    try:
        if path == QUOTE_PATH:
            return _quote(request, state)
        if path == BATCH_QUOTE_PATH:
            return _batch_quote(request, state)
        if path in NEWS_PATHS:
            return _news(request, state, latest=path == NEWS_LATEST_PATH)
        if path == PROFILE_PATH:
            return _profile(request, state)
        if path in (SPLITS_PATH, DIVIDENDS_PATH):
            return _corporate_actions(request, state, path)
        return _history(request, state, path)
    except _BadRequest as exc:
        return _error(str(exc), 400)
    except _PlainBadRequest as exc:
        return web.Response(text=str(exc), status=400, content_type="text/plain")


_LOGGED_PARAMS = frozenset({"from", "to", "page", "limit"})


async def _api(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    started = time.time()
    symbols = _request_symbols(request)
    status = 499  # stays so if the client hangs up first (nginx's "client closed request")
    try:
        response = await _answer(request, state, symbols)
        status = response.status
        return response
    finally:
        # The paging and date parameters a test may check; never the key.
        window = {k: v for k, v in request.query.items() if k in _LOGGED_PARAMS}
        state.record(started, request.path, symbols, status, window)


# --- admin ------------------------------------------------------------------------------


async def _admin_stats(request: web.Request) -> web.Response:
    return _json(request.app[STATE_KEY].stats())


async def _admin_reset(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.reset()
    return _json({"ok": True, "generation": state.generation})


async def _admin_advance(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.generation += 1
    return _json({"ok": True, "generation": state.generation})


def _parse_clock(body: Any) -> datetime | None:
    """The moment a POST /_sandbox/clock body names: ``{"now": "<ISO 8601>"}`` or null."""
    if not isinstance(body, dict) or "now" not in body:
        raise _BadRequest('expected a JSON object {"now": "<ISO 8601 with offset>" or null}')
    raw = body["now"]
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise _BadRequest(f"'now' must be an ISO 8601 string or null, got {raw!r}")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _BadRequest(f"'now' is not an ISO 8601 date-time: {raw!r}") from None
    try:
        return check_clock(moment)
    except ValueError as exc:
        raise _BadRequest(str(exc)) from None


async def _admin_clock(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if request.method == "POST":
        try:
            body = json.loads(await request.text())
        except ValueError:
            return _error("the body is not JSON", 400)
        try:
            state.clock = _parse_clock(body)
        except _BadRequest as exc:
            return _error(str(exc), 400)
    return _json({"ok": True, **state.clock_info()})


async def _admin_health(request: web.Request) -> web.Response:
    return _json({"ok": True})


async def _admin_unknown(request: web.Request) -> web.Response:
    return _error(f"Unknown sandbox admin endpoint: {request.method} {request.path}", 404)


def build_app(config: SandboxConfig | None = None) -> web.Application:
    """The aiohttp application serving the FMP imitation, Massive's dialect (under /v1, /v2,
    /v3, /vX) and the /_sandbox admin endpoints."""
    # massive builds on this module's helpers, so it is imported when an app is built.
    from quote_pipeline.sandbox.massive import massive_api

    app = web.Application()
    app[STATE_KEY] = _State(config or SandboxConfig())
    app.router.add_get("/_sandbox/stats", _admin_stats)
    app.router.add_post("/_sandbox/reset", _admin_reset)
    app.router.add_post("/_sandbox/advance", _admin_advance)
    app.router.add_get("/_sandbox/clock", _admin_clock)
    app.router.add_post("/_sandbox/clock", _admin_clock)
    app.router.add_get("/_sandbox/health", _admin_health)
    app.router.add_route("*", "/_sandbox/{tail:.*}", _admin_unknown)
    app.router.add_route("*", r"/{version:v[1-9X]}", massive_api)
    app.router.add_route("*", r"/{version:v[1-9X]}/{tail:.*}", massive_api)
    app.router.add_route("*", "/{tail:.*}", _api)
    return app


# --- runner -----------------------------------------------------------------------------


def check_loopback(host: str) -> str:
    """Return a bindable loopback address for ``host`` or raise ValueError."""
    if host == "localhost":
        return "127.0.0.1"  # one address, so port 0 cannot pick different ports per family
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValueError(
        f"the sandbox only listens on loopback addresses (127.0.0.1, ::1), not {host!r}"
    )


class SandboxServer:
    """Runs the sandbox on its own event loop in a background thread."""

    def __init__(
        self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or SandboxConfig()
        self.host = check_loopback(host)
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the sandbox is not running")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> SandboxServer:
        """Bind and serve; returns once the socket is listening."""
        if self._thread is not None:
            raise RuntimeError("the sandbox is already running")
        bound: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(self._loop, bound), name="fmp-sandbox", daemon=True
        )
        self._thread.start()
        try:
            self._port = bound.result(30)
        except BaseException:
            self._thread.join(30)
            self._thread = self._loop = None
            raise
        return self

    def _run(self, loop: asyncio.AbstractEventLoop, bound: concurrent.futures.Future[int]) -> None:
        asyncio.set_event_loop(loop)
        try:
            try:
                port = loop.run_until_complete(self._bind())
            except Exception as exc:  # start() re-raises it in the caller's thread
                bound.set_exception(exc)
                return
            bound.set_result(port)
            loop.run_forever()
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
        finally:
            loop.close()

    async def _bind(self) -> int:
        self._app = build_app(self.config)
        # Hung requests are cancelled on shutdown instead of holding stop() for hang_seconds.
        runner = web.AppRunner(
            self._app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self._requested_port, backlog=1024)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        return int(runner.addresses[0][1])

    def stop(self) -> None:
        """Stop serving and join the thread; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._loop = self._thread = None
        self._port = None

    def _call(self, fn: Any) -> Any:
        """Run ``fn(state)`` on the loop thread so state is never touched concurrently."""
        if self._loop is None or self._app is None:
            raise RuntimeError("the sandbox is not running")
        state = self._app[STATE_KEY]

        async def _inner() -> Any:
            return fn(state)

        return asyncio.run_coroutine_threadsafe(_inner(), self._loop).result(10)

    def stats(self) -> dict[str, Any]:
        """The same data as GET /_sandbox/stats."""
        return self._call(lambda s: json.loads(json_dumps(s.stats())))

    def reset(self) -> None:
        """Clear the request log, counters and quotas (as POST /_sandbox/reset)."""
        self._call(lambda s: s.reset())

    def advance(self, steps: int = 1) -> int:
        """Move the market clock on; returns the new generation."""

        def _advance(s: _State) -> int:
            s.generation += steps
            return s.generation

        return int(self._call(_advance))

    def set_clock(self, now: datetime | None) -> None:
        """Freeze the sandbox's "now" at ``now`` (aware), or follow real time again with None
        (as POST /_sandbox/clock)."""
        check_clock(now)

        def _set(s: _State) -> None:
            s.clock = now

        self._call(_set)

    def set_faults(self, faults: FaultConfig) -> None:
        """Inject ``faults`` from now on instead of the configured ones (an outage ends, a
        symbol starts hanging); counters and the request log are kept."""

        def _set(s: _State) -> None:
            s.config = replace(s.config, faults=faults)

        self._call(_set)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = [
    "API_PATHS",
    "DEFAULT_MASSIVE_KEY",
    "GATED_ENDPOINTS",
    "MASSIVE_PATHS",
    "MASSIVE_PLANS",
    "FaultConfig",
    "GateMap",
    "SandboxConfig",
    "SandboxServer",
    "build_app",
    "check_clock",
    "check_loopback",
    "default_market_universe",
    "json_dumps",
    "normalize_universe",
    "synthetic_symbols",
]
