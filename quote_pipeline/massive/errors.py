"""Massive's failures, as the provider-neutral classes the fetch engine sorts on. No I/O."""

from __future__ import annotations

from quote_pipeline.api_errors import (
    ApiAuthError,
    ApiEndpointRestricted,
    ApiError,
    ApiQuotaExhausted,
)
from quote_pipeline.models import FailureKind


class MassiveError(ApiError):
    """A Massive call that gave no usable answer. ``kind`` says why; the text never holds
    the key."""


class MassiveAuthError(MassiveError, ApiAuthError):
    """401 "Unknown API Key": retrying cannot help, so the run stops at once."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(FailureKind.AUTH_ERROR, message, status=status)


class MassiveEndpointRestricted(MassiveError, ApiEndpointRestricted):
    """403 "NOT_AUTHORIZED" on a whole-market endpoint (snapshot, grouped daily): the plan
    lacks it, so no symbol can get it either."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(FailureKind.NOT_IN_PLAN, message, status=status)


class MassiveQuotaExhausted(MassiveError, ApiQuotaExhausted):
    """429s kept coming for longer than the plan's window: the quota is gone, stop asking."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(FailureKind.QUOTA_EXHAUSTED, message, status=status)


__all__ = [
    "MassiveAuthError",
    "MassiveEndpointRestricted",
    "MassiveError",
    "MassiveQuotaExhausted",
]
