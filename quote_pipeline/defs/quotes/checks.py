"""Asset checks on the quote tables, visible on each asset's Checks tab.

`coverage` and `api_quota_not_exhausted` (in assets.py) read the run's own fetch results;
these read the stored tables, so they can also run on their own. Each says one thing:
`freshness` is about stored rows going stale, `coverage` about tickers without a quote.
"""

from collections import Counter
from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from quote_pipeline.defs.metadata import (
    counts_text,
    failures_summary,
    failures_value,
    names_summary,
    utc_minute,
)
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
    """ERROR while NYSE is open (stale prices are a real problem), WARN when it is closed.

    The market calendar (~0.5 s to build) is asked only when a row is stale, so the check
    costs a query in a refresh that kept every row fresh."""
    if not stale:
        return dg.AssetCheckResult(
            passed=True,
            description=f"every stored row was updated since {utc_minute(cutoff)}",
            metadata={"stale_rows": 0},
        )
    in_hours = within_market_hours(now)
    closed_note = "" if in_hours else " (market closed: warning only)"
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR if in_hours else dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(stale)} stored rows not updated since {utc_minute(cutoff)}: "
            f"{names_summary(stale)}{closed_note}"
        ),
        metadata={"stale_rows": len(stale), "market_hours": in_hours},
    )


@dg.asset_check(asset="stocks")
def freshness(config: FreshnessConfig, database: DatabaseResource) -> dg.AssetCheckResult:
    """Every stored row of a tracked ticker was updated within the last `max_age_minutes`.

    About rows that exist: a ticker that never got a quote has no row to go stale, and is
    `coverage`'s to report. During NYSE market hours (plus one hour after the close) a stale
    row is an error; outside them, when no refresh is expected to change prices, a warning.
    """
    now = datetime.now(UTC)
    cutoff = now - timedelta(minutes=config.max_age_minutes)
    stale = stale_tickers(database.get_engine(), updated_before=cutoff)
    return freshness_result(stale, cutoff, now=now)


@dg.asset_check(asset="raw_quotes")
def fetch_failures(raw_quotes: QuoteFetchResult) -> dg.AssetCheckResult:
    """Tickers without a quote in the latest fetch, and why (no_quote, not_in_plan,
    bad_response, rate_limited, server_error, …). Warns when any failed."""
    failures = raw_quotes.failures
    total = len(raw_quotes.quotes) + len(failures)
    return dg.AssetCheckResult(
        passed=not failures,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(failures)} of {total} tickers got no quote: {failures_summary(failures)}"
            if failures
            else f"all {total} tickers got a quote"
        ),
        metadata={
            **({"failed_tickers": failures_value(failures)} if failures else {}),
            "failed": len(failures),
            "failures_by_kind": counts_text(Counter(f.kind.value for f in failures)),
        },
    )


quote_checks = [prices_positive, no_duplicate_tickers, freshness, fetch_failures]
