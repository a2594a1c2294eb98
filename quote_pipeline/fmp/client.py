"""A small, thread-pooled client for FMP's quote endpoints. No Dagster import.

Every request goes through :class:`CallPacer` (so retries count against the plan's cap too),
is retried with exponential back-off and jitter by tenacity when the failure is transient,
and is classified into a :class:`FailureKind` otherwise. Per-symbol problems become
:class:`SymbolFailure` records; only an invalid key or an exhausted quota stops the fetch.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from quote_pipeline.fmp.errors import (
    FMPAuthError,
    FMPEndpointRestrictedError,
    FMPError,
    FMPQuotaExhaustedError,
    classify_error_message,
    classify_status,
    install_log_redaction,
    redact,
)
from quote_pipeline.fmp.fields import number, required_number, whole_number
from quote_pipeline.fmp.pacing import CallPacer
from quote_pipeline.models import (
    TRANSIENT_FAILURE_KINDS,
    FailureKind,
    Quote,
    SymbolFailure,
)

DEFAULT_BASE_URL = "https://financialmodelingprep.com"
QUOTE_PATH = "/stable/quote-short"
BATCH_QUOTE_PATH = "/stable/batch-quote-short"

_T = TypeVar("_T")


class MissingAPIKeyError(ValueError):
    """No API key was configured; raised before any request is made."""


@dataclass(frozen=True)
class ClientSettings:
    """How the client talks to FMP. Defaults suit a paid plan against the real API."""

    base_url: str = DEFAULT_BASE_URL
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    max_concurrency: int = 64  # threads, and pooled connections, per client
    symbols_per_request: int = 100  # batch endpoint only
    calls_per_minute: int | None = None  # None: no client-side cap
    attempts: int = 4  # per request, for transient failures (5xx, resets, timeouts, 429)
    backoff_initial: float = 0.5  # seconds; doubles per attempt, with jitter
    backoff_max: float = 8.0
    rate_limit_pause: float = 2.0  # every thread waits this long after a 429
    # This many 429s in a row, over at least this many seconds (longer than FMP's per-minute
    # window), with no successful call between them, mean the quota is gone.
    quota_exhausted_streak: int = 10
    quota_exhausted_after: float = 65.0


@dataclass
class QuoteFetchResult:
    """The outcome of one fetch: quotes, per-symbol failures and what it cost."""

    quotes: list[Quote] = field(default_factory=list)
    failures: list[SymbolFailure] = field(default_factory=list)
    requests_made: int = 0
    used_batch_endpoint: bool = False
    quota_exhausted: bool = False

    @classmethod
    def combine(cls, results: Sequence[QuoteFetchResult]) -> QuoteFetchResult:
        """One result from several (the fan-in of mapped fetches)."""
        return cls(
            quotes=[q for r in results for q in r.quotes],
            failures=[f for r in results for f in r.failures],
            requests_made=sum(r.requests_made for r in results),
            used_batch_endpoint=any(r.used_batch_endpoint for r in results),
            quota_exhausted=any(r.quota_exhausted for r in results),
        )


# A probe that ends like this stops the run before any fan-out: a wrong key, a spent quota,
# or an API that cannot be reached at all (a wrong FMP_BASE_URL fails in seconds, not after
# every mapped step has waited through its retries).
_PROBE_FATAL = frozenset(
    {
        FailureKind.AUTH_ERROR,
        FailureKind.QUOTA_EXHAUSTED,
        FailureKind.TRANSPORT_ERROR,
        FailureKind.SERVER_ERROR,
    }
)


class _Transient(FMPError):
    """A failure worth another attempt (5xx, reset, timeout, 429)."""


class FMPClient:
    """Fetches quotes concurrently over one pooled ``requests.Session``."""

    def __init__(
        self,
        api_key: str | None,
        settings: ClientSettings | None = None,
        *,
        pacer: CallPacer | None = None,
    ) -> None:
        if not api_key or not api_key.strip():
            raise MissingAPIKeyError(
                "no FMP API key: set FMP_API_KEY (or configure the fmp resource's api_key)"
            )
        install_log_redaction()
        self._api_key = api_key.strip()
        self.settings = settings or ClientSettings()
        self.base_url = self.settings.base_url.rstrip("/")
        self.pacer = pacer or CallPacer(self.settings.calls_per_minute)
        self._session = requests.Session()
        adapter = HTTPAdapter(
            pool_connections=1,
            pool_maxsize=self.settings.max_concurrency,
            max_retries=0,  # retries are ours, so that each attempt is paced
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        # What Session.request would work out on every call (proxies and CA bundle from the
        # environment, netrc), worked out once: a fetch is CPU-bound under the GIL, and that
        # merging was about a third of a request's CPU.
        self._send_options = self._session.merge_environment_settings(
            self.base_url, {}, None, None, None
        )
        # One controller for every call: tenacity keeps a call's state per thread, and
        # building it per request was a tenth of the fetch's CPU.
        self._retrying = Retrying(
            stop=stop_after_attempt(self.settings.attempts),
            wait=wait_exponential_jitter(
                multiplier=self.settings.backoff_initial,
                max=self.settings.backoff_max,
                jitter=self.settings.backoff_initial,
            ),
            retry=retry_if_exception(
                lambda exc: isinstance(exc, _Transient) and not self.pacer.quota_exhausted
            ),
            reraise=True,
        )
        self._lock = threading.Lock()
        self._requests_made = 0
        # Threads (and the session's connections) outlive one fetch: a client serving many
        # mapped steps in a process pays for them once, not once per step.
        self._pool: ThreadPoolExecutor | None = None

    # --- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._session.close()

    def __enter__(self) -> FMPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def requests_made(self) -> int:
        """HTTP requests sent so far by this client, retries included."""
        return self._requests_made

    @property
    def quota_exhausted(self) -> bool:
        """Whether the account's quota is gone (shared by every client of the pacer)."""
        return self.pacer.quota_exhausted

    # --- public API -------------------------------------------------------------------

    def batch_endpoint_available(self, probe_symbol: str) -> bool:
        """Ask the batch endpoint for one symbol: False when the plan answers 402.

        Doubles as a pre-flight check: an invalid key raises :class:`FMPAuthError` after a
        single request, before any fan-out. A probe always asks, even after an exhausted quota.
        """
        self.pacer.reset_quota()
        try:
            self.get_json(BATCH_QUOTE_PATH, {"symbols": probe_symbol})
        except FMPEndpointRestrictedError:
            return False
        except FMPError as exc:
            if exc.kind in _PROBE_FATAL:
                raise
            # Anything else (a bad body, a 429) says nothing about the plan.
            return True
        return True

    def check_access(self, probe_symbol: str) -> None:
        """One single-symbol request; raises :class:`FMPAuthError` on an invalid key."""
        self.pacer.reset_quota()
        try:
            self.get_json(QUOTE_PATH, {"symbol": probe_symbol})
        except FMPError as exc:
            if exc.kind in _PROBE_FATAL:
                raise

    def fetch_quotes(
        self,
        symbols: Sequence[str],
        *,
        use_batch_endpoint: bool,
        on_fallback: Callable[[str], None] | None = None,
    ) -> QuoteFetchResult:
        """Quotes for ``symbols``; each symbol ends up in ``quotes`` or in ``failures``.

        Raises :class:`FMPAuthError` at the first 401/403 (pending requests are cancelled).
        When the quota runs out, the symbols not yet fetched become ``quota_exhausted``
        failures and ``result.quota_exhausted`` is set; what was fetched is kept.
        A 402 from the batch endpoint switches to single-symbol requests (``on_fallback``
        is told why).
        """
        started_requests = self._requests_made
        result = QuoteFetchResult(used_batch_endpoint=use_batch_endpoint)
        singles = list(symbols)
        if use_batch_endpoint:
            batch_quotes, batch_failures, singles = self._fetch_batches(symbols, on_fallback)
            result.quotes.extend(batch_quotes)
            result.failures.extend(batch_failures)
            result.used_batch_endpoint = len(singles) < len(symbols)
        for quotes, failures in self.map_concurrently(self._fetch_single, singles):
            result.quotes.extend(quotes)
            result.failures.extend(failures)
        result.requests_made = self._requests_made - started_requests
        result.quota_exhausted = self.pacer.quota_exhausted
        return result

    def _fetch_batches(
        self, symbols: Sequence[str], on_fallback: Callable[[str], None] | None
    ) -> tuple[list[Quote], list[SymbolFailure], list[str]]:
        """Quotes by batch; returns (quotes, failures, symbols to ask one by one).

        One by one: every symbol when the plan refuses the batch endpoint (402); the
        symbols of a chunk whose whole answer was unusable (one bad symbol must not cost
        the other 99); and symbols a batch silently left out, since only a single request
        tells "not in your plan" from "no such symbol".
        """
        refused = threading.Event()
        refusal_lock = threading.Lock()

        def fetch_chunk(chunk: list[str]) -> tuple[list[Quote], list[SymbolFailure]] | None:
            if refused.is_set():
                return None
            try:
                return self._fetch_batch(chunk)
            except FMPEndpointRestrictedError as exc:
                with refusal_lock:
                    first = not refused.is_set()
                    refused.set()
                if first and on_fallback:
                    on_fallback(f"{exc}; using single-symbol requests instead")
                return None

        chunks = list(_chunks(symbols, self.settings.symbols_per_request))
        quotes: list[Quote] = []
        failures: list[SymbolFailure] = []
        singles: list[str] = []
        for chunk, outcome in zip(chunks, self.map_concurrently(fetch_chunk, chunks), strict=True):
            if outcome is None:
                singles.extend(chunk)
                continue
            quotes.extend(outcome[0])
            for failure in outcome[1]:
                if failure.kind in _ASK_SINGLY_AFTER_BATCH and len(chunk) > 1:
                    singles.append(failure.symbol)
                else:
                    failures.append(failure)
        return quotes, failures, singles

    def map_concurrently(self, task: Callable[[Any], _T], items: Sequence[Any]) -> list[_T]:
        """``task`` over ``items`` on the client's thread pool, results in order.

        The first exception (an invalid key) cancels what has not started, waits for what
        is in flight, and is raised. ``task`` must not call back into this method.
        """
        if not items:
            return []
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.settings.max_concurrency, thread_name_prefix="fmp"
                )
            pool = self._pool
        futures = [pool.submit(task, item) for item in items]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            if (error := future.exception()) is not None:
                for other in pending:
                    other.cancel()
                wait(pending)
                raise error
        return [future.result() for future in futures]

    # --- one symbol, one group ----------------------------------------------------------

    def _fetch_single(self, symbol: str) -> tuple[list[Quote], list[SymbolFailure]]:
        """One symbol from the all-plans endpoint."""
        if self.pacer.quota_exhausted:
            return [], _not_requested([symbol])
        try:
            payload, fetched_at = self.get_json(QUOTE_PATH, {"symbol": symbol})
        except FMPAuthError:
            raise
        except FMPError as exc:
            return [], [SymbolFailure(symbol, exc.kind, str(exc))]
        return _parse_quote_rows(payload, [symbol], fetched_at)

    def _fetch_batch(self, symbols: list[str]) -> tuple[list[Quote], list[SymbolFailure]]:
        """Up to ``symbols_per_request`` symbols in one call to the premium endpoint."""
        if self.pacer.quota_exhausted:
            return [], _not_requested(symbols)
        try:
            payload, fetched_at = self.get_json(BATCH_QUOTE_PATH, {"symbols": ",".join(symbols)})
        except (FMPAuthError, FMPEndpointRestrictedError):
            raise
        except FMPError as exc:
            return [], _fail_all(symbols, exc.kind, str(exc))
        return _parse_quote_rows(payload, symbols, fetched_at)

    # --- HTTP -------------------------------------------------------------------------

    def get_json(self, path: str, params: dict[str, str]) -> tuple[Any, datetime]:
        """GET ``path`` and decode its JSON (decimals exact), retrying transient failures."""
        try:
            return self._retrying(self._attempt, path, params)
        except _Transient as exc:
            if self.pacer.quota_exhausted:
                raise FMPQuotaExhaustedError(
                    f"{path}: FMP quota exhausted (429 'Limit Reach' on every call for over "
                    f"{self.settings.quota_exhausted_after:.0f} s)",
                    status=exc.status,
                ) from None
            raise FMPError(exc.kind, str(exc), status=exc.status) from None

    def _attempt(self, path: str, params: dict[str, str]) -> tuple[Any, datetime]:
        self.pacer.acquire()
        try:
            return self._send(path, params)
        finally:
            self.pacer.release()

    def _send(self, path: str, params: dict[str, str]) -> tuple[Any, datetime]:
        with self._lock:
            self._requests_made += 1
        try:
            request = requests.Request(
                "GET",
                self.base_url + path,
                params={**params, "apikey": self._api_key},
                headers=self._session.headers,
            ).prepare()
            response = self._session.send(
                request,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                **self._send_options,
            )
        except requests.RequestException as exc:
            # requests puts the full URL, key included, in its messages: redact, and drop
            # the chained exception so no traceback carries the original text.
            message = redact(f"{path}: {type(exc).__name__}: {exc}", self._api_key)
            raise _Transient(FailureKind.TRANSPORT_ERROR, message) from None
        fetched_at = datetime.now(UTC)
        status = response.status_code
        try:
            payload = json.loads(response.content.decode("utf-8"), parse_float=Decimal)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            payload = None
            if status == 200:
                raise FMPError(
                    FailureKind.BAD_RESPONSE, f"{path}: malformed JSON ({exc.msg})", status=status
                ) from None
        error_text = payload.get("Error Message") if isinstance(payload, dict) else None
        if status == 200 and error_text is None:
            self._note_success()
            if not isinstance(payload, list):
                shape = (
                    f"an object with keys {sorted(payload)[:5]}"
                    if isinstance(payload, dict)
                    else f"{type(payload).__name__} {str(payload)[:40]!r}"
                )
                raise FMPError(
                    FailureKind.BAD_RESPONSE,
                    f"{path}: expected a JSON list, got {shape}",
                    status=status,
                )
            return payload, fetched_at

        # The body's wording is more specific than the status ("Limit Reach" inside a 200,
        # "Premium Query Parameter" inside a 402), except that 401/403 always mean the key.
        kind = FailureKind.API_ERROR if status == 200 else classify_status(status)
        if error_text is not None and status not in (401, 403):
            text_kind = classify_error_message(str(error_text))
            if text_kind != FailureKind.API_ERROR:
                kind = text_kind
        # Redact before cutting: a cut could leave part of the key where no pattern finds it.
        detail = redact(str(error_text), self._api_key)[:200] if error_text else response.reason
        message = f"{path}: HTTP {status}: {detail}"
        if kind == FailureKind.AUTH_ERROR:
            raise FMPAuthError(message, status=status)
        if kind == FailureKind.QUOTA_EXHAUSTED:
            self.pacer.mark_quota_exhausted()
            raise FMPQuotaExhaustedError(message, status=status)
        if kind == FailureKind.RATE_LIMITED:
            self._note_rate_limited()
            raise _Transient(kind, message, status=status)
        if kind == FailureKind.NOT_IN_PLAN and "restricted endpoint" in detail.lower():
            raise FMPEndpointRestrictedError(message, status=status)
        if kind == FailureKind.SERVER_ERROR:
            raise _Transient(kind, message, status=status)
        self._note_success()
        raise FMPError(kind, message, status=status)

    def _note_success(self) -> None:
        self.pacer.note_success()

    def _note_rate_limited(self) -> None:
        self.pacer.note_rate_limited(
            pause=self.settings.rate_limit_pause,
            exhausted_after=self.settings.quota_exhausted_after,
            exhausted_streak=self.settings.quota_exhausted_streak,
        )


