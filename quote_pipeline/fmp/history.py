"""Price history from FMP: daily end-of-day bars and 5-minute bars. No Dagster, no database.

One request per symbol covers a whole date range (``from``/``to``): a year of daily bars for
500 tickers is 500 requests, never one per ticker per day. Responses are decoded with exact
decimals by :meth:`FMPClient.get_json`; rows are validated here and every problem becomes a
:class:`SymbolFailure` for its symbol, so one bad symbol never costs the others their data.

Bar *consistency* (low ≤ open, close ≤ high; volume ≥ 0) is deliberately not enforced here:
a well-typed but inconsistent bar is stored as the API gave it and reported by the asset
checks, so that the data's owner sees it instead of a silent gap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Generic, TypeVar

from quote_pipeline.fetch_engine import SymbolResult
from quote_pipeline.fmp.client import FMPClient
from quote_pipeline.fmp.fields import number, required_number, whole_number
from quote_pipeline.market_calendar import NEW_YORK, NEW_YORK_TZ
from quote_pipeline.models import FailureKind, SymbolFailure
from quote_pipeline.price_bars import DailyBar, IntradayBar
from quote_pipeline.providers.base import HistoryRequest

# Unadjusted: a stored bar keeps its meaning when a split happens later (/full is
# split-adjusted as of the day it answers, so rows fetched on either side of a split would
# be on different scales). Its prices are named adjOpen…adjClose all the same.
DAILY_PATH = "/stable/historical-price-eod/non-split-adjusted"
INTRADAY_5MIN_PATH = "/stable/historical-chart/5min"

BarT = TypeVar("BarT")


@dataclass
class SymbolHistory(Generic[BarT]):
    """What one request for one symbol gave: valid bars, and what went wrong, if anything.

    ``answered`` is True when the API gave a usable answer (possibly with no rows, possibly
    with some rows rejected): only then may the stored range be replaced by ``bars``.
    """

    symbol: str
    answered: bool
    bars: list[BarT] = field(default_factory=list)
    failure: SymbolFailure | None = None
    rows_outside_range: int = 0


# --- New York wall time ---------------------------------------------------------------------


class NonexistentNewYorkTime(ValueError):
    """A wall-clock time skipped by a spring-forward change (e.g. 02:30 on a March Sunday)."""


def is_ambiguous_new_york(wall: datetime) -> bool:
    """True for a wall time that happens twice (the repeated hour of a fall-back change)."""
    first = wall.replace(tzinfo=NEW_YORK, fold=0)
    second = wall.replace(tzinfo=NEW_YORK, fold=1)
    return first.utcoffset() != second.utcoffset() and not _is_gap(wall)


def _is_gap(wall: datetime) -> bool:
    # A skipped time does not survive the round trip through UTC.
    aware = wall.replace(tzinfo=NEW_YORK, fold=0)
    return aware.astimezone(UTC).astimezone(NEW_YORK).replace(tzinfo=None) != wall


def new_york_to_utc(wall: datetime, *, fold: int = 0) -> datetime:
    """A naive New York wall time as an aware UTC instant (pandas' ``tz_localize``).

    ``fold`` picks the occurrence of an ambiguous time (0: the first, still daylight time;
    1: the second, standard time) and is ignored otherwise. A time skipped by the
    spring-forward change raises :class:`NonexistentNewYorkTime` rather than being shifted
    silently by an hour.
    """
    if wall.tzinfo is not None:
        raise ValueError(f"{wall!r} already has a timezone; expected a naive New York time")
    (instant,) = new_york_series_to_utc([wall], first_occurrence=fold == 0)
    if isinstance(instant, NonexistentNewYorkTime):
        raise instant
    return instant


def new_york_series_to_utc(
    walls: Sequence[datetime], *, first_occurrence: bool | None = None
) -> list[datetime | NonexistentNewYorkTime]:
    """Convert chronologically ordered New York wall times with pandas' ``tz_localize``.

    The repeated hour of a fall-back change is resolved by order (``ambiguous="infer"``):
    01:55 EDT, then 01:00 is 01:00 EST. Where the order cannot tell (a lone repeated time)
    the first occurrence, daylight time, is meant, or as ``first_occurrence`` says. A time
    skipped by the spring-forward change becomes a :class:`NonexistentNewYorkTime` in its
    place (``nonexistent="NaT"``), never an instant shifted by an hour.
    """
    import pandas as pd  # here, not at load: pandas costs ~0.3 s of every CLI start

    index = pd.DatetimeIndex(walls)
    localized = None
    if first_occurrence is None:
        try:
            localized = index.tz_localize(NEW_YORK_TZ, ambiguous="infer", nonexistent="NaT")
        except ValueError:  # no repeat to infer from: a lone ambiguous time
            first_occurrence = True
    if localized is None:
        dst = [first_occurrence] * len(index)
        localized = index.tz_localize(NEW_YORK_TZ, ambiguous=dst, nonexistent="NaT")
    return [
        NonexistentNewYorkTime(
            f"{wall.isoformat(sep=' ')} does not exist in New York (daylight-saving gap)"
        )
        if pd.isna(stamp)
        else stamp.to_pydatetime().astimezone(UTC)
        for wall, stamp in zip(walls, localized, strict=True)
    ]


# --- row validation --------------------------------------------------------------------------


def _ohlcv(row: dict[str, Any]) -> dict[str, Any]:
    """The open, high, low, close and volume every bar row carries, validated."""
    return {
        "open": required_number(row, "open"),
        "high": required_number(row, "high"),
        "low": required_number(row, "low"),
        "close": required_number(row, "close"),
        "volume": whole_number(row, "volume"),
    }


# The unadjusted daily endpoint names its as-traded prices adjOpen…adjClose; the plain names
# are accepted too, should a row carry them instead.
_AS_TRADED_NAMES = {"open": "adjOpen", "high": "adjHigh", "low": "adjLow", "close": "adjClose"}


def _daily_ohlcv(row: dict[str, Any]) -> dict[str, Any]:
    if not any(field in row for field in _AS_TRADED_NAMES.values()) and any(
        name in row for name in _AS_TRADED_NAMES
    ):
        return _ohlcv(row)
    prices = {name: required_number(row, field) for name, field in _AS_TRADED_NAMES.items()}
    return {**prices, "volume": whole_number(row, "volume")}


def _rows(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, list):
        raise ValueError(f"expected a JSON list, got {type(payload).__name__}")
    return payload


def _rejected(symbol: str, reasons: list[str], total: int) -> SymbolFailure:
    shown = "; ".join(reasons[:3]) + (" …" if len(reasons) > 3 else "")
    return SymbolFailure(
        symbol, FailureKind.BAD_RESPONSE, f"{len(reasons)} of {total} rows rejected: {shown}"
    )


def parse_daily_rows(
    payload: Any, symbol: str, start: date, end: date, fetched_at: datetime
) -> SymbolHistory[DailyBar]:
    """Validate an unadjusted end-of-day response for ``symbol``; keep the rows dated
    ``start`` to ``end``, as traded (``price_basis`` ``as_traded``).

    Rows of another symbol, malformed rows and repeated dates are rejected (the first row of
    a date wins) and summed up in one failure record; the valid rows are kept.
    """
    try:
        rows = _rows(payload)
    except ValueError as exc:
        return SymbolHistory(symbol, False, failure=_whole_response(symbol, exc))
    result: SymbolHistory[DailyBar] = SymbolHistory(symbol, True)
    reasons: list[str] = []
    seen: set[date] = set()
    for row in rows:
        try:
            if not isinstance(row, dict):
                raise ValueError(f"expected an object, got {type(row).__name__}")
            row_symbol = row.get("symbol")
            if row_symbol is not None and str(row_symbol).upper() != symbol:
                raise ValueError(f"row of another symbol {row_symbol!r}")
            raw_day = row.get("date")
            if not isinstance(raw_day, str):
                raise ValueError(f"date must be YYYY-MM-DD, got {raw_day!r}")
            day = date.fromisoformat(raw_day[:10])
            if not start <= day <= end:
                result.rows_outside_range += 1
                continue
            if day in seen:
                raise ValueError(f"{day} appears twice")
            bar = DailyBar(
                symbol=symbol,
                day=day,
                **_daily_ohlcv(row),
                # Given by /full only (split-adjusted there): NULL for as-traded rows.
                change=number(row, "change", required=False),
                change_percent=number(row, "changePercent", required=False),
                vwap=number(row, "vwap", required=False),
                fetched_at=fetched_at,
            )
        except ValueError as exc:
            reasons.append(f"{_row_label(row)}: {exc}")
            continue
        seen.add(day)
        result.bars.append(bar)
    if reasons:
        result.failure = _rejected(symbol, reasons, len(rows))
    return result


def parse_intraday_rows(
    payload: Any, symbol: str, start: date, end: date, fetched_at: datetime
) -> SymbolHistory[IntradayBar]:
    """Validate a 5-minute response for ``symbol``; keep bars starting on ``start`` to ``end``.

    ``date`` is a naive New York wall time: it is converted to UTC taking the response's
    order (newest first, as FMP sends it) into account, so that the repeated hour of a
    fall-back change maps to two distinct hours. A skipped (spring-forward) time is rejected.
    """
    try:
        rows = _rows(payload)
    except ValueError as exc:
        return SymbolHistory(symbol, False, failure=_whole_response(symbol, exc))
    result: SymbolHistory[IntradayBar] = SymbolHistory(symbol, True)
    reasons: list[str] = []
    parsed: list[tuple[datetime, dict[str, Any]]] = []
    for row in rows:
        try:
            if not isinstance(row, dict):
                raise ValueError(f"expected an object, got {type(row).__name__}")
            raw = row.get("date")
            if not isinstance(raw, str):
                raise ValueError(f"date must be 'YYYY-MM-DD HH:MM:SS', got {raw!r}")
            wall = datetime.fromisoformat(raw)
            if wall.tzinfo is not None:
                raise ValueError(f"date {raw!r} has an offset; FMP sends naive New York time")
        except ValueError as exc:
            reasons.append(f"{_row_label(row)}: {exc}")
            continue
        parsed.append((wall, row))
    # FMP lists newest first; the repeated hour can only be resolved in time order.
    newest_first = len(parsed) > 1 and parsed[0][0] > parsed[-1][0]
    chronological = parsed[::-1] if newest_first else parsed
    instants = new_york_series_to_utc([wall for wall, _ in chronological])
    seen: set[datetime] = set()
    for (wall, row), instant in zip(chronological, instants, strict=True):
        if not start <= wall.date() <= end:
            result.rows_outside_range += 1
            continue
        try:
            if isinstance(instant, NonexistentNewYorkTime):
                raise instant
            if instant in seen:
                raise ValueError(f"{wall} appears twice")
            bar = IntradayBar(
                symbol=symbol,
                bar_start=instant,
                **_ohlcv(row),
                fetched_at=fetched_at,
            )
        except ValueError as exc:
            reasons.append(f"{_row_label(row)}: {exc}")
            continue
        seen.add(instant)
        result.bars.append(bar)
    if reasons:
        result.failure = _rejected(symbol, reasons, len(rows))
    return result


def _row_label(row: Any) -> str:
    return str(row.get("date")) if isinstance(row, dict) else "row"


def _whole_response(symbol: str, exc: Exception) -> SymbolFailure:
    return SymbolFailure(symbol, FailureKind.BAD_RESPONSE, f"unusable response: {exc}")


# --- requests --------------------------------------------------------------------------------


def _range_params(symbol: str, start: date, end: date) -> dict[str, str]:
    return {"symbol": symbol, "from": start.isoformat(), "to": end.isoformat()}


def _history_request(
    client: FMPClient,
    path: str,
    start: date,
    end: date,
    parse: Callable[[Any, str, date, date, datetime], SymbolHistory[Any]],
) -> HistoryRequest:
    def request(unit: Sequence[str]) -> list[SymbolResult[SymbolHistory[Any]]]:
        symbol = unit[0]
        payload, fetched_at = client.get_json(path, _range_params(symbol, start, end))
        history = parse(payload, symbol, start, end, fetched_at)
        return [SymbolResult(symbol, history if history.answered else None, history.failure)]

    return request


def daily_history_request(client: FMPClient, start: date, end: date) -> HistoryRequest:
    """The fetch engine's request for end-of-day bars from ``start`` to ``end``: one call per
    symbol for the whole range. Errors that no other symbol could survive either (an invalid
    key, an endpoint outside the plan) are raised; anything else is the symbol's failure."""
    return _history_request(client, DAILY_PATH, start, end, parse_daily_rows)


def intraday_bars_request(client: FMPClient, start: date, end: date) -> HistoryRequest:
    """The fetch engine's request for 5-minute bars on the New York dates ``start`` to
    ``end``, one call per symbol (the bar still forming, if the market is open, included)."""
    return _history_request(client, INTRADAY_5MIN_PATH, start, end, parse_intraday_rows)


__all__ = [
    "DAILY_PATH",
    "INTRADAY_5MIN_PATH",
    "DailyBar",
    "IntradayBar",
    "NonexistentNewYorkTime",
    "SymbolFailure",
    "SymbolHistory",
    "daily_history_request",
    "intraday_bars_request",
    "is_ambiguous_new_york",
    "new_york_series_to_utc",
    "new_york_to_utc",
    "parse_daily_rows",
    "parse_intraday_rows",
]
