"""Asset checks on the quote tables, visible on each asset's Checks tab.

`coverage` and `api_quota_not_exhausted` (in assets.py) read the run's own fetch results;
these read the stored tables, so they can also run on their own. Each says one thing:
`freshness` is about stored rows going stale, `coverage` about tickers without a quote.
"""

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from quote_pipeline.api_errors import ApiError
from quote_pipeline.defs.metadata import (
    counts_text,
    failures_summary,
    failures_value,
    names_summary,
    table_value,
    utc_minute,
)
from quote_pipeline.defs.providers import quote_provider_chain
from quote_pipeline.defs.resources import (
    DatabaseResource,
    FMPResource,
    MassiveResource,
    ProviderChoice,
)
from quote_pipeline.fetch_engine import FetchEngine, RetryBudget
from quote_pipeline.market_calendar import within_market_hours
from quote_pipeline.models import FailureKind
from quote_pipeline.providers.base import QuoteFetchResult
from quote_pipeline.providers.consistency import compare_prices, sample_symbols
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


class ProviderConsistencyConfig(dg.Config):
    sample_size: int = Field(
        default=20,
        ge=1,
        le=500,
        description="Tickers compared per run (the same ones run after run: a stable sample).",
    )
    tolerance_pct: float = Field(
        default=2.0,
        gt=0,
        description="A price further than this from the other provider's (in % of it) is a "
        "disagreement. Delayed data differs legitimately: Massive's Starter plan is 15 "
        "minutes behind FMP's latest trade, and a stock can move a percent in 15 minutes.",
    )


@dg.asset_check(asset="stocks", additional_ins={"raw_quotes": dg.AssetIn()}, blocking=False)
def providers_agree(
    context: dg.AssetCheckExecutionContext,
    config: ProviderConsistencyConfig,
    fmp: FMPResource,
    massive: MassiveResource,
    providers: ProviderChoice,
    raw_quotes: QuoteFetchResult,
) -> dg.AssetCheckResult:
    """When two quote providers are configured: a sample of the latest refresh's prices
    matches the other provider's within the tolerance (a warning, not an error: delayed
    data differs). Costs one request of the other provider per refresh (Massive's snapshot,
    FMP's batch endpoint; sample_size requests on an FMP plan without it), asked once
    without a retry pass; with one provider there is nothing to compare."""
    chain = quote_provider_chain(providers, fmp, massive)
    if len(chain) < 2:
        return dg.AssetCheckResult(
            passed=True,
            description=f"one quote provider configured ({chain[0].name}): nothing to compare",
            metadata={"compared": 0},
        )
    served = Counter(q.source for q in raw_quotes.quotes)
    if not served:
        return dg.AssetCheckResult(
            passed=True, description="the refresh got no quote: nothing to compare"
        )
    ours_name = served.most_common(1)[0][0]
    other = next(p for p in chain if p.name != ours_name)
    sample = set(
        sample_symbols(
            [q.symbol for q in raw_quotes.quotes if q.source == ours_name], config.sample_size
        )
    )
    ours = [q for q in raw_quotes.quotes if q.symbol in sample and q.source == ours_name]
    try:
        if held := other.held_reason():
            raise ApiError(FailureKind.QUOTA_EXHAUSTED, held)
        plan = other.prepare_quotes(sorted(sample), probe=False)
        # One pass, no waiting: a sample that does not answer at once is not worth a pause.
        once = replace(other, engine=FetchEngine(other.engine.client, RetryBudget(0)))  # type: ignore[type-var]
        theirs = once.fetch_quotes(sorted(sample), plan, log=context.log.warning)
    except ApiError as exc:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"could not ask {other.name} to compare ({exc.kind.value}: {exc})",
        )
    compared = compare_prices(ours, theirs.quotes)
    apart = [c for c in compared if c.difference_pct > config.tolerance_pct]
    worst = sorted(compared, key=lambda c: c.difference_pct, reverse=True)
    description = (
        f"{len(apart)} of {len(compared)} sampled tickers differ by more than "
        f"{config.tolerance_pct:g}% between {ours_name} and {other.name}: "
        f"{names_summary([c.symbol for c in apart])}"
        if apart
        else f"{len(compared)} sampled tickers agree between {ours_name} and {other.name} "
        f"within {config.tolerance_pct:g}%"
    )
    return dg.AssetCheckResult(
        passed=not apart,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "compared": len(compared),
            "disagreeing": len(apart),
            "max_difference_pct": round(worst[0].difference_pct, 4) if worst else 0.0,
            "not_quoted_by_other": len(sample) - len(compared),
            "comparisons": table_value([c.row() for c in worst[:20]]),
        },
    )


quote_checks = [prices_positive, no_duplicate_tickers, freshness, fetch_failures, providers_agree]
