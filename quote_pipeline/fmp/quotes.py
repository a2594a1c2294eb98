"""Latest quotes from FMP: the probe that starts a refresh, and the request functions the
fetch engine runs. No Dagster, no database.

`/stable/quote-short?symbol=` answers for one symbol on every plan; the premium
`/stable/batch-quote-short?symbols=` answers for up to ``symbols_per_request`` at once. A
symbol a batch left out, or one in a batch whose whole answer was unusable, is asked again
alone in the same pass: only a single request tells "not in your plan" from "no such symbol",
and one bad symbol must not cost the other 99 their quotes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from quote_pipeline.fetch_engine import FetchEngine, SymbolResult, one_result_per_symbol
from quote_pipeline.fmp.client import FMPClient
from quote_pipeline.fmp.errors import FMPEndpointRestrictedError, FMPError
from quote_pipeline.fmp.fields import number, required_number, whole_number
from quote_pipeline.models import FailureKind, Quote, SymbolFailure
from quote_pipeline.providers.base import QuoteFetchResult

QUOTE_PATH = "/stable/quote-short"
BATCH_QUOTE_PATH = "/stable/batch-quote-short"

# A probe that ends like this stops the run before any fan-out: a wrong key or a spent
# quota. An unreachable API too, but only when every probe symbol says so: one slow symbol
# must not look like a dead API.
_PROBE_FATAL = frozenset({FailureKind.AUTH_ERROR, FailureKind.QUOTA_EXHAUSTED})
_PROBE_UNREACHABLE = frozenset({FailureKind.TRANSPORT_ERROR, FailureKind.SERVER_ERROR})
PROBE_SYMBOLS = 3
# How long the probe waits for its first symbol before asking the others as well.
PROBE_PATIENCE_SECONDS = 2.0


# --- the probe ---------------------------------------------------------------------------------


def probe(
    client: FMPClient,
    symbols: Sequence[str],
    *,
    try_batch: bool,
    ask_last: Collection[str] = (),
) -> bool:
    """One request before any fan-out: is the key valid, is there quota, does the plan have
    the batch endpoint? Returns whether to use it.

    Raises :class:`FMPError` for an invalid key or an exhausted quota after one request.
    When that request cannot get through (5xx, a timeout) or takes longer than
    :data:`PROBE_PATIENCE_SECONDS`, a few other symbols are asked at once and the first answer
    decides: one sick symbol is not a dead API, and a hanging one must not cost more than a
    moment. Only when all of them fail is the API unreachable.
    ``ask_last``: symbols known to be failing (pending retries), tried after the others.
    """
    client.pacer.reset_quota()
    avoided = set(ask_last)
    ordered = [s for s in symbols if s not in avoided] + [s for s in symbols if s in avoided]
    candidates = ordered[:PROBE_SYMBOLS]

    def ask(symbol: str) -> bool:
        """The decision this symbol's answer gives; :class:`_Unreachable` if it could not
        get through."""
        try:
            if try_batch:
                client.get_json(BATCH_QUOTE_PATH, {"symbols": symbol})
            else:
                client.get_json(QUOTE_PATH, {"symbol": symbol})
        except FMPEndpointRestrictedError:
            return False  # 402 on the batch endpoint: the plan lacks it
        except FMPError as exc:
            if exc.kind in _PROBE_FATAL:
                raise
            if exc.kind in _PROBE_UNREACHABLE:
                raise _Unreachable(exc) from None
            # Anything else (a bad body, a 402 for this symbol) says the API answers.
        return try_batch

    # The first symbol alone: one request answers for a healthy API (and a refused key costs
    # one). If it has not answered within a moment, or could not get through, the others
    # are asked too, and whichever answers first decides.
    pending = {client.submit(ask, candidates[0])}
    done, pending = wait(pending, timeout=PROBE_PATIENCE_SECONDS)
    others_asked = False
    last: FMPError | None = None
    while True:
        for future in done:
            try:
                return future.result()  # a hanging request left behind times out alone
            except _Unreachable as exc:
                last = exc.error
        if not others_asked:
            pending |= {client.submit(ask, symbol) for symbol in candidates[1:]}
            others_asked = True
        if not pending:
            break
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
    assert last is not None
    raise last


class _Unreachable(Exception):
    def __init__(self, error: FMPError) -> None:
        self.error = error


# --- fetching ----------------------------------------------------------------------------------


def fetch_quotes(
    engine: FetchEngine,
    client: FMPClient,
    symbols: Sequence[str],
    *,
    use_batch_endpoint: bool,
    on_fallback: Callable[[str], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> QuoteFetchResult:
    """Quotes for ``symbols`` through ``engine``: each symbol ends up in ``quotes`` or in
    ``failures`` (transient ones after the engine's retry budget).

    Raises :class:`FMPAuthError` at the first 401/403. When the quota runs out, the symbols
    not yet fetched become ``quota_exhausted`` failures. A 402 from the batch endpoint
    switches to single-symbol requests (``on_fallback`` is told why).
    """
    single = _single_request(client)
    if not use_batch_endpoint:
        report = engine.fetch(symbols, single, log=log)
        return QuoteFetchResult.from_report(report, used_batch=False)
    batch = _BatchRequest(client, on_fallback)
    report = engine.fetch(
        symbols,
        batch,
        symbols_per_request=client.settings.symbols_per_request,
        request_alone=single,
        log=log,
    )
    return QuoteFetchResult.from_report(report, used_batch=not batch.refused.is_set())


def _single_request(client: FMPClient) -> Callable[[Sequence[str]], list[SymbolResult[Quote]]]:
    def request(unit: Sequence[str]) -> list[SymbolResult[Quote]]:
        payload, fetched_at = client.get_json(QUOTE_PATH, {"symbol": unit[0]})
        return parse_quote_rows(payload, list(unit), fetched_at)

    return request


class _BatchRequest:
    """One call to the batch endpoint per chunk, until the plan refuses it (402): from then
    on every chunk's symbols are asked alone."""

    def __init__(self, client: FMPClient, on_fallback: Callable[[str], None] | None) -> None:
        self._client = client
        self._on_fallback = on_fallback
        self.refused = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, unit: Sequence[str]) -> list[SymbolResult[Quote]]:
        symbols = list(unit)
        if self.refused.is_set():
            return _alone(symbols, FailureKind.NOT_IN_PLAN, "the plan refused the batch endpoint")
        try:
            payload, fetched_at = self._client.get_json(
                BATCH_QUOTE_PATH, {"symbols": ",".join(symbols)}
            )
        except FMPEndpointRestrictedError as exc:
            self._refuse(exc)
            return _alone(symbols, exc.kind, str(exc))
        except FMPError as exc:
            if exc.kind not in _ASK_ALONE_AFTER_BATCH or len(symbols) == 1:
                raise
            return _alone(symbols, exc.kind, str(exc))  # a spoiled answer: ask each alone
        results = parse_quote_rows(payload, symbols, fetched_at)
        if len(symbols) == 1:
            return results
        return [_ask_alone_if_repairable(r) for r in results]

    def _refuse(self, exc: FMPError) -> None:
        with self._lock:
            first = not self.refused.is_set()
            self.refused.set()
        if first and self._on_fallback:
            self._on_fallback(f"{exc}; using single-symbol requests instead")


