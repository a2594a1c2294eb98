"""A small, thread-pooled HTTP client for FMP's `/stable` API. No Dagster import.

Pooling, pacing, retrying and exact JSON decoding are :class:`HttpApiClient`'s
(`quote_pipeline/http_client.py`); what is FMP's is here: the key travels as the ``apikey``
query parameter, and FMP's error forms (``{"Error Message": …}`` inside a 200, plain-text
402s, "Limit Reach") are classified into a :class:`FailureKind`. A read timeout is not
retried within a request: the fetch engine asks the symbol again in its next pass.
What to ask for (quotes, history) lives beside it (`quotes.py`, `history.py`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import Field

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
from quote_pipeline.http_client import (
    HttpApiClient,
    HttpClientSettings,
    MissingAPIKeyError,
    TransientApiError,
    decode_json,
)
from quote_pipeline.models import (
    FailureKind,
)

DEFAULT_BASE_URL = "https://financialmodelingprep.com"


class ClientSettings(HttpClientSettings):
    """How the client talks to FMP. Defaults suit a paid plan against the real API.

    The Dagster resource inherits these fields, so each is editable (with this description)
    in the launchpad without being restated there.
    """

    base_url: str = Field(default=DEFAULT_BASE_URL, description="Scheme and host of the API.")


class FMPClient(HttpApiClient[ClientSettings]):
    """Fetches quotes concurrently over one pooled ``requests.Session``."""

    missing_key_message = (
        "no FMP API key: set FMP_API_KEY (or configure the fmp resource's api_key)"
    )
    thread_name_prefix = "fmp"

    def __init__(
        self,
        api_key: str | None,
        settings: ClientSettings | None = None,
        *,
        pacer: CallPacer | None = None,
    ) -> None:
        super().__init__(api_key, settings or ClientSettings(), pacer=pacer)

    # --- FMP's dialect ------------------------------------------------------------------

    def _query(self, params: dict[str, str]) -> dict[str, str]:
        return {**params, "apikey": self._api_key}

    def _install_log_redaction(self) -> None:
        install_log_redaction()

    def _redact(self, text: str) -> str:
        return redact(text, self._api_key)

    def _error(self, kind: FailureKind, message: str, status: int | None) -> FMPError:
        return FMPError(kind, message, status=status)

    def _quota_exhausted_error(self, path: str, last: TransientApiError) -> FMPError:
        return FMPQuotaExhaustedError(
            f"{path}: FMP quota exhausted (429 'Limit Reach' on every call for over "
            f"{self.settings.quota_exhausted_after:.0f} s)",
            status=last.status,
        )

    def _interpret(
        self, path: str, status: int, reason: str, body: bytes, fetched_at: datetime
    ) -> tuple[Any, datetime]:
        try:
            payload = decode_json(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            payload = None
            if status == 200:
                why = exc.msg if isinstance(exc, json.JSONDecodeError) else exc.reason
                raise FMPError(
                    FailureKind.BAD_RESPONSE, f"{path}: malformed JSON ({why})", status=status
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
            raise TransientApiError(kind, message, status=status)
        if kind == FailureKind.NOT_IN_PLAN and "restricted endpoint" in detail.lower():
            raise FMPEndpointRestrictedError(message, status=status)
        if kind == FailureKind.SERVER_ERROR:
            raise TransientApiError(kind, message, status=status)
        self._note_success()
        raise FMPError(kind, message, status=status)


__all__ = [
    "DEFAULT_BASE_URL",
    "ClientSettings",
    "FMPClient",
    "MissingAPIKeyError",
]
