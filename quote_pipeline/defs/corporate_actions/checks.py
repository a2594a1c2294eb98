"""Asset checks on corporate actions and the adjusted history, evaluated by the assets
themselves after each materialization."""

from datetime import date
from decimal import Decimal

import dagster as dg
from sqlalchemy.engine import Engine

from quote_pipeline.defs.metadata import names_summary, table_value
from quote_pipeline.storage.adjusted_prices import (
    adjusted_coverage,
    split_jumps,
    tickers_behind_actions,
)
from quote_pipeline.storage.corporate_actions import read_splits

SPLIT_RATIO_VALID = "split_ratio_valid"
COVERS_DAILY_PRICES = "covers_every_daily_price"
CONTINUOUS_ACROSS_SPLITS = "continuous_across_splits"
SPLITS_SEEN_IN_PRICES = "splits_seen_in_raw_prices"
# The adjusted move across an ex-date may differ from what the raw closes and the split
# explain by rounding only (8 decimal places); a stale history differs by the whole ratio.
JUMP_TOLERANCE = Decimal("0.0001")

SPLIT_CHECK_SPECS = [
    dg.AssetCheckSpec(
        SPLIT_RATIO_VALID,
        asset="stock_splits",
        description="Every split's ratio (numerator / denominator) is positive and not 1. "
        "Such a split is stored as the API sent it but left out of the adjustment.",
    )
]

ADJUSTED_CHECK_SPECS = [
    dg.AssetCheckSpec(
        COVERS_DAILY_PRICES,
        asset="daily_prices_adjusted",
        description="Every daily_prices row has an adjusted row computed from its latest fetch "
        "and with the corporate actions stored now.",
    ),
    dg.AssetCheckSpec(
        CONTINUOUS_ACROSS_SPLITS,
        asset="daily_prices_adjusted",
        description="Across each split's ex-date, the adjusted day-over-day move equals the "
        "raw move times the split ratio (and any same-day dividend): no jump larger than the "
        "raw move explains — a 4:1 split never shows as a 75 % crash.",
    ),
    dg.AssetCheckSpec(
        SPLITS_SEEN_IN_PRICES,
        asset="daily_prices_adjusted",
        description="Each split shows in the as-traded closes: across its ex-date they move by "
        "about its ratio (net of it, within a halving or doubling). Warns: a split the "
        "prices do not show is likely wrong or misdated, and adjusting for it invents a jump.",
    ),
]


def split_ratio_result(engine: Engine) -> dg.AssetCheckResult:
    bad = [
        f"{s.symbol} {s.ex_date} {s.numerator}:{s.denominator}"
        for splits in read_splits(engine).values()
        for s in splits
        if not s.is_valid
    ]
    return dg.AssetCheckResult(
        asset_key="stock_splits",
        check_name=SPLIT_RATIO_VALID,
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "Every split ratio is positive and not 1."
            if not bad
            else f"{len(bad)} splits with a ratio that is not positive or is 1 (left out of "
            f"the adjustment): {names_summary(bad)}"
        ),
        metadata={"invalid_splits": len(bad)},
    )


def adjusted_check_results(engine: Engine, *, as_of: date) -> list[dg.AssetCheckResult]:
    coverage = adjusted_coverage(engine)
    behind = tickers_behind_actions(engine, as_of=as_of)
    uncovered = coverage.missing + coverage.outdated + len(behind)
    jumps = split_jumps(engine, as_of=as_of)
    broken = [j for j in jumps if j.relative_gap > JUMP_TOLERANCE]
    unseen = [j for j in jumps if not j.split_seen_in_raw_prices]
    return [
        dg.AssetCheckResult(
            asset_key="daily_prices_adjusted",
            check_name=SPLITS_SEEN_IN_PRICES,
            passed=not unseen,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                f"All {len(jumps)} splits with stored days on both sides show in the prices."
                if not unseen
                else f"{len(unseen)} of {len(jumps)} splits do not show in the as-traded "
                "closes: "
                + names_summary(
                    [f"{j.ticker} {j.ex_date} raw move x{j.raw_move:.4f}" for j in unseen]
                )
            ),
            metadata={"splits_checked": len(jumps), "not_seen": len(unseen)},
        ),
        dg.AssetCheckResult(
            asset_key="daily_prices_adjusted",
            check_name=COVERS_DAILY_PRICES,
            passed=uncovered == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"All {coverage.raw_rows} daily_prices rows are adjusted, with the corporate "
                "actions stored now."
                if not uncovered
                else f"{coverage.missing} daily_prices rows have no adjusted row, "
                f"{coverage.outdated} were re-fetched since theirs was computed, and "
                f"{len(behind)} tickers were adjusted with other corporate actions than "
                f"those stored: {names_summary([*coverage.examples, *behind])}"
            ),
            metadata={
                "raw_rows": coverage.raw_rows,
                "missing": coverage.missing,
                "outdated": coverage.outdated,
                "tickers_behind_actions": len(behind),
            },
        ),
        dg.AssetCheckResult(
            asset_key="daily_prices_adjusted",
            check_name=CONTINUOUS_ACROSS_SPLITS,
            passed=not broken,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"Continuous across all {len(jumps)} splits with stored days on both sides."
                if not broken
                else f"{len(broken)} of {len(jumps)} splits show a jump the raw move does not "
                "explain: "
                + names_summary(
                    [f"{j.ticker} {j.ex_date} moved x{j.adjusted_move:.4f}" for j in broken]
                )
            ),
            metadata={
                "splits_checked": len(jumps),
                "jumps": table_value(
                    [
                        {
                            "ticker": j.ticker,
                            "ex_date": j.ex_date.isoformat(),
                            "adjusted_move": f"{j.adjusted_move:.6f}",
                            "explained_move": f"{j.explained_move:.6f}",
                        }
                        for j in (broken or jumps)[:20]
                    ]
                ),
            },
        ),
    ]
