"""Daily bars from Massive: one ticker over a range, every US stock on one day, and one
ticker's previous close. No Dagster, no database.

Bars are asked ``adjusted=false``: as traded, like every stored ``daily_prices`` row, so a
bar keeps its meaning when a split happens later. Responses are decoded with exact decimals
by :meth:`MassiveClient.get_json`; rows are validated here like FMP's daily rows
(`fmp/history.py`), and every problem becomes a failure of its ticker only.

A bar's day is the New York date of its ``t`` (the start of its window, epoch milliseconds):
Massive's daily windows start at midnight New York time, which is the previous UTC date.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from quote_pipeline.fetch_engine import SymbolResult
from quote_pipeline.fmp.fields import number, required_number
from quote_pipeline.fmp.history import (
    HistoryRequest,
    SymbolHistory,
    _rejected,
    _whole_response,
)
from quote_pipeline.market_calendar import NEW_YORK
from quote_pipeline.massive.client import MassiveClient
from quote_pipeline.massive.errors import MassiveError
from quote_pipeline.massive.quotes import SOURCE, epoch_to_utc, whole_volume
from quote_pipeline.models import FailureKind, SymbolFailure
from quote_pipeline.price_bars import AS_TRADED, SPLIT_ADJUSTED, DailyBar
from quote_pipeline.providers.base import GroupedDay

GROUPED_DAILY_PATH = "/v2/aggs/grouped/locale/us/market/stocks/{date}"
AGGS_PATH = "/v2/aggs/ticker/{ticker}/range/1/day/{start}/{end}"
PREV_CLOSE_PATH = "/v2/aggs/ticker/{ticker}/prev"

# Rows per aggregates page: Massive's maximum; 200 years of daily bars fit in one page.
AGGS_LIMIT = 50_000
# Pages followed for one ticker before giving up on an answer that never ends.
MAX_PAGES = 20


# --- rows -------------------------------------------------------------------------------------


def _flag(adjusted: bool) -> str:
    return "true" if adjusted else "false"


def _positive(row: dict[str, Any], key: str) -> Any:
    value = required_number(row, key)
    if value <= 0:
        raise ValueError(f"{key} must be positive, got {value}")
    return value


def bar_day(row: dict[str, Any]) -> date:
    """The New York date of a row's ``t`` (its window's start, epoch milliseconds)."""
    stamp = row.get("t")
    if stamp is None:
        raise ValueError("missing 't'")
    return epoch_to_utc(stamp, "t").astimezone(NEW_YORK).date()


def parse_bar(
    row: dict[str, Any],
    symbol: str,
    day: date,
    fetched_at: datetime,
    *,
    adjusted: bool = False,
) -> DailyBar:
    """One aggregate row (``o h l c v vw``, decoded with ``parse_float=Decimal``) as the bar
    of ``symbol`` on ``day``; ValueError when a field is missing or malformed.

    Consistency (low ≤ open …) is left to the asset checks, as for FMP's bars: a
    well-typed but odd bar is stored as given and reported there, not silently dropped.
    """
    return DailyBar(
        symbol=symbol,
        day=day,
        open=_positive(row, "o"),
        high=_positive(row, "h"),
        low=_positive(row, "l"),
        close=_positive(row, "c"),
        volume=whole_volume(row, "v"),
        change=None,
        change_percent=None,
        vwap=number(row, "vw", required=False),
        fetched_at=fetched_at,
        # adjusted=true: split-adjusted as of the day it was fetched (not what is stored).
        price_basis=SPLIT_ADJUSTED if adjusted else AS_TRADED,
        source=SOURCE,
    )


def _results(payload: Any) -> list[Any]:
    """An aggregates answer's rows; [] when it has none (a holiday, an unknown ticker)."""
    if not isinstance(payload, dict):
        raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
    rows = payload.get("results")
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise ValueError(f"results must be a list, got {type(rows).__name__}")
    return rows


def _row_label(row: Any) -> str:
    if isinstance(row, dict) and row.get("t") is not None:
        try:
            return bar_day(row).isoformat()
        except ValueError:
            return f"t={row.get('t')!r}"
    return "row"


# --- one ticker over a range -----------------------------------------------------------------


def parse_daily_aggs(
    payload: Any,
    symbol: str,
    start: date,
    end: date,
    fetched_at: datetime,
) -> SymbolHistory[DailyBar]:
    """Validate one aggregates answer for ``symbol``; keep the bars dated ``start`` to
    ``end``. See :func:`parse_daily_agg_pages`."""
    return parse_daily_agg_pages([payload], symbol, start, end, fetched_at)


