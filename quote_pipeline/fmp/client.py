"""A small, thread-pooled HTTP client for FMP's `/stable` API. No Dagster import.

Every request goes through :class:`CallPacer` (so retries count against the plan's cap too),
is retried with exponential back-off and jitter by tenacity when the failure is transient and
fast (5xx, reset, 429), and is classified into a :class:`FailureKind` otherwise. A read
timeout is not retried here: it already cost a whole timeout, and the fetch engine asks the
symbol again in its next pass instead of letting one slow symbol hold a pass for minutes.
What to ask for (quotes, history) lives beside it (`quotes.py`, `history.py`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import requests
import urllib3
from pydantic import BaseModel, ConfigDict, Field
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
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
from quote_pipeline.fmp.pacing import CallPacer
from quote_pipeline.models import (
    FailureKind,
)

DEFAULT_BASE_URL = "https://financialmodelingprep.com"

_T = TypeVar("_T")


class MissingAPIKeyError(ValueError):
    """No API key was configured; raised before any request is made."""


class ClientSettings(BaseModel):
    """How the client talks to FMP. Defaults suit a paid plan against the real API.

    The Dagster resource inherits these fields, so each is editable (with this description)
    in the launchpad without being restated there.
    """

    model_config = ConfigDict(frozen=True)

    base_url: str = Field(default=DEFAULT_BASE_URL, description="Scheme and host of the API.")
    connect_timeout: float = Field(default=3.05, gt=0, description="Seconds to connect.")
    read_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds to wait for an answer. A timed-out request is not retried within "
        "its pass: the symbol is asked again in the next pass (see the retry budget).",
    )
    max_concurrency: int = Field(
        default=64, ge=1, le=256, description="Requests in flight (threads and connections)."
    )
    symbols_per_request: int = Field(
        default=100, ge=1, le=1000, description="Symbols per call to a batch endpoint."
    )
    calls_per_minute: int | None = Field(
        default=None,
        ge=1,
        description="Client-side cap on calls per rolling minute (the plan's limit); "
        "unset: no cap.",
    )
    attempts: int = Field(
        default=4, ge=1, description="Tries per request for 5xx, 429 and connection resets."
    )
    backoff_initial: float = Field(
        default=0.5, ge=0, description="First wait between tries, seconds; doubles, jittered."
    )
    backoff_max: float = Field(default=8.0, ge=0, description="Longest wait between tries.")
    rate_limit_pause: float = Field(
        default=2.0, ge=0, description="Seconds every request waits after a 429."
    )
    quota_exhausted_streak: int = Field(
        default=10, ge=1, description="429s in a row (with no success) that can mean no quota."
    )
    quota_exhausted_after: float = Field(
        default=65.0,
        gt=0,
        description="Seconds such a streak must last (longer than FMP's per-minute window) "
        "before the quota counts as exhausted and every request stops.",
    )


class _Transient(FMPError):
    """A failure worth another attempt (5xx, reset, timeout, 429). ``now`` says whether it is
    worth one within this request: not for a read timeout, which already cost a timeout."""

    def __init__(
        self, kind: FailureKind, message: str, *, status: int | None = None, now: bool = True
    ) -> None:
        super().__init__(kind, message, status=status)
        self.now = now


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
        self._timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        self._urllib3_timeout = urllib3.Timeout(
            connect=self.settings.connect_timeout, read=self.settings.read_timeout
        )
        self._headers = dict(self._session.headers)
        self._base_path = urlsplit(self.base_url).path
        self._direct = (
            None
            if select_proxy(self.base_url, self._send_options["proxies"])
            else adapter.get_connection_with_tls_context(
                requests.Request("GET", self.base_url + "/").prepare(),
                verify=self._send_options["verify"],
                cert=self._send_options["cert"],
            )
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
                lambda exc: (
                    isinstance(exc, _Transient) and exc.now and not self.pacer.quota_exhausted
                )
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

    def submit(self, task: Callable[[Any], _T], item: Any) -> Future[_T]:
        """``task(item)`` on the client's thread pool (made on first use)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.settings.max_concurrency, thread_name_prefix="fmp"
                )
            pool = self._pool
        return pool.submit(task, item)

    def map_concurrently(self, task: Callable[[Any], _T], items: Sequence[Any]) -> list[_T]:
        """``task`` over ``items`` on the client's thread pool, results in order.

        The first exception (an invalid key) cancels what has not started, waits for what
        is in flight, and is raised. ``task`` must not call back into this method.
        """
        if not items:
            return []
        futures = [self.submit(task, item) for item in items]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            if (error := future.exception()) is not None:
                for other in pending:
                    other.cancel()
                wait(pending)
                raise error
        return [future.result() for future in futures]

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
            status, reason, body = self._get(path, {**params, "apikey": self._api_key})
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            # Both put the full URL, key included, in their messages: redact, and drop the
            # chained exception so no traceback carries the original text.
            message = redact(f"{path}: {type(exc).__name__}: {exc}", self._api_key)
            timed_out = isinstance(
                exc, requests.ReadTimeout | urllib3.exceptions.ReadTimeoutError
            ) or (  # requests (through a proxy) reports a timeout in the body so
                isinstance(exc, requests.ConnectionError)
                and any(isinstance(a, urllib3.exceptions.ReadTimeoutError) for a in exc.args)
            )
            raise _Transient(FailureKind.TRANSPORT_ERROR, message, now=not timed_out) from None
        fetched_at = datetime.now(UTC)
        try:
            payload = json.loads(body.decode("utf-8"), parse_float=Decimal)
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
        detail = redact(str(error_text), self._api_key)[:200] if error_text else reason
        message = f"{path}: HTTP {status}: {detail}"
        if kind == FailureKind.AUTH_ERROR:
            raise FMPAuthError(message, status=status)
        if kind == FailureKind.QUOTA_EXHAUSTED:
            self.pacer.mark_quota_exhausted(f"{path}: {detail}")
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

    def _get(self, path: str, query: dict[str, str]) -> tuple[int, str, bytes]:
        """GET ``path?query`` once: (status, reason, body).

        Straight through requests' own connection pool (the one its adapter made, with the
        same TLS settings): a fetch is CPU-bound under the GIL, and requests' per-call
        machinery (request preparation, cookies, hooks, redirects, the Response) was most of
        a request's CPU. Through a proxy, requests does the whole call as usual.
        """
        if self._direct is None:
            response = self._session.send(
                requests.Request(
                    "GET", self.base_url + path, params=query, headers=self._session.headers
                ).prepare(),
                timeout=self._timeout,
                allow_redirects=False,
                **self._send_options,
            )
            return response.status_code, response.reason or "", response.content
        answer = self._direct.urlopen(
            "GET",
            self._base_path + path + "?" + urlencode(query),
            headers=self._headers,
            retries=False,
            redirect=False,
            timeout=self._urllib3_timeout,
            preload_content=True,
        )
        return answer.status, answer.reason or "", answer.data

    def _note_success(self) -> None:
        self.pacer.note_success()

    def _note_rate_limited(self) -> None:
        self.pacer.note_rate_limited(
            pause=self.settings.rate_limit_pause,
            exhausted_after=self.settings.quota_exhausted_after,
            exhausted_streak=self.settings.quota_exhausted_streak,
        )


__all__ = [
    "DEFAULT_BASE_URL",
    "ClientSettings",
    "FMPClient",
    "MissingAPIKeyError",
]
