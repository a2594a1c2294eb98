"""A small, thread-pooled HTTP client for a market-data API, whatever its vendor. No Dagster.

Every request goes through a :class:`CallPacer` (so retries count against the plan's cap
too), is retried with exponential back-off and jitter by tenacity when the failure is
transient and fast (5xx, reset, 429), and is classified into a :class:`FailureKind`
otherwise. A read timeout is not retried here: it already cost a whole timeout, and the fetch
engine asks the symbol again in its next pass instead of letting one slow symbol hold a pass
for minutes.

A vendor's client (`fmp/client.py`, `massive/client.py`) subclasses :class:`HttpApiClient`
and supplies only what differs between vendors: how the key travels (a query parameter, a
header), and what a ``(status, body)`` means (a payload, or which error). Pooling, pacing,
retrying, the fast direct path through urllib3 and exact JSON decoding are shared here.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar
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

from quote_pipeline.api_errors import ApiError, ApiQuotaExhausted
from quote_pipeline.models import FailureKind

if TYPE_CHECKING:
    from quote_pipeline.fmp.pacing import CallPacer

_T = TypeVar("_T")
SettingsT = TypeVar("SettingsT", bound="HttpClientSettings")


class MissingAPIKeyError(ValueError):
    """No API key was configured; raised before any request is made."""


class HttpClientSettings(BaseModel):
    """How a client talks to its API. Defaults suit a paid plan against the real API.

    A vendor's settings subclass this (giving ``base_url`` its default); the Dagster
    resources inherit these fields, so each is editable (with this description) in the
    launchpad without being restated there.
    """

    model_config = ConfigDict(frozen=True)

    base_url: str = Field(description="Scheme and host of the API.")
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
        description="Seconds such a streak must last (longer than the API's per-minute window) "
        "before the quota counts as exhausted and every request stops.",
    )


# --- keeping keys out of messages and logs ----------------------------------------------------

# A key in a query string (``apikey=``, ``apiKey=``, ``api_key=``, ``token=``) or in an
# ``Authorization: Bearer`` header, however a library happens to print it.
_KEY_PARAM = re.compile(r"((?:api_?key|token)=)[^&\s'\"<>)]*", re.IGNORECASE)
_BEARER = re.compile(r"(bearer\s+)[^\s'\",}]+", re.IGNORECASE)
# Keys of the clients made in this process, for the log filter: a library that logs a
# request (headers and all, at debug level) must not print one.
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()


def redact(text: str, secret: str | None = None) -> str:
    """``text`` with every key-like query value, bearer token (and ``secret`` itself)
    replaced by ``***``."""
    text = _BEARER.sub(r"\1***", _KEY_PARAM.sub(r"\1***", text))
    if secret:
        text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """Masks API keys in records of libraries that log requests (urllib3 logs URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        with _SECRETS_LOCK:
            secrets = list(_SECRETS)
        for secret in secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install_log_redaction(secret: str | None = None) -> None:
    """Attach :class:`RedactingFilter` to the loggers that can print requests (idempotent),
    and have it mask ``secret`` wherever it appears."""
    if secret:
        with _SECRETS_LOCK:
            _SECRETS.add(secret)
    for name in ("urllib3", "urllib3.connectionpool", "requests"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of blanks folded into single spaces."""
    return " ".join(text.split())


def decode_json(body: bytes) -> Any:
    """A response body as JSON, numbers with a fraction as exact :class:`Decimal`.

    Raises ValueError (``UnicodeDecodeError`` or ``json.JSONDecodeError``) when it is not.
    """
    return json.loads(body.decode("utf-8"), parse_float=Decimal)


class TransientApiError(ApiError):
    """A failure worth another attempt (5xx, reset, timeout, 429). ``now`` says whether it is
    worth one within this request: not for a read timeout, which already cost a timeout.

    Never leaves :meth:`HttpApiClient.get_json`: the last one becomes the vendor's error."""

    def __init__(
        self, kind: FailureKind, message: str, *, status: int | None = None, now: bool = True
    ) -> None:
        super().__init__(kind, message, status=status)
        self.now = now


# --- the client ----------------------------------------------------------------------------


class HttpApiClient(Generic[SettingsT]):
    """Calls one API concurrently over one pooled ``requests.Session``.

    Subclasses set :attr:`missing_key_message` and :attr:`thread_name_prefix`, and override
    :meth:`_interpret` (a response into a payload or an error), :meth:`_error` and
    :meth:`_quota_exhausted_error` (their error classes), and :meth:`_query` or
    :meth:`_auth_headers` (where the key goes).
    """

    missing_key_message: ClassVar[str] = "no API key configured"
    thread_name_prefix: ClassVar[str] = "api"
    query_safe: ClassVar[str] = ""
    """Characters left as they are in a query string (e.g. "," to keep lists readable)."""

    def __init__(
        self,
        api_key: str | None,
        settings: SettingsT,
        *,
        pacer: CallPacer | None = None,
    ) -> None:
        if not api_key or not api_key.strip():
            raise MissingAPIKeyError(self.missing_key_message)
        self._api_key = api_key.strip()
        self._install_log_redaction()
        self.settings = settings
        self.base_url = self.settings.base_url.rstrip("/")
        if pacer is None:
            # Imported here: importing the fmp package loads fmp/client.py, which needs this
            # module loaded first (pacing.py itself is vendor-neutral).
            from quote_pipeline.fmp.pacing import CallPacer

            pacer = CallPacer(self.settings.calls_per_minute)
        self.pacer = pacer
        self._session = requests.Session()
        self._session.headers.update(self._auth_headers())
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
                    isinstance(exc, TransientApiError)
                    and exc.now
                    and not self.pacer.quota_exhausted
                )
            ),
            reraise=True,
        )
        self._lock = threading.Lock()
        self._requests_made = 0
        # Threads (and the session's connections) outlive one fetch: a client serving many
        # mapped steps in a process pays for them once, not once per step.
        self._pool: ThreadPoolExecutor | None = None

    # --- what a vendor's client supplies ----------------------------------------------

    def _query(self, params: dict[str, str]) -> dict[str, str]:
        """The query string's parameters for ``params`` (a key sent as a parameter goes here)."""
        return params

    def _auth_headers(self) -> dict[str, str]:
        """Headers sent with every request (a key sent as a header goes here)."""
        return {}

    def _install_log_redaction(self) -> None:
        install_log_redaction(self._api_key)

    def _redact(self, text: str) -> str:
        """``text`` without the key (every message passes through here before it is kept)."""
        return redact(text, self._api_key)

    def _interpret(
        self, path: str, status: int, reason: str, body: bytes, fetched_at: datetime
    ) -> tuple[Any, datetime]:
        """``(payload, fetched_at)`` for a usable answer; else raise the vendor's error, or a
        :class:`TransientApiError` for one worth another attempt (after noting a 429 with
        :meth:`_note_rate_limited`). Note every real answer with :meth:`_note_success`."""
        raise NotImplementedError

    def _error(self, kind: FailureKind, message: str, status: int | None) -> ApiError:
        """The vendor's error for a failure of ``kind`` (the last transient one's, say)."""
        return ApiError(kind, message, status=status)

    def _quota_exhausted_error(self, path: str, last: TransientApiError) -> ApiError:
        """The vendor's error once its quota counts as gone."""
        return ApiQuotaExhausted(
            FailureKind.QUOTA_EXHAUSTED,
            f"{path}: quota exhausted (429 on every call for over "
            f"{self.settings.quota_exhausted_after:.0f} s)",
            status=last.status,
        )

    # --- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._session.close()

    def __enter__(self) -> Self:
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
                    max_workers=self.settings.max_concurrency,
                    thread_name_prefix=self.thread_name_prefix,
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

    def encode_query(self, params: dict[str, str]) -> str:
        """The query string sent for ``params`` (without the key), for sizing a request."""
        return urlencode(params, safe=self.query_safe)

    def get_json(self, path: str, params: dict[str, str]) -> tuple[Any, datetime]:
        """GET ``path`` and decode its JSON (decimals exact), retrying transient failures."""
        try:
            return self._retrying(self._attempt, path, params)
        except TransientApiError as exc:
            if self.pacer.quota_exhausted:
                raise self._quota_exhausted_error(path, exc) from None
            raise self._error(exc.kind, str(exc), exc.status) from None

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
            status, reason, body = self._get(path, self._query(params))
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            # Both put the full URL, a key sent in it included, in their messages: redact, and
            # drop the chained exception so no traceback carries the original text.
            message = self._redact(f"{path}: {type(exc).__name__}: {exc}")
            timed_out = isinstance(
                exc, requests.ReadTimeout | urllib3.exceptions.ReadTimeoutError
            ) or (  # requests (through a proxy) reports a timeout in the body so
                isinstance(exc, requests.ConnectionError)
                and any(isinstance(a, urllib3.exceptions.ReadTimeoutError) for a in exc.args)
            )
            raise TransientApiError(
                FailureKind.TRANSPORT_ERROR, message, now=not timed_out
            ) from None
        return self._interpret(path, status, reason, body, datetime.now(UTC))

    def _get(self, path: str, query: dict[str, str]) -> tuple[int, str, bytes]:
        """GET ``path?query`` once: (status, reason, body).

        Straight through requests' own connection pool (the one its adapter made, with the
        same TLS settings): a fetch is CPU-bound under the GIL, and requests' per-call
        machinery (request preparation, cookies, hooks, redirects, the Response) was most of
        a request's CPU. Through a proxy, requests does the whole call as usual. Redirects
        are never followed: a header key must not travel to another host.
        """
        if self._direct is None:
            response = self._session.send(
                requests.Request(
                    "GET",
                    self.base_url + path,
                    params=urlencode(query, safe=self.query_safe),
                    headers=self._session.headers,
                ).prepare(),
                timeout=self._timeout,
                allow_redirects=False,
                **self._send_options,
            )
            return response.status_code, response.reason or "", response.content
        answer = self._direct.urlopen(
            "GET",
            self._base_path + path + "?" + urlencode(query, safe=self.query_safe),
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
    "HttpApiClient",
    "HttpClientSettings",
    "MissingAPIKeyError",
    "RedactingFilter",
    "TransientApiError",
    "decode_json",
    "install_log_redaction",
    "one_line",
    "redact",
]
