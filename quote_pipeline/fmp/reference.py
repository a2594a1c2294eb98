"""Company reference data from FMP: profiles, stock splits and dividends. No Dagster, no database.

The endpoints (see market-data-apis.md §1-3), each asked once per symbol (``?symbol=`` takes
exactly one; a comma list is not a batch on FMP):

- ``/stable/profile?symbol=``: an array of one object, or ``[]`` for an unknown or delisted
  symbol (a :attr:`FailureKind.NO_QUOTE` failure, not an error).
- ``/stable/splits?symbol=&limit=1000`` and ``/stable/dividends?symbol=&limit=1000``: every
  event of the symbol's history in one call (1000 is FMP's documented maximum; the longest
  histories seen are about 230 dividends). ``[]`` is an answer: no splits, no dividends.

On the free plan FMP refuses symbols one by one (HTTP 402 for PG's dividends while AAPL's
work): the fetch engine records that as a ``NOT_IN_PLAN`` failure of that symbol for that
endpoint only, never as "no data", and the other symbols go on. Only a 402 reading
"Restricted Endpoint" (the plan lacks the whole endpoint) stops the run.

FMP marks a missing value with ``""`` or ``"NA"`` (optional dates such as a dividend's
``recordDate`` are often ``""``): those become None, stored as NULL. A value of the wrong
type is a bad response, not a None, so that a change in FMP's format is seen. As with price
history, rows are validated one by one: a bad row is left out and described in one failure
for the symbol while the good rows are kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from quote_pipeline.fetch_engine import RequestFunction, SymbolResult
from quote_pipeline.fmp.client import FMPClient
from quote_pipeline.fmp.fields import number, required_number
from quote_pipeline.models import FailureKind, SymbolFailure
from quote_pipeline.reference_data import CompanyProfile, Dividend, StockSplit

PROFILE_PATH = "/stable/profile"
SPLITS_PATH = "/stable/splits"
DIVIDENDS_PATH = "/stable/dividends"

EVENTS_LIMIT = 1000
"""``limit`` for splits and dividends: FMP's documented maximum; one call is the whole history."""

NO_PROFILE_MESSAGE = "no profile: unknown or delisted symbol"

CIK_DIGITS = 10  # SEC CIKs are zero-padded to ten digits, as FMP sends them

_EventT = TypeVar("_EventT", StockSplit, Dividend)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MISSING = frozenset({"", "NA"})


# --- fields ----------------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    """None, or one of FMP's textual "nothing here" markers ("", "NA" in any case)."""
    return value is None or (isinstance(value, str) and value.strip().upper() in _MISSING)


def _present(row: dict[str, Any], *keys: str) -> str:
    """The first of ``keys`` (current name, then older aliases) that carries a value."""
    for key in keys:
        if not _is_missing(row.get(key)):
            return key
    return keys[0]


def _text(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if _is_missing(value):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be text, got {value!r}")
    return value.strip()


def _flag(row: dict[str, Any], key: str) -> bool | None:
    """A JSON boolean (or the text "true"/"false"); anything else is a format change."""
    value = row.get(key)
    if isinstance(value, bool):
        return value
    if _is_missing(value):
        return None
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{key} must be true or false, got {value!r}")


def _date(row: dict[str, Any], key: str, *, required: bool = False) -> date | None:
    value = row.get(key)
    if _is_missing(value):
        if required:
            raise ValueError(f"missing {key} (got {value!r})")
        return None
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value.strip()):
        raise ValueError(f"{key} must be YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{key} is not a calendar date: {value!r}") from None


def _required_date(row: dict[str, Any], key: str) -> date:
    result = _date(row, key, required=True)
    assert result is not None  # _date raises for a missing required field
    return result


def _optional_number(row: dict[str, Any], key: str) -> Decimal | None:
    # "" and "NA" mean "not known"; any other text is not a number and is refused.
    if _is_missing(row.get(key)):
        return None
    return number(row, key, required=False)


def _cik(row: dict[str, Any]) -> str | None:
    """The CIK as the zero-padded text FMP documents; an integer (leading zeros lost) is
    padded back so that both spellings store the same key."""
    value = row.get("cik")
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"cik must not be negative, got {value}")
        return f"{value:0{CIK_DIGITS}d}"
    return _text(row, "cik")


def _check_symbol(row: dict[str, Any], symbol: str, *, required: bool) -> None:
    value = row.get("symbol")
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"missing symbol (got {value!r})")
    if value.strip().upper() != symbol.strip().upper():
        raise ValueError(f"row of another symbol {value!r}")