# --- parsing --------------------------------------------------------------------------------


def _parse_quote_rows(
    payload: Any, requested: list[str], fetched_at: datetime
) -> tuple[list[Quote], list[SymbolFailure]]:
    """Match the rows of a quote response to the requested symbols, validating each."""
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
    for symbol in requested:
        if symbol not in quotes and symbol not in failures:
            failures[symbol] = SymbolFailure(
                symbol, FailureKind.NO_QUOTE, "the API returned no quote for this symbol"
            )
    return list(quotes.values()), list(failures.values())


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


def _fail_all(symbols: list[str], kind: FailureKind, message: str) -> list[SymbolFailure]:
    return [SymbolFailure(s, kind, message) for s in symbols]


# Batch outcomes that a single-symbol request can refine or repair.
_ASK_SINGLY_AFTER_BATCH = frozenset(
    {FailureKind.NO_QUOTE, FailureKind.BAD_RESPONSE, FailureKind.API_ERROR}
)


def _not_requested(symbols: list[str]) -> list[SymbolFailure]:
    return _fail_all(symbols, FailureKind.QUOTA_EXHAUSTED, "not requested: FMP quota exhausted")


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


__all__ = [
    "DEFAULT_BASE_URL",
    "TRANSIENT_FAILURE_KINDS",
    "ClientSettings",
    "FMPClient",
    "MissingAPIKeyError",
    "QuoteFetchResult",
    "parse_quote",
]
