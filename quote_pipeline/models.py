"""Plain data shared by the API client and the storage layer (no Dagster, no I/O)."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

MAX_SYMBOL_LENGTH = 15
_SYMBOL_PATTERN = re.compile(r"[A-Z0-9.\-^=]+")


class InvalidSymbolError(ValueError):
    """One or more ticker symbols are not acceptable; ``symbols`` names them."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        shown = ", ".join(repr(s) for s in symbols)
        super().__init__(
            f"invalid ticker symbol(s): {shown} — a symbol is 1 to {MAX_SYMBOL_LENGTH} "
            "letters, digits or . - ^ = (e.g. BRK.B, ^GSPC, EURUSD=X)"
        )


def normalize_symbol(raw: str) -> str:
    """Upper-case ``raw`` and check it is a plausible exchange symbol, or raise."""
    symbol = raw.upper()
    if (
        not symbol
        or len(symbol) > MAX_SYMBOL_LENGTH
        or not _SYMBOL_PATTERN.fullmatch(symbol)
        or not any(ch.isalnum() for ch in symbol)
    ):
        raise InvalidSymbolError([raw])
    return symbol


def normalize_symbols(raw_symbols: Iterable[str]) -> list[str]:
    """Normalize every symbol, keeping first-seen order and dropping repeats.

    All-or-nothing: when any symbol is invalid, the error names every invalid one.
    """
    normalized: dict[str, None] = {}
    invalid: list[str] = []
    for raw in raw_symbols:
        try:
            normalized.setdefault(normalize_symbol(raw), None)
        except InvalidSymbolError:
            invalid.append(raw)
    if invalid:
        raise InvalidSymbolError(invalid)
    return list(normalized)


def restore_fields(obj: object, state: Sequence[Any]) -> None:
    """``__setstate__`` of a frozen slots dataclass that gained fields with defaults: a value
    pickled by older code (a run's stored step output, loaded after an upgrade) has fewer
    values; the missing trailing fields take their defaults instead of staying unset."""
    names = fields(obj)  # type: ignore[arg-type]
    for index, field in enumerate(names):
        value = state[index] if index < len(state) else field.default
        if value is MISSING:
            raise TypeError(f"{type(obj).__name__}: no pickled value for {field.name}")
        object.__setattr__(obj, field.name, value)


@dataclass(frozen=True, slots=True)
class Quote:
    """One ticker's latest price as the API gave it."""

    symbol: str
    price: Decimal
    volume: int
    change: Decimal | None
    quoted_at: datetime  # the API's timestamp where it gives one, else the fetch time (UTC)
    fetched_at: datetime  # when the response arrived (UTC)
    source: str = "fmp"  # the provider that served it, e.g. "fmp" or "massive"

    def __setstate__(self, state: Sequence[Any]) -> None:
        restore_fields(self, state)  # a quote pickled before `source`: FMP's


class FailureKind(enum.StrEnum):
    """Why a symbol got no quote. The values are what the UI and metadata show."""

    NO_QUOTE = "no_quote"  # 200 [] — unknown or delisted symbol
    NOT_IN_PLAN = "not_in_plan"  # 402 for this symbol: the subscription does not cover it
    BAD_RESPONSE = "bad_response"  # malformed JSON, wrong types, missing fields, price <= 0
    RATE_LIMITED = "rate_limited"  # 429 / "Limit Reach" after every retry
    QUOTA_EXHAUSTED = "quota_exhausted"  # not asked: the API's quota was gone
    SERVER_ERROR = "server_error"  # 5xx after every retry
    TRANSPORT_ERROR = "transport_error"  # connection refused/reset, timeouts
    API_ERROR = "api_error"  # any other {"Error Message": ...}
    AUTH_ERROR = "auth_error"  # 401/403: invalid key or endpoint not allowed


TRANSIENT_FAILURE_KINDS = frozenset(
    {FailureKind.SERVER_ERROR, FailureKind.TRANSPORT_ERROR, FailureKind.RATE_LIMITED}
)


@dataclass(frozen=True, slots=True)
class SymbolFailure:
    """A symbol that got no quote or no history, and why (the message never holds the key)."""

    symbol: str
    kind: FailureKind
    message: str
