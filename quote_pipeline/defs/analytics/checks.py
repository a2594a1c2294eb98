"""Asset checks on daily_metrics, evaluated by the asset itself after each materialization."""

import dagster as dg
from sqlalchemy.engine import Engine

from quote_pipeline.defs.metadata import names_summary
from quote_pipeline.storage.metrics import (
    RANGE_CHECKED_METRICS,
    metrics_coverage,
    metrics_out_of_range,
)

ASSET = "daily_metrics"
COVERS_ADJUSTED_ROWS = "covers_every_adjusted_row"
RANGE_CHECKS = {
    "volatility_20": "volatility_not_negative",
    "rsi_14": "rsi_between_0_and_100",
    "drawdown": "drawdown_not_positive",
}

METRICS_CHECK_SPECS = [
    dg.AssetCheckSpec(
        COVERS_ADJUSTED_ROWS,
        asset=ASSET,
        description="Every daily_prices_adjusted row has a metrics row computed from it (its "
        "current fetch, its current re-basing).",
    ),
    dg.AssetCheckSpec(
        RANGE_CHECKS["volatility_20"],
        asset=ASSET,
        description="volatility_20 ≥ 0 wherever it is defined (a standard deviation).",
    ),
    dg.AssetCheckSpec(
        RANGE_CHECKS["rsi_14"],
        asset=ASSET,
        description="0 ≤ rsi_14 ≤ 100 wherever it is defined.",
    ),
    dg.AssetCheckSpec(
        RANGE_CHECKS["drawdown"],
        asset=ASSET,
        description="drawdown ≤ 0: no close above its own running maximum.",
    ),
]


def metrics_check_results(engine: Engine) -> list[dg.AssetCheckResult]:
    coverage = metrics_coverage(engine)
    uncovered = coverage.missing + coverage.outdated + len(coverage.behind)
    results = [
        dg.AssetCheckResult(
            asset_key=ASSET,
            check_name=COVERS_ADJUSTED_ROWS,
            passed=uncovered == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"All {coverage.adjusted_rows} adjusted rows have current metrics."
                if not uncovered
                else f"{coverage.missing} adjusted rows have no metrics, {coverage.outdated} "
                f"were re-fetched since theirs were computed, and {len(coverage.behind)} "
                "tickers were re-based since: "
                + names_summary([*coverage.examples, *coverage.behind])
            ),
            metadata={
                "adjusted_rows": coverage.adjusted_rows,
                "missing": coverage.missing,
                "outdated": coverage.outdated,
                "tickers_behind": len(coverage.behind),
            },
        )
    ]
    for metric in RANGE_CHECKED_METRICS:
        check_name = RANGE_CHECKS[metric]
        found = metrics_out_of_range(engine, metric)
        results.append(
            dg.AssetCheckResult(
                asset_key=ASSET,
                check_name=check_name,
                passed=found.rows == 0,
                severity=dg.AssetCheckSeverity.ERROR,
                description=(
                    f"{found.rule} on every row."
                    if not found.rows
                    else f"{found.rows} rows break {found.rule}: {names_summary(found.examples)}"
                ),
                metadata={"rows_out_of_range": found.rows},
            )
        )
    return results
