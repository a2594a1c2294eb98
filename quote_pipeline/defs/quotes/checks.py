"""Asset checks on the quote tables, visible on each asset's Checks tab.

`coverage` and `api_quota_not_exhausted` are evaluated by `stocks` itself (they need the
run's own fetch results); these read the stored tables, so they can also run on their own.
"""

from collections import Counter
from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from quote_pipeline.defs.quotes.assets import quote_failures_table
from quote_pipeline.defs.resources import DatabaseResource
from quote_pipeline.fmp import QuoteFetchResult
from quote_pipeline.market_calendar import within_market_hours
from quote_pipeline.storage.quality import duplicate_tickers, invalid_stock_rows, stale_tickers


@dg.asset_check(asset="stocks", blocking=False)
def prices_positive(database: DatabaseResource) -> dg.AssetCheckResult:
    """Every stored price is above zero and every volume at least zero."""
    bad = invalid_stock_rows(database.get_engine())
    return dg.AssetCheckResult(
        passed=not bad,
        description=f"{len(bad)} rows with price ≤ 0 or volume < 0" if bad else "all rows valid",
        metadata={
            "invalid_rows": len(bad),
            "examples": dg.MetadataValue.json(
                [{"ticker": t, "price": p, "volume": v} for t, p, v in bad]
            ),
        },
    )


@dg.asset_check(asset="stocks")
def no_duplicate_tickers(database: DatabaseResource) -> dg.AssetCheckResult:
    """Each ticker has one row, comparing tickers trimmed and upper-cased (catches `aapl`
    written beside `AAPL` by hand or by another tool)."""
    duplicates = duplicate_tickers(database.get_engine())
    return dg.AssetCheckResult(
        passed=not duplicates,
        description=f"{len(duplicates)} tickers stored more than once" if duplicates else "none",
        metadata={"duplicates": dg.MetadataValue.json(duplicates)},
    )


class FreshnessConfig(dg.Config):
    max_age_minutes: int = Field(
        default=75,
        ge=1,
        description="A row older than this is stale (the hourly schedule plus a margin).",
    )


def freshness_result(stale: list[str], cutoff: datetime, *, now: datetime) -> dg.AssetCheckResult:
    """ERROR while NYSE is open (stale prices are a real problem), WARN when it is closed."""
    in_hours = within_market_hours(now)
    closed_note = "" if in_hours else " (market closed: warning only)"
    return dg.AssetCheckResult(
        passed=not stale,
        severity=dg.AssetCheckSeverity.ERROR if in_hours else dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(stale)} tracked tickers not updated since {cutoff:%Y-%m-%d %H:%M} UTC"
            + closed_note
            if stale
            else "every tracked ticker is fresh"
        ),
        metadata={
            "stale_tickers": len(stale),
            "examples": ", ".join(stale[:20]),
            "market_hours": in_hours,
            "checked_at": dg.MetadataValue.timestamp(now),
        },
    )


@dg.asset_check(asset="stocks")
def freshness(config: FreshnessConfig, database: DatabaseResource) -> dg.AssetCheckResult:
    """Every tracked ticker's row was updated within the last `max_age_minutes`.

    During NYSE market hours (plus one hour after the close) a stale row is an error;
    outside them, when no refresh is expected to change prices, it is a warning.
    """
    now = datetime.now(UTC)
    cutoff = now - timedelta(minutes=config.max_age_minutes)
    stale = stale_tickers(database.get_engine(), updated_before=cutoff)
    return freshness_result(stale, cutoff, now=now)


@dg.asset_check(asset="raw_quotes")
def fetch_failures(raw_quotes: QuoteFetchResult) -> dg.AssetCheckResult:
    """Tickers without a quote in the latest fetch, broken down by kind (no_quote,
    not_in_plan, bad_response, rate_limited, server_error, …). Warns when any failed."""
    by_kind = dict(Counter(f.kind.value for f in raw_quotes.failures))
    total = len(raw_quotes.quotes) + len(raw_quotes.failures)
    return dg.AssetCheckResult(
        passed=not raw_quotes.failures,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(raw_quotes.failures)} of {total} tickers failed: {by_kind}"
        if raw_quotes.failures
        else f"all {total} tickers got a quote",
        metadata={
            "failures_by_kind": dg.MetadataValue.json(by_kind),
            "failed": len(raw_quotes.failures),
            "requested": total,
            "api_requests": raw_quotes.requests_made,
            "detail": dg.MetadataValue.md(quote_failures_table(raw_quotes.failures)),
        },
    )


quote_checks = [prices_positive, no_duplicate_tickers, freshness, fetch_failures]