def parse_daily_agg_pages(
    payloads: Sequence[Any],
    symbol: str,
    start: date,
    end: date,
    fetched_at: datetime,
) -> SymbolHistory[DailyBar]:
    """Validate the pages of an aggregates answer for ``symbol`` as one answer.

    No ``results`` (or none in range) is an answer with no bars: ``resultsCount`` 0 is how
    Massive answers an unknown ticker. Rows of another ticker, malformed rows and repeated
    days are rejected (the first row of a day wins) and summed up in one failure record,
    as :func:`quote_pipeline.fmp.history.parse_daily_rows` does; the valid rows are kept.
    """
    rows: list[Any] = []
    try:
        for payload in payloads:
            answered_for = payload.get("ticker") if isinstance(payload, dict) else None
            if isinstance(answered_for, str) and answered_for.upper() != symbol.upper():
                raise ValueError(f"an answer for another ticker {answered_for!r}")
            rows.extend(_results(payload))
    except ValueError as exc:
        return SymbolHistory(symbol, False, failure=_whole_response(symbol, exc))
    result: SymbolHistory[DailyBar] = SymbolHistory(symbol, True)
    reasons: list[str] = []
    seen: set[date] = set()
    for row in rows:
        try:
            if not isinstance(row, dict):
                raise ValueError(f"expected an object, got {type(row).__name__}")
            row_symbol = row.get("T")
            if row_symbol is not None and str(row_symbol).upper() != symbol.upper():
                raise ValueError(f"row of another ticker {row_symbol!r}")
            day = bar_day(row)
            if not start <= day <= end:
                result.rows_outside_range += 1
                continue
            if day in seen:
                raise ValueError(f"{day} appears twice")
            bar = parse_bar(row, symbol, day, fetched_at)
        except ValueError as exc:
            reasons.append(f"{_row_label(row)}: {exc}")
            continue
        seen.add(day)
        result.bars.append(bar)
    if reasons:
        result.failure = _rejected(symbol, reasons, len(rows))
    return result


def _next_page(client: MassiveClient, next_url: Any) -> tuple[str, dict[str, str]] | None:
    """``next_url`` as a path and query for ``client``, or None when it is not on the
    client's own host (a key sent to another host would be given away) or not a URL."""
    if not isinstance(next_url, str) or not next_url:
        return None
    try:
        page, base = urlsplit(next_url), urlsplit(client.base_url)
        same_host = (page.hostname, page.port or _default_port(page.scheme)) == (
            base.hostname,
            base.port or _default_port(base.scheme),
        )
    except ValueError:  # a malformed port
        return None
    if not same_host or page.scheme not in ("http", "https"):
        return None
    path = page.path
    if base.path.rstrip("/"):
        prefix = base.path.rstrip("/")
        if not path.startswith(prefix + "/"):
            return None
        path = path[len(prefix) :]
    # Never a key in a URL, even one the vendor put there.
    params = {
        name: value
        for name, value in parse_qsl(page.query, keep_blank_values=True)
        if name.lower() not in ("apikey", "api_key")
    }
    return path, params


def _default_port(scheme: str) -> int | None:
    return {"http": 80, "https": 443}.get(scheme)


def daily_aggs_request(client: MassiveClient, start: date, end: date) -> HistoryRequest:
    """The fetch engine's request for as-traded daily bars from ``start`` to ``end``: one
    call per ticker for the whole range (``next_url`` followed on the client's own host).

    An invalid key is raised; anything else, a 403 for a ticker outside the plan included,
    is the ticker's failure.
    """

    def request(unit: Sequence[str]) -> list[SymbolResult[SymbolHistory[Any]]]:
        symbol = unit[0]
        path = AGGS_PATH.format(
            ticker=quote(symbol, safe=""), start=start.isoformat(), end=end.isoformat()
        )
        params = {"adjusted": "false", "sort": "asc", "limit": str(AGGS_LIMIT)}
        payloads: list[Any] = []
        fetched_at: datetime | None = None
        next_page: tuple[str, dict[str, str]] | None = (path, params)
        asked: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        while next_page is not None and len(payloads) < MAX_PAGES:
            page_path, page_params = next_page
            asked.add((page_path, tuple(sorted(page_params.items()))))
            payload, fetched_at = client.get_json(page_path, page_params)
            payloads.append(payload)
            next_url = payload.get("next_url") if isinstance(payload, dict) else None
            next_page = _next_page(client, next_url)
            if (
                next_page is not None
                and (
                    next_page[0],
                    tuple(sorted(next_page[1].items())),
                )
                in asked
            ):
                next_page = None  # the same page again: the answer ends here
        assert fetched_at is not None
        history = parse_daily_agg_pages(payloads, symbol, start, end, fetched_at)
        if next_page is not None and history.answered:
            # More pages than any daily range can fill: keep what came, but say so.
            note = f"stopped after {MAX_PAGES} pages of results"
            message = f"{history.failure.message}; {note}" if history.failure else note
            history.failure = SymbolFailure(symbol, FailureKind.BAD_RESPONSE, message)
        return [SymbolResult(symbol, history if history.answered else None, history.failure)]

    return request


