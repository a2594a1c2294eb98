"""`company_profiles`: one row per tracked ticker from FMP's /stable/profile, refreshed weekly
and for each ticker the first time it is tracked."""

import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from quote_pipeline.celery_config import fmp_queue_tags
from quote_pipeline.defs.fetching import fail_unless_complete, fetch_through_engine, tracked_symbols
from quote_pipeline.defs.metadata import (
    OWNERS,
    counts_text,
    failures_value,
    names_summary,
    table_metadata,
    table_value,
)
from quote_pipeline.defs.resources import DatabaseResource, FMPResource
from quote_pipeline.fetch_engine import SymbolResult
from quote_pipeline.fmp.reference import profile_request
from quote_pipeline.models import FailureKind
from quote_pipeline.reference_data import CompanyProfile
from quote_pipeline.storage import schema as tables
from quote_pipeline.storage.corporate_actions import (
    profile_counts,
    tickers_without_profile,
    write_profiles,
)
from quote_pipeline.storage.repository import count_rows

GROUP = "reference_data"
PROFILES_EXIST = "profiles_exist_for_every_ticker"


class ReferenceFetchConfig(dg.Config):
    """Which tickers a reference-data run asks for, and how it writes them."""

    only_symbols: list[str] | None = Field(
        default=None,
        description="Fetch only these of the tracked tickers (the new-ticker sensor sets it "
        "to those without a profile); unset: every tracked ticker.",
    )
    tickers_per_write: int = Field(
        default=100, ge=1, description="Tickers written per transaction while the next are fetched."
    )


def profiles_check(database: DatabaseResource) -> dg.AssetCheckResult:
    missing = tickers_without_profile(database.get_engine())
    return dg.AssetCheckResult(
        check_name=PROFILES_EXIST,
        passed=not missing,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "Every tracked ticker has a profile."
            if not missing
            else f"{len(missing)} tracked tickers have no profile: {names_summary(missing)}"
        ),
        metadata={"tickers_without_profile": len(missing)},
    )


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    deps=["tickers"],
    pool="fmp_api",
    op_tags=fmp_queue_tags(),
    kinds={"api", "sql", "table"},
    metadata=table_metadata(tables.company_profiles),
    check_specs=[
        dg.AssetCheckSpec(
            PROFILES_EXIST,
            asset="company_profiles",
            description="Every tracked ticker has a stored profile (warns: a ticker the plan "
            "refuses, or one the API does not know, has none).",
        )
    ],
)
def company_profiles(
    context: dg.AssetExecutionContext,
    config: ReferenceFetchConfig,
    fmp: FMPResource,
    database: DatabaseResource,
) -> dg.MaterializeResult:
    """Name, exchange, sector, industry, currency, market cap, flags and identifiers of every
    tracked company, from FMP's /stable/profile (one request per ticker, through the fetch
    engine). Profiles change rarely: refreshed weekly (Saturday morning, New York) and for a
    ticker the first time it is tracked (the `profiles_for_new_tickers` sensor).

    Never deleted: a ticker the API stops answering for is flagged `gone`, one it calls not
    actively trading `not_trading`. A ticker refused with 402 (the free plan refuses some
    symbols per endpoint) is reported as not in plan; the others are written.
    """
    started = time.monotonic()
    engine = database.get_engine()
    symbols = tracked_symbols(database, config.only_symbols)
    fmp.refuse_if_quota_held()
    requests_before = fmp.client.requests_made
    written = {"profiles": 0}
    newly_gone: list[str] = []
    not_trading: list[str] = []

    def on_group(results: list[SymbolResult[CompanyProfile]]) -> None:
        profiles = [r.value for r in results if r.value is not None]
        gone = [
            r.symbol
            for r in results
            if r.failure is not None and r.failure.kind == FailureKind.NO_QUOTE
        ]
        summary = write_profiles(engine, profiles, gone=gone, now=datetime.now(UTC))
        written["profiles"] += summary.written
        newly_gone.extend(summary.newly_gone)
        not_trading.extend(summary.not_trading)

    report = fetch_through_engine(
        fmp,
        symbols,
        profile_request(fmp.client),
        on_group=on_group,
        group_size=config.tickers_per_write,
        log=context.log.info,
    )
    # An unknown ticker is no failure of the run: its stored profile (if any) is flagged.
    failures = [f for f in report.failures if f.kind != FailureKind.NO_QUOTE]
    unknown = sorted(f.symbol for f in report.failures if f.kind == FailureKind.NO_QUOTE)
    counts = profile_counts(engine)
    metadata: dict[str, Any] = {
        "dagster/row_count": count_rows(engine, tables.company_profiles),
        "by_sector": table_value(
            [{"sector": k, "tickers": v} for k, v in counts.by_sector.items()]
        ),
        "by_exchange": table_value(
            [{"exchange": k, "tickers": v} for k, v in counts.by_exchange.items()]
        ),
        "by_status": counts_text(counts.by_status),
        "profiles_written": written["profiles"],
        "tickers_requested": len(symbols),
        **({"failed_tickers": failures_value(failures)} if failures else {}),
        **({"no_profile": names_summary(unknown)} if unknown else {}),
        **({"newly_gone": names_summary(newly_gone)} if newly_gone else {}),
        **({"not_actively_trading": names_summary(sorted(not_trading))} if not_trading else {}),
        "api_requests": fmp.client.requests_made - requests_before,
        "seconds": round(time.monotonic() - started, 3),
    }
    context.log.info(
        f"{written['profiles']} profiles written for {len(symbols)} tickers"
        + (f"; {len(failures)} failed" if failures else "")
        + (f"; no profile for {len(unknown)}" if unknown else "")
    )
    fail_unless_complete(report, metadata)
    return dg.MaterializeResult(metadata=metadata, check_results=[profiles_check(database)])