def _unusable(symbol: str, exc: Exception | str) -> SymbolResult[Any]:
    return SymbolResult.failed(symbol, FailureKind.BAD_RESPONSE, f"unusable response: {exc}")


# --- profile ---------------------------------------------------------------------------------


def parse_profile(payload: Any, symbol: str, fetched_at: datetime) -> SymbolResult[CompanyProfile]:
    """Validate a ``/stable/profile`` response for ``symbol``.

    ``[]`` is FMP's answer for an unknown or delisted symbol (``NO_QUOTE``). Anything
    unusable (not a list, not an object, another symbol's row, a field of the wrong type) is a
    ``BAD_RESPONSE``: a profile is one row, so there is nothing partial to keep. v3 field
    names (``mktCap``, ``exchangeShortName``) are read where the stable ones are missing.
    """
    if not isinstance(payload, list):
        return _unusable(symbol, f"expected a JSON list, got {type(payload).__name__}")
    if not payload:
        return SymbolResult.failed(symbol, FailureKind.NO_QUOTE, NO_PROFILE_MESSAGE)
    row = payload[0]
    try:
        if not isinstance(row, dict):
            raise ValueError(f"expected an object, got {type(row).__name__}")
        _check_symbol(row, symbol, required=True)
        # v3 named the short code exchangeShortName and put the full name in exchange.
        if _is_missing(row.get("exchangeShortName")):
            exchange_key, full_name_key = "exchange", "exchangeFullName"
        else:
            exchange_key = "exchangeShortName"
            full_name_key = _present(row, "exchangeFullName", "exchange")
        profile = CompanyProfile(
            symbol=symbol,
            company_name=_text(row, "companyName"),
            exchange=_text(row, exchange_key),
            exchange_full_name=_text(row, full_name_key),
            currency=_text(row, "currency"),
            country=_text(row, "country"),
            sector=_text(row, "sector"),
            industry=_text(row, "industry"),
            market_cap=_optional_number(row, _present(row, "marketCap", "mktCap")),
            is_etf=_flag(row, "isEtf"),
            is_fund=_flag(row, "isFund"),
            is_adr=_flag(row, "isAdr"),
            is_actively_trading=_flag(row, "isActivelyTrading"),
            ipo_date=_date(row, "ipoDate"),
            cik=_cik(row),
            isin=_text(row, "isin"),
            cusip=_text(row, "cusip"),
            website=_text(row, "website"),
            description=_text(row, "description"),
            fetched_at=fetched_at,
        )
    except ValueError as exc:
        return _unusable(symbol, exc)
    return SymbolResult(symbol, profile)


# --- splits and dividends --------------------------------------------------------------------


def _rejected(symbol: str, reasons: list[str], total: int) -> SymbolFailure:
    # The same wording as the price history's, so one reader understands both.
    shown = "; ".join(reasons[:3]) + (" …" if len(reasons) > 3 else "")
    return SymbolFailure(
        symbol, FailureKind.BAD_RESPONSE, f"{len(reasons)} of {total} rows rejected: {shown}"
    )


def _row_label(row: Any, index: int) -> str:
    if isinstance(row, dict) and isinstance(row.get("date"), str) and row["date"]:
        return row["date"]
    return f"row {index}"


def _parse_events(
    payload: Any,
    symbol: str,
    build: Callable[[dict[str, Any], str], _EventT],
    merge: Callable[[_EventT, _EventT], _EventT] | None = None,
) -> SymbolResult[list[_EventT]]:
    """Validate each row with ``build``; keep the valid ones, sum up the rest in one failure.

    Rows of another symbol and malformed rows are rejected. A repeated ex-date is ``merge``d
    into the first row of that date, or rejected without ``merge`` (the first valid row of a
    date wins). The kept events are sorted by ex-date, oldest first.
    """
    if not isinstance(payload, list):
        return _unusable(symbol, f"expected a JSON list, got {type(payload).__name__}")
    kept: list[_EventT] = []
    seen: set[date] = set()
    reasons: list[str] = []
    for index, row in enumerate(payload):
        try:
            if not isinstance(row, dict):
                raise ValueError(f"expected an object, got {type(row).__name__}")
            _check_symbol(row, symbol, required=False)
            event = build(row, symbol)
            if event.ex_date in seen:
                if merge is None:
                    raise ValueError(f"{event.ex_date} appears twice")
                (at,) = [i for i, e in enumerate(kept) if e.ex_date == event.ex_date]
                kept[at] = merge(kept[at], event)
                continue
        except ValueError as exc:
            reasons.append(f"{_row_label(row, index)}: {exc}")
            continue
        seen.add(event.ex_date)
        kept.append(event)
    kept.sort(key=lambda event: event.ex_date)
    failure = _rejected(symbol, reasons, len(payload)) if reasons else None
    return SymbolResult(symbol, kept, failure)


