"""The failures every market-data API client raises, whatever the provider. No I/O.

The fetch engine sorts on these: an :class:`ApiAuthError` or :class:`ApiEndpointRestricted`
stops a whole fetch, anything else is the failure of the symbols asked for. A provider's
client subclasses them (`FMPAuthError` is an `ApiAuthError`).
"""

from __future__ import annotations

from quote_pipeline.models import FailureKind


class ApiError(Exception):
    """A call that gave no usable answer. ``kind`` says why; the text never holds a key."""

    def __init__(self, kind: FailureKind, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class ApiAuthError(ApiError):
    """The key is refused: no other request can succeed either."""


class ApiEndpointRestricted(ApiError):
    """The plan lacks this endpoint: no other symbol can get it either."""


class ApiQuotaExhausted(ApiError):
    """The plan's quota is gone: stop asking."""


__all__ = ["ApiAuthError", "ApiEndpointRestricted", "ApiError", "ApiQuotaExhausted"]
