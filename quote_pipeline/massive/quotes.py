"""Latest quotes from Massive's full-market snapshot: the probe that starts a refresh, and the
request function the fetch engine runs. No Dagster, no database.

`/v2/snapshot/locale/us/markets/stocks/tickers?tickers=A,B,C` answers for any number of
tickers in one request (paid plans; 15-minute delayed on Starter). Its rows carry several
prices, not all of them filled on every plan or at every hour:

* ``lastTrade.p``: the last trade (Developer plans and up; Starter has no ``lastTrade``);
* ``min.c``: the close of the latest minute bar;
* ``day.c``: today's close so far, all zeros until the first regular-session trade;
* ``prevDay.c``: yesterday's close, what is left between 3:30 AM ET (when the snapshot
  clears) and the open.

The quote's price is the first positive one in that order. Numbers are decoded as exact
decimals by :meth:`MassiveClient.get_json` and never become floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

from quote_pipeline.api_errors import ApiAuthError, ApiEndpointRestricted, ApiQuotaExhausted
from quote_pipeline.fetch_engine import RequestFunction, SymbolResult, one_result_per_symbol
from quote_pipeline.fmp.fields import INT64_LIMIT, number, required_number
from quote_pipeline.market_calendar import new_york_day, session_hours, sessions_between
from quote_pipeline.massive.client import MassiveClient
from quote_pipeline.massive.errors import MassiveError
from quote_pipeline.models import TRANSIENT_FAILURE_KINDS, FailureKind, Quote, SymbolFailure

SNAPSHOT_PATH = "/v2/snapshot/locale/us/markets/stocks/tickers"
SOURCE = "massive"
NO_SNAPSHOT_QUOTE = "Massive's snapshot has no quote for this symbol"

# Where a row's price may be, best first (see the module's docstring), each with the time
# that price is from: a quote is stamped with its own price's time, never a fresher one (an
# epoch's unit is told by its magnitude). prevDay has none: its session's close is used.
_PRICE_FIELDS = (
    (("lastTrade", "p"), ("lastTrade", "t")),
    (("min", "c"), ("min", "t")),
    (("day", "c"), (None, "updated")),
    (("prevDay", "c"), None),
)


# --- numbers and times (shared with history.py) ----------------------------------------------


def whole_volume(row: dict[str, Any], key: str) -> int:
    """``row[key]`` as a non-negative 64-bit integer of shares.

    ``70790813.0`` and ``7.0790813E7`` are fine. A fraction is rounded half-even rather than
    refused: Massive counts fractional shares in some feeds (fractional-share trades reported
    by brokers), so a fractional day volume is real data, not a broken row; half-even keeps
    the rounding unbiased over many rows.
    """
    value = required_number(row, key)
    if value < 0:
        raise ValueError(f"{key} must not be negative, got {value}")
    whole = value.to_integral_value(rounding=ROUND_HALF_EVEN)
    if whole >= INT64_LIMIT:
        raise ValueError(f"{key} {value} does not fit in 64 bits")
    return int(whole)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# (smallest magnitude, microseconds per unit): ns, µs, ms, else seconds. A nanosecond epoch
# of today is about 1.7e18, a millisecond one 1.7e12, a second one 1.7e9.
_EPOCH_UNITS = (
    (Decimal("1e17"), Decimal("0.001")),
    (Decimal("1e14"), Decimal(1)),
    (Decimal("1e11"), Decimal(1000)),
    (Decimal(0), Decimal(1_000_000)),
)


def epoch_to_utc(value: Any, key: str = "timestamp") -> datetime:
    """An epoch in seconds, milliseconds, microseconds or nanoseconds (told apart by its
    magnitude: ≥1e17 ns, ≥1e14 µs, ≥1e11 ms, else s) as an aware UTC datetime."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError(f"{key} must be an epoch number, got {value!r}")
    epoch = Decimal(value)
    if not epoch.is_finite() or epoch <= 0:
        raise ValueError(f"{key} must be a positive epoch, got {value!r}")
    scale = next(micros for floor, micros in _EPOCH_UNITS if epoch >= floor)
    try:
        micros = int((epoch * scale).to_integral_value(rounding=ROUND_FLOOR))
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise ValueError(f"{key} {value} is out of range") from None