# --- every ticker on one day -----------------------------------------------------------------


def grouped_daily(
    client: MassiveClient,
    day: date,
    *,
    adjusted: bool = False,
    tickers: Collection[str] | None = None,
) -> GroupedDay:
    """Every US stock's bar on ``day`` in one request (``include_otc=false``).

    No ``results`` (a holiday, a weekend, a day with no data yet) gives no bars. A malformed
    row is rejected under its ticker with the reason, and a ticker with a bad or conflicting
    row keeps no bar; OTC rows are skipped, as are rows with no ticker (they are nobody's
    failure). Raises :class:`MassiveError` when the request fails: a
    :class:`MassiveEndpointRestricted` when the plan lacks the endpoint, a ``not_in_plan``
    one for today's bars before the close on an end-of-day plan.

    ``tickers``: only these are read (the answer holds every US stock, ~11,000 rows; a
    pipeline tracking 500 needs not validate the rest).
    """
    path = GROUPED_DAILY_PATH.format(date=day.isoformat())
    # The day's window in epoch milliseconds: a row's `t` is checked by comparing numbers,
    # not by converting each to a New York date.
    opens = datetime.combine(day, datetime.min.time(), NEW_YORK)
    window = (opens.timestamp() * 1000, (opens + timedelta(days=1)).timestamp() * 1000)
    payload, fetched_at = client.get_json(
        path, {"adjusted": _flag(adjusted), "include_otc": "false"}
    )
    try:
        rows = _results(payload)
    except ValueError as exc:
        raise MassiveError(FailureKind.BAD_RESPONSE, f"{path}: {exc}", status=200) from None
    found = GroupedDay(day, {}, {}, fetched_at)
    for row in rows:
        ticker = row.get("T") if isinstance(row, dict) else None
        if not isinstance(ticker, str) or not ticker or row.get("otc") is True:
            continue
        if tickers is not None and ticker not in tickers:
            continue
        try:
            stamp = row.get("t")
            in_window = isinstance(stamp, int) and window[0] <= stamp < window[1]
            if stamp is not None and not in_window and (stamped := bar_day(row)) != day:
                raise ValueError(f"dated {stamped}, not {day}")
            bar = parse_bar(row, ticker, day, fetched_at, adjusted=adjusted)
        except ValueError as exc:
            found.rejected.setdefault(ticker, str(exc))
            continue
        if found.bars.setdefault(ticker, bar) != bar:
            found.rejected.setdefault(ticker, "appears twice with different bars")
    # A ticker with a bad or a conflicting row keeps no bar: which row is right is unknown.
    for ticker in found.rejected:
        found.bars.pop(ticker, None)
    return found


# --- one ticker's previous close -------------------------------------------------------------


def previous_close(
    client: MassiveClient, symbol: str, *, adjusted: bool = False
) -> DailyBar | None:
    """``symbol``'s bar of the previous session, or None when Massive has none for it.

    Raises :class:`MassiveError` when the request fails or its row is malformed.
    """
    path = PREV_CLOSE_PATH.format(ticker=quote(symbol, safe=""))
    payload, fetched_at = client.get_json(path, {"adjusted": _flag(adjusted)})
    try:
        rows = _results(payload)
        if not rows:
            return None
        row = rows[0]
        if not isinstance(row, dict):
            raise ValueError(f"expected an object, got {type(row).__name__}")
        row_symbol = row.get("T")
        if row_symbol is not None and str(row_symbol).upper() != symbol.upper():
            raise ValueError(f"row of another ticker {row_symbol!r}")
        return parse_bar(row, symbol, bar_day(row), fetched_at, adjusted=adjusted)
    except ValueError as exc:
        raise MassiveError(
            FailureKind.BAD_RESPONSE, f"{path}: {symbol}: {exc}", status=200
        ) from None


__all__ = [
    "AGGS_LIMIT",
    "AGGS_PATH",
    "GROUPED_DAILY_PATH",
    "PREV_CLOSE_PATH",
    "GroupedDay",
    "bar_day",
    "daily_aggs_request",
    "grouped_daily",
    "parse_bar",
    "parse_daily_agg_pages",
    "parse_daily_aggs",
    "previous_close",
]