# Batch outcomes that a single-symbol request can refine or repair.
_ASK_ALONE_AFTER_BATCH = frozenset(
    {FailureKind.NO_QUOTE, FailureKind.BAD_RESPONSE, FailureKind.API_ERROR}
)


def _alone(symbols: list[str], kind: FailureKind, message: str) -> list[SymbolResult[Quote]]:
    return [
        SymbolResult(s, failure=SymbolFailure(s, kind, message), ask_alone=True) for s in symbols
    ]


def _ask_alone_if_repairable(result: SymbolResult[Quote]) -> SymbolResult[Quote]:
    if result.failure is not None and result.failure.kind in _ASK_ALONE_AFTER_BATCH:
        return SymbolResult(result.symbol, failure=result.failure, ask_alone=True)
    return result


# --- parsing -----------------------------------------------------------------------------------


def parse_quote_rows(
    payload: Any, requested: list[str], fetched_at: datetime
) -> list[SymbolResult[Quote]]:
    """Match the rows of a quote response to the requested symbols, validating each."""
    if not isinstance(payload, list):
        message = f"expected a JSON list, got {type(payload).__name__}"
        return [SymbolResult.failed(s, FailureKind.BAD_RESPONSE, message) for s in requested]
    wanted = set(requested)
    quotes: dict[str, Quote] = {}
    failures: dict[str, SymbolFailure] = {}
    for row in payload:
        symbol = row.get("symbol") if isinstance(row, dict) else None
        if not isinstance(symbol, str) or symbol.upper() not in wanted:
            continue  # a row we cannot attribute; a requested symbol without one is reported
        symbol = symbol.upper()
        try:
            quotes[symbol] = parse_quote(row, fetched_at)
            failures.pop(symbol, None)
        except ValueError as exc:
            failures.setdefault(symbol, SymbolFailure(symbol, FailureKind.BAD_RESPONSE, str(exc)))
    return one_result_per_symbol(
        requested, quotes, failures, "the API returned no quote for this symbol"
    )


def parse_quote(row: dict[str, Any], fetched_at: datetime) -> Quote:
    """One quote row (decoded with ``parse_float=Decimal``), validated; ValueError if not."""
    symbol = str(row["symbol"]).upper()
    try:
        price = required_number(row, "price")
        if price <= 0:
            raise ValueError(f"price must be positive, got {price}")
        volume = whole_number(row, "volume")
        if volume < 0:
            raise ValueError(f"volume must not be negative, got {volume}")
        change = number(row, "change", required=False)
        quoted_at = fetched_at
        if row.get("timestamp") is not None:
            quoted_at = _epoch_seconds(row["timestamp"])
    except ValueError as exc:
        raise ValueError(f"{symbol}: {exc}") from None
    return Quote(symbol, price, volume, change, quoted_at, fetched_at)


def _epoch_seconds(timestamp: Any) -> datetime:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | Decimal):
        raise ValueError(f"timestamp must be epoch seconds, got {timestamp!r}")
    try:
        return datetime.fromtimestamp(int(timestamp), tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"timestamp {timestamp} is out of range") from None


__all__ = [
    "BATCH_QUOTE_PATH",
    "QUOTE_PATH",
    "QuoteFetchResult",
    "fetch_quotes",
    "parse_quote",
    "parse_quote_rows",
    "probe",
]
