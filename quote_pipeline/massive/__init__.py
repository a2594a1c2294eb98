"""Massive (formerly Polygon.io) API client: HTTP, endpoints, error kinds. No Dagster."""

from quote_pipeline.massive.client import (
    DEFAULT_BASE_URL,
    MassiveClient,
    MassiveSettings,
    MissingAPIKeyError,
)
from quote_pipeline.massive.errors import (
    MassiveAuthError,
    MassiveEndpointRestricted,
    MassiveError,
    MassiveQuotaExhausted,
)
from quote_pipeline.massive.history import (
    AGGS_PATH,
    GROUPED_DAILY_PATH,
    PREV_CLOSE_PATH,
    GroupedDay,
    daily_aggs_request,
    grouped_daily,
    parse_daily_agg_pages,
    parse_daily_aggs,
    previous_close,
)
from quote_pipeline.massive.quotes import (
    SNAPSHOT_PATH,
    parse_snapshot,
    parse_snapshot_row,
    probe_snapshot,
    snapshot_request,
)

__all__ = [
    "AGGS_PATH",
    "DEFAULT_BASE_URL",
    "GROUPED_DAILY_PATH",
    "PREV_CLOSE_PATH",
    "SNAPSHOT_PATH",
    "GroupedDay",
    "MassiveAuthError",
    "MassiveClient",
    "MassiveEndpointRestricted",
    "MassiveError",
    "MassiveQuotaExhausted",
    "MassiveSettings",
    "MissingAPIKeyError",
    "daily_aggs_request",
    "grouped_daily",
    "parse_daily_agg_pages",
    "parse_daily_aggs",
    "parse_snapshot",
    "parse_snapshot_row",
    "previous_close",
    "probe_snapshot",
    "snapshot_request",
]
