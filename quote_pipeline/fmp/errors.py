"""FMP's error forms, classified, and the redaction that keeps the API key out of them."""

from __future__ import annotations

import logging
import re

from quote_pipeline.api_errors import (
    ApiAuthError,
    ApiEndpointRestricted,
    ApiError,
    ApiQuotaExhausted,
)
from quote_pipeline.models import FailureKind

_APIKEY_PARAM = re.compile(r"(apikey=)[^&\s'\"<>)]*", re.IGNORECASE)


def redact(text: str, secret: str | None = None) -> str:
    """``text`` with every ``apikey=…`` value (and ``secret`` itself) replaced by ``***``."""
    text = _APIKEY_PARAM.sub(r"\1***", text)
    if secret:
        text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """Masks API keys in records of libraries that log URLs (urllib3 logs retried URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install_log_redaction() -> None:
    """Attach :class:`RedactingFilter` to the loggers that can print request URLs (idempotent)."""
    for name in ("urllib3", "urllib3.connectionpool", "requests"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


class FMPError(ApiError):
    """An FMP call that gave no usable answer. ``kind`` says why; the text never holds the key."""


class FMPAuthError(FMPError, ApiAuthError):
    """401/403 or "Invalid API KEY": retrying cannot help, so the run stops at once."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(FailureKind.AUTH_ERROR, message, status=status)


class FMPQuotaExhaustedError(FMPError, ApiQuotaExhausted):
    """429 / "Limit Reach" kept coming: the plan's quota is gone, stop asking."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(FailureKind.QUOTA_EXHAUSTED, message, status=status)


class FMPEndpointRestrictedError(FMPError, ApiEndpointRestricted):
    """402 "Restricted Endpoint": the plan lacks this endpoint (e.g. batch quotes)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(FailureKind.NOT_IN_PLAN, message, status=status)


def classify_error_message(text: str) -> FailureKind:
    """The kind of an ``{"Error Message": …}`` body, from its text (FMP's wording)."""
    lowered = text.lower()
    if "invalid api key" in lowered or "legacy endpoint" in lowered:
        return FailureKind.AUTH_ERROR
    if "bandwidth limit reach" in lowered:
        return FailureKind.QUOTA_EXHAUSTED
    if "limit reach" in lowered:
        return FailureKind.RATE_LIMITED
    if "premium query parameter" in lowered or "restricted endpoint" in lowered:
        return FailureKind.NOT_IN_PLAN
    if "subscription" in lowered:
        return FailureKind.NOT_IN_PLAN
    return FailureKind.API_ERROR


def classify_status(status: int) -> FailureKind:
    """The kind of a non-200 HTTP status."""
    if status in (401, 403):
        return FailureKind.AUTH_ERROR
    if status == 402:
        return FailureKind.NOT_IN_PLAN
    if status == 429:
        return FailureKind.RATE_LIMITED
    if status >= 500:
        return FailureKind.SERVER_ERROR
    return FailureKind.API_ERROR