def _split(row: dict[str, Any], symbol: str) -> StockSplit:
    # Sign and 1:1 are not judged here: an asset check reports them (StockSplit.is_valid).
    return StockSplit(
        symbol=symbol,
        ex_date=_required_date(row, "date"),
        numerator=required_number(row, "numerator"),
        denominator=required_number(row, "denominator"),
        split_type=_text(row, "splitType"),
    )


def _dividend(row: dict[str, Any], symbol: str) -> Dividend:
    return Dividend(
        symbol=symbol,
        ex_date=_required_date(row, "date"),
        dividend=required_number(row, "dividend"),
        adj_dividend=_optional_number(row, "adjDividend"),
        record_date=_date(row, "recordDate"),
        payment_date=_date(row, "paymentDate"),
        declaration_date=_date(row, "declarationDate"),
        frequency=_text(row, "frequency"),
    )


def parse_splits(payload: Any, symbol: str) -> SymbolResult[list[StockSplit]]:
    """Validate a ``/stable/splits`` response for ``symbol``: ``[]`` means no splits.

    ``date`` (the ex-date), ``numerator`` and ``denominator`` are required; the amounts are
    kept exact and only refused when they are not finite numbers.
    """
    return _parse_events(payload, symbol, _split)


def parse_dividends(payload: Any, symbol: str) -> SymbolResult[list[Dividend]]:
    """Validate a ``/stable/dividends`` response for ``symbol``: ``[]`` means no dividends.

    ``date`` (the ex-date) and ``dividend`` are required; the other dates may be ``""``
    (None), but a malformed one rejects its row rather than being guessed at.
    """
    return _parse_events(payload, symbol, _dividend, _same_ex_date)


def _same_ex_date(first: Dividend, second: Dividend) -> Dividend:
    """A regular and a special dividend going ex on one day are one payment of their sum
    (the table is keyed by ex-date); the first row's dates and frequency are kept."""
    adjusted = (
        None
        if first.adj_dividend is None or second.adj_dividend is None
        else first.adj_dividend + second.adj_dividend
    )
    return replace(first, dividend=first.dividend + second.dividend, adj_dividend=adjusted)


# --- requests --------------------------------------------------------------------------------


def _one_symbol(unit: Sequence[str]) -> str:
    if len(unit) != 1:
        raise ValueError(f"these endpoints take one symbol per request, got {list(unit)!r}")
    return unit[0]


def profile_request(client: FMPClient) -> RequestFunction[CompanyProfile]:
    """The fetch engine's request for company profiles, one call per symbol. Client errors
    propagate: the engine makes a per-symbol 402 that symbol's ``NOT_IN_PLAN`` failure."""

    def request(unit: Sequence[str]) -> list[SymbolResult[CompanyProfile]]:
        symbol = _one_symbol(unit)
        payload, fetched_at = client.get_json(PROFILE_PATH, {"symbol": symbol})
        return [parse_profile(payload, symbol, fetched_at)]

    return request


def _events_request(
    client: FMPClient, path: str, parse: Callable[[Any, str], SymbolResult[list[_EventT]]]
) -> RequestFunction[list[_EventT]]:
    def request(unit: Sequence[str]) -> list[SymbolResult[list[_EventT]]]:
        symbol = _one_symbol(unit)
        payload, _fetched_at = client.get_json(path, {"symbol": symbol, "limit": str(EVENTS_LIMIT)})
        return [parse(payload, symbol)]

    return request


def splits_request(client: FMPClient) -> RequestFunction[list[StockSplit]]:
    """The fetch engine's request for a symbol's whole split history, one call per symbol."""
    return _events_request(client, SPLITS_PATH, parse_splits)


def dividends_request(client: FMPClient) -> RequestFunction[list[Dividend]]:
    """The fetch engine's request for a symbol's whole dividend history, one call per symbol."""
    return _events_request(client, DIVIDENDS_PATH, parse_dividends)


__all__ = [
    "DIVIDENDS_PATH",
    "EVENTS_LIMIT",
    "NO_PROFILE_MESSAGE",
    "PROFILE_PATH",
    "SPLITS_PATH",
    "CompanyProfile",
    "Dividend",
    "StockSplit",
    "dividends_request",
    "parse_dividends",
    "parse_profile",
    "parse_splits",
    "profile_request",
    "splits_request",
]