def _part(row: dict[str, Any], name: str | None) -> dict[str, Any]:
    """A nested object of a snapshot row (``day``, ``min`` …); {} when absent or null."""
    if name is None:
        return row
    value = row.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object, got {type(value).__name__}")
    return value


# --- parsing ----------------------------------------------------------------------------------


def parse_snapshot_row(row: dict[str, Any], fetched_at: datetime) -> Quote:
    """One snapshot row (decoded with ``parse_float=Decimal``) as a quote; ValueError if
    its shape is wrong or it holds no positive price."""
    symbol = row["ticker"]
    try:
        price: Decimal | None = None
        found_at = len(_PRICE_FIELDS)
        for index, ((part, key), _) in enumerate(_PRICE_FIELDS):
            candidate = number(_part(row, part), key, required=False)
            if candidate is not None and candidate > 0:
                price, found_at = candidate, index
                break
        if price is None:
            raise ValueError(
                "no positive price in lastTrade.p, min.c, day.c or prevDay.c "
                "(the snapshot clears at 3:30 AM ET)"
            )
        day, minute = _part(row, "day"), _part(row, "min")
        volume = whole_volume(day, "v") if day.get("v") is not None else 0
        if volume == 0 and minute.get("av") is not None:
            # day is all zeros until the first regular-session trade; the minute bar's
            # accumulated volume counts the pre-market's.
            volume = whole_volume(minute, "av")
        change = number(row, "todaysChange", required=False)
        # Its own time, else the next older one (never a fresher one); yesterday's close:
        # the last session before today's date; no time at all: the fetch's.
        quoted_at = fetched_at
        if _PRICE_FIELDS[found_at][1] is None:
            today = new_york_day(fetched_at)
            earlier = sessions_between(today - timedelta(days=10), today - timedelta(days=1))
            if earlier:
                quoted_at = session_hours(earlier[-1])[1]
        for _, time_field in _PRICE_FIELDS[found_at:]:
            if time_field is None:
                break
            stamp = _part(row, time_field[0]).get(time_field[1])
            if stamp is not None and stamp != 0:
                label = f"{time_field[0]}.{time_field[1]}" if time_field[0] else time_field[1]
                quoted_at = epoch_to_utc(stamp, label)
                break
    except ValueError as exc:
        raise ValueError(f"{symbol}: {exc}") from None
    return Quote(symbol, price, volume, change, quoted_at, fetched_at, source=SOURCE)


def parse_snapshot(
    payload: Any, requested: Sequence[str], fetched_at: datetime
) -> list[SymbolResult[Quote]]:
    """Match a snapshot's rows to the requested tickers, validating each: one result per
    requested ticker, in order. A bad row fails its ticker only; a ticker without a row is a
    ``no_quote`` failure."""
    rows = payload.get("tickers") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or not isinstance(rows, list | None):
        shape = type(payload).__name__ if not isinstance(payload, dict) else type(rows).__name__
        message = f"unusable snapshot: expected an object with a tickers list, got {shape}"
        return [SymbolResult.failed(s, FailureKind.BAD_RESPONSE, message) for s in requested]
    wanted = set(requested)
    quotes: dict[str, Quote] = {}
    failures: dict[str, SymbolFailure] = {}
    for row in rows or ():
        symbol = row.get("ticker") if isinstance(row, dict) else None
        if not isinstance(symbol, str) or symbol not in wanted or symbol in quotes:
            continue  # unattributable, or a repeat after a good row (the first one wins)
        try:
            quotes[symbol] = parse_snapshot_row(row, fetched_at)
            failures.pop(symbol, None)
        except ValueError as exc:
            failures.setdefault(symbol, SymbolFailure(symbol, FailureKind.BAD_RESPONSE, str(exc)))
    return one_result_per_symbol(requested, quotes, failures, NO_SNAPSHOT_QUOTE)


