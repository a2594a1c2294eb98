"""Asset checks on the price-history tables, visible on each asset's Checks tab.

They are evaluated by the assets themselves, over the range each run has just written (a
single-run backfill's whole partition range, or an intraday refresh's dates): the range is
what the run knows and what a standalone check of a partitioned asset would have to guess.
"""

from collections.abc import Sequence
from datetime import date, datetime

import dagster as dg
from sqlalchemy.engine import Engine

from quote_pipeline.storage.history import (
    BarConsistency,
    daily_price_consistency,
    intraday_bar_consistency,
    missing_sessions,
)

DAILY_ASSET = "daily_prices"
INTRADAY_ASSET = "intraday_bars"

BARS_CONSISTENT = "bars_consistent"
NO_MISSING_SESSIONS = "no_missing_trading_days"

daily_check_specs = [
    dg.AssetCheckSpec(
        BARS_CONSISTENT,
        asset=DAILY_ASSET,
        description="In the materialized range, every bar has low ≤ open, close ≤ high, "
        "positive prices and volume ≥ 0 (compared as exact decimals).",
    ),
    dg.AssetCheckSpec(
        NO_MISSING_SESSIONS,
        asset=DAILY_ASSET,
        description="In the materialized range, no ticker lacks an NYSE session between its "
        "first and last stored day (a listing or delisting inside the range is not a gap). "
        "Warns: the API can lack days, e.g. for a trading halt.",
    ),
]

intraday_check_specs = [
    dg.AssetCheckSpec(
        BARS_CONSISTENT,
        asset=INTRADAY_ASSET,
        description="For the refreshed dates, every 5-minute bar has low ≤ open, close ≤ high, "
        "positive prices and volume ≥ 0 (compared as exact decimals).",
    ),
]


def _consistency_result(asset: str, found: BarConsistency, scope: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=BARS_CONSISTENT,
        passed=found.inconsistent == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{found.inconsistent} of {found.rows_checked} bars inconsistent ({scope})"
            if found.inconsistent
            else f"all {found.rows_checked} bars consistent ({scope})"
        ),
        metadata={
            "rows_checked": found.rows_checked,
            "inconsistent_rows": found.inconsistent,
            "examples": dg.MetadataValue.json(found.examples),
        },
    )


def daily_consistency_result(
    engine: Engine, symbols: Sequence[str], start: date, end: date
) -> dg.AssetCheckResult:
    """The daily bars of ``symbols`` stored for ``start`` to ``end``, checked."""
    found = daily_price_consistency(engine, symbols, start, end)
    return _consistency_result(DAILY_ASSET, found, f"{start} to {end}")


def intraday_consistency_result(
    engine: Engine, symbols: Sequence[str], start: datetime, end: datetime
) -> dg.AssetCheckResult:
    """The 5-minute bars of ``symbols`` stored from ``start`` to ``end`` (UTC), checked."""
    found = intraday_bar_consistency(engine, symbols, start, end)
    return _consistency_result(
        INTRADAY_ASSET, found, f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    )


def missing_sessions_result(
    engine: Engine, symbols: Sequence[str], sessions: Sequence[date]
) -> dg.AssetCheckResult:
    """Tickers with gaps among ``sessions`` (the range's NYSE sessions, sorted)."""
    gaps = missing_sessions(engine, symbols, sessions)
    total = sum(len(days) for days in gaps.values())
    examples = {
        ticker: [d.isoformat() for d in days[:10]] + (["…"] if len(days) > 10 else [])
        for ticker, days in list(gaps.items())[:20]
    }
    scope = f"{sessions[0]} to {sessions[-1]}" if sessions else "no NYSE session in range"
    return dg.AssetCheckResult(
        asset_key=DAILY_ASSET,
        check_name=NO_MISSING_SESSIONS,
        passed=not gaps,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(gaps)} tickers miss {total} trading days ({scope})"
            if gaps
            else f"no trading day missing ({scope})"
        ),
        metadata={
            "sessions_in_range": len(sessions),
            "tickers_with_gaps": len(gaps),
            "missing_days": total,
            "examples": dg.MetadataValue.json(examples),
        },
    )
