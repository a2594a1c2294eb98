"""A thread-pooled HTTP client for Massive's REST API (formerly Polygon.io). No Dagster import.

Pooling, pacing, retrying and exact JSON decoding are :class:`HttpApiClient`'s; what is
Massive's is here:

* The key travels in an ``Authorization: Bearer`` header, never in the URL, so no URL that
  a library or a proxy logs can hold it. Redirects are never followed (the header must not
  go to another host).
* Every answer is a JSON object with a ``status`` ("OK", "DELAYED" on a delayed plan,
  "ERROR", "NOT_AUTHORIZED") and, on failure, an ``error`` or ``message`` in words.
* A 403 means the plan lacks the data. On a whole-market endpoint (the snapshot, grouped
  daily) that is the endpoint itself, and no symbol can succeed; on a per-ticker endpoint
  it is that symbol's failure. Asking for today's grouped bars before the close on a plan
  that is end-of-day only is also a 403, but only for that day.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import Field

from quote_pipeline.fmp.pacing import CallPacer
from quote_pipeline.http_client import (
    HttpApiClient,
    HttpClientSettings,
    MissingAPIKeyError,
    TransientApiError,
    decode_json,
    one_line,
)
from quote_pipeline.massive.errors import (
    MassiveAuthError,
    MassiveEndpointRestricted,
    MassiveError,
    MassiveQuotaExhausted,
)
from quote_pipeline.models import FailureKind

DEFAULT_BASE_URL = "https://api.massive.com"

# Paths whose answer covers the whole market: a 403 there means the plan lacks the endpoint.
WHOLE_MARKET_PREFIXES = ("/v2/snapshot/", "/v2/aggs/grouped/")
# Body statuses of a usable answer ("DELAYED": a plan with 15-minute delayed data).
_SUCCESS_STATUSES = frozenset({"OK", "DELAYED"})
# How much of the vendor's words a message keeps.
_DETAIL_CHARS = 200


class MassiveSettings(HttpClientSettings):
    """How the client talks to Massive. The Dagster resource inherits these fields."""

    base_url: str = Field(default=DEFAULT_BASE_URL, description="Scheme and host of the API.")
    tickers_per_snapshot: int = Field(
        default=1000,
        ge=1,
        description="Most tickers asked in one snapshot request (the endpoint has no limit of "
        "its own; smaller requests keep a failure's cost down).",
    )
    max_query_chars: int = Field(
        default=6000,
        ge=100,
        description="Longest query string of a snapshot request: a longer ticker list is "
        "split into several requests, keeping each URL well under the 8 KiB request line "
        "servers commonly accept.",
    )


class MassiveClient(HttpApiClient[MassiveSettings]):
    """Calls Massive concurrently over one pooled ``requests.Session``."""

    missing_key_message = (
        "no Massive API key: set MASSIVE_API_KEY (or configure the massive resource's api_key)"
    )
    thread_name_prefix = "massive"
    query_safe = ","  # ticker lists stay readable (and a third as long) in the URL

    def __init__(
        self,
        api_key: str | None,
        settings: MassiveSettings | None = None,
        *,
        pacer: CallPacer | None = None,
    ) -> None:
        super().__init__(api_key, settings or MassiveSettings(), pacer=pacer)

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def _error(self, kind: FailureKind, message: str, status: int | None) -> MassiveError:
        return MassiveError(kind, message, status=status)

    def _quota_exhausted_error(self, path: str, last: TransientApiError) -> MassiveError:
        return MassiveQuotaExhausted(
            f"{path}: Massive quota exhausted (429 on every call for over "
            f"{self.settings.quota_exhausted_after:.0f} s)",
            status=last.status,
        )

    def _interpret(
        self, path: str, status: int, reason: str, body: bytes, fetched_at: datetime
    ) -> tuple[Any, datetime]:
        malformed: str | None = None
        try:
            payload = decode_json(body)
        except json.JSONDecodeError as exc:
            payload, malformed = None, exc.msg
        except UnicodeDecodeError as exc:
            payload, malformed = None, f"not UTF-8: {exc.reason}"
        vendor_status = payload.get("status") if isinstance(payload, dict) else None
        detail = self._detail(payload, reason, status)
        message = self._redact(f"{path}: HTTP {status}: {detail}")

        if status == 200:
            self._note_success()  # an answer, even a bad one: any 429 streak is over
            if malformed is not None:
                raise MassiveError(
                    FailureKind.BAD_RESPONSE, f"{path}: malformed JSON ({malformed})", status=200
                )
            if not isinstance(payload, dict):
                # Redact before cutting, as for the vendor's words.
                shape = f"{type(payload).__name__} {self._redact(str(payload))[:40]!r}"
                raise MassiveError(
                    FailureKind.BAD_RESPONSE,
                    f"{path}: expected a JSON object, got {shape}",
                    status=200,
                )
            if vendor_status in _SUCCESS_STATUSES or (
                vendor_status is None and not _vendor_text(payload)
            ):
                return payload, fetched_at
            raise MassiveError(FailureKind.API_ERROR, message, status=200)

        if status == 401:
            raise MassiveAuthError(message, status=status)
        if status == 429:
            self._note_rate_limited()
            raise TransientApiError(FailureKind.RATE_LIMITED, message, status=status)
        if status >= 500:
            raise TransientApiError(FailureKind.SERVER_ERROR, message, status=status)
        if status == 403:
            # "before end of day": today's bars on an end-of-day plan; another day works.
            if path.startswith(WHOLE_MARKET_PREFIXES) and "before end of day" not in (
                detail.lower()
            ):
                raise MassiveEndpointRestricted(message, status=status)
            kind = FailureKind.NOT_IN_PLAN
        elif status == 404:
            kind = FailureKind.NO_QUOTE
        else:
            kind = FailureKind.API_ERROR
        self._note_success()
        raise MassiveError(kind, message, status=status)

    def _detail(self, payload: Any, reason: str, status: int) -> str:
        """The vendor's words for an answer (its ``error`` or ``message``), else the HTTP
        reason: redacted, on one line, cut short."""
        text = _vendor_text(payload) if isinstance(payload, dict) else None
        if not text:
            return reason or f"status {status}"
        # Redact before cutting: a cut could leave part of the key where no pattern finds it.
        return one_line(self._redact(text))[:_DETAIL_CHARS]


def _vendor_text(payload: dict[str, Any]) -> str | None:
    for key in ("error", "message"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


__all__ = [
    "DEFAULT_BASE_URL",
    "WHOLE_MARKET_PREFIXES",
    "MassiveClient",
    "MassiveSettings",
    "MissingAPIKeyError",
]