# --- requests ---------------------------------------------------------------------------------


def _snapshot_params(tickers: Sequence[str]) -> dict[str, str]:
    return {"tickers": ",".join(tickers), "include_otc": "false"}


def snapshot_chunks(client: MassiveClient, symbols: Sequence[str]) -> list[list[str]]:
    """``symbols`` cut into runs of at most ``tickers_per_snapshot`` whose request's query
    string stays within ``max_query_chars`` (a lone ticker too long for it still gets its
    own request)."""
    limit = client.settings.max_query_chars
    per_request = client.settings.tickers_per_snapshot
    overhead = len(client.encode_query(_snapshot_params([])))
    comma = _spelled_length(client, ",")
    chunks: list[list[str]] = []
    chunk: list[str] = []
    length = overhead
    for symbol in symbols:
        spelled = _spelled_length(client, symbol)
        grown = length + comma + spelled if chunk else overhead + spelled
        if chunk and (grown > limit or len(chunk) >= per_request):
            chunks.append(chunk)
            chunk, grown = [], overhead + spelled
        chunk.append(symbol)
        length = grown
    if chunk:
        chunks.append(chunk)
    return chunks


def _spelled_length(client: MassiveClient, text: str) -> int:
    """How long ``text`` is in the client's query string (percent-encoding included)."""
    return len(client.encode_query({"t": text})) - len("t=")


def snapshot_request(client: MassiveClient) -> RequestFunction[Quote]:
    """The fetch engine's request for quotes: one snapshot GET for the unit's tickers, or
    several when their list would make the query longer than ``max_query_chars``.

    An invalid key or a plan without the snapshot is raised (no symbol can succeed); any
    other failure of one request is the failure of its tickers only.
    """

    def request(unit: Sequence[str]) -> list[SymbolResult[Quote]]:
        results: list[SymbolResult[Quote]] = []
        for chunk in snapshot_chunks(client, unit):
            if client.quota_exhausted:
                message = "not requested: the API quota is exhausted"
                kind = FailureKind.QUOTA_EXHAUSTED
                results.extend(SymbolResult.failed(s, kind, message) for s in chunk)
                continue
            try:
                payload, fetched_at = client.get_json(SNAPSHOT_PATH, _snapshot_params(chunk))
            except (ApiAuthError, ApiEndpointRestricted):
                raise
            except MassiveError as exc:
                results.extend(SymbolResult.failed(s, exc.kind, str(exc)) for s in chunk)
                continue
            results.extend(parse_snapshot(payload, chunk, fetched_at))
        return results

    return request


def probe_snapshot(client: MassiveClient, symbols: Sequence[str]) -> None:
    """One snapshot request for the first of ``symbols`` before any fan-out: is the key
    valid, does the plan have the snapshot, is there quota?

    Raises :class:`MassiveAuthError`, :class:`MassiveEndpointRestricted` or
    :class:`MassiveQuotaExhausted`, or a :class:`MassiveError` of a transient kind when the
    request cannot get through (after the client's retries). Returns when the API answers,
    even with no quote for that symbol or a bad row: the others may well have one.
    Like FMP's probe, it first forgets an exhausted quota: a new run asks again once.
    """
    if not symbols:
        return
    client.pacer.reset_quota()
    try:
        client.get_json(SNAPSHOT_PATH, _snapshot_params(symbols[:1]))
    except (ApiAuthError, ApiEndpointRestricted, ApiQuotaExhausted):
        raise
    except MassiveError as exc:
        if exc.kind in TRANSIENT_FAILURE_KINDS:
            raise  # it could not get through: nothing is known about the API
        # Anything else (a bad body, an error in a 200) says the API answers.


__all__ = [
    "NO_SNAPSHOT_QUOTE",
    "SNAPSHOT_PATH",
    "epoch_to_utc",
    "parse_snapshot",
    "parse_snapshot_row",
    "probe_snapshot",
    "snapshot_chunks",
    "snapshot_request",
    "whole_volume",
]
