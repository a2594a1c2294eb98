"""`stock_splits` and `dividends` (fetched per ticker), and `daily_prices_adjusted` (derived
in the database, no API call, kept current by declarative automation)."""

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from quote_pipeline.celery_config import fmp_queue_tags
from quote_pipeline.defs.automation import after_upstream_updates, weekday_catch_up
from quote_pipeline.defs.corporate_actions.checks import (
    ADJUSTED_CHECK_SPECS,
    SPLIT_CHECK_SPECS,
    adjusted_check_results,
    split_ratio_result,
)
from quote_pipeline.defs.fetching import fail_unless_complete, fetch_through_engine, tracked_symbols
from quote_pipeline.defs.metadata import (
    OWNERS,
    failures_value,
    names_summary,
    table_metadata,
    table_value,
)
from quote_pipeline.defs.reference_data.assets import ReferenceFetchConfig
from quote_pipeline.defs.resources import DatabaseResource, FMPResource
from quote_pipeline.fetch_engine import RequestFunction, SymbolResult
from quote_pipeline.fmp.client import FMPClient
from quote_pipeline.fmp.reference import dividends_request, splits_request
from quote_pipeline.market_calendar import NEW_YORK
from quote_pipeline.price_bars import SPLIT_ADJUSTED
from quote_pipeline.storage import schema as tables
from quote_pipeline.storage.adjusted_prices import refresh_adjusted_prices
from quote_pipeline.storage.corporate_actions import (
    ActionsWrite,
    replace_dividends,
    replace_splits,
)
from quote_pipeline.storage.repository import count_rows, transaction

GROUP = "corporate_actions"
PRICE_HISTORY_GROUP = "price_history"
# After the corporate-actions schedule (17:30 New York) has had time to finish.
DAILY_CATCH_UP_CRON = "0 19 * * 1-5"


def _recent_rows(database: DatabaseResource, table: sa.Table, limit: int = 10) -> list[dict]:
    """The latest ``limit`` actions by ex-date, as the UI's preview table."""
    query = sa.select(table).order_by(table.c.ex_date.desc(), table.c.ticker).limit(limit)
    with transaction(database.get_engine()) as conn:
        return [
            {k: v for k, v in row._mapping.items() if k != "fetched_at"}
            for row in conn.execute(query)
        ]


def _build_action_asset(
    name: str,
    *,
    endpoint: str,
    request: Callable[[FMPClient], RequestFunction[Any]],
    replace: Callable[..., ActionsWrite],
    table: sa.Table,
    description: str,
    check_specs: Sequence[dg.AssetCheckSpec] = (),
    checks: Callable[[DatabaseResource], list[dg.AssetCheckResult]] = lambda _: [],
) -> dg.AssetsDefinition:
    """A corporate-action table fetched one request per ticker through the fetch engine; each
    group of tickers replaces its rows in one transaction (see storage/corporate_actions)."""

    @dg.asset(
        name=name,
        group_name=GROUP,
        owners=OWNERS,
        deps=["tickers"],
        pool="fmp_api",
        op_tags=fmp_queue_tags(),
        kinds={"api", "sql", "table"},
        metadata=table_metadata(table),
        check_specs=list(check_specs),
        description=description,
    )
    def action_asset(
        context: dg.AssetExecutionContext,
        config: ReferenceFetchConfig,
        fmp: FMPResource,
        database: DatabaseResource,
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        engine = database.get_engine()
        symbols = tracked_symbols(database, config.only_symbols)
        fmp.refuse_if_quota_held()
        requests_before = fmp.client.requests_made
        total = ActionsWrite()

        def on_group(results: list[SymbolResult[list[Any]]]) -> None:
            # Only a clean answer replaces a ticker's rows; one with rejected rows keeps
            # what is stored (its failure is reported).
            answers: Mapping[str, list[Any]] = {
                r.symbol: r.value for r in results if r.value is not None and r.failure is None
            }
            done = replace(engine, answers, fetched_at=datetime.now(UTC))
            total.rows_written += done.rows_written
            total.rows_removed += done.rows_removed
            total.changed += done.changed
            total.kept_on_empty += done.kept_on_empty

        report = fetch_through_engine(
            fmp,
            symbols,
            request(fmp.client),
            on_group=on_group,
            group_size=config.tickers_per_write,
            log=context.log.info,
        )
        failures = report.failures
        metadata: dict[str, Any] = {
            "dagster/row_count": count_rows(engine, table),
            "tickers_changed": len(total.changed),
            **({"changed": names_summary(sorted(total.changed))} if total.changed else {}),
            "latest": table_value(_recent_rows(database, table)),
            "rows_written": total.rows_written,
            "rows_removed": total.rows_removed,
            **(
                {"empty_answer_kept": names_summary(sorted(total.kept_on_empty))}
                if total.kept_on_empty
                else {}
            ),
            "tickers_requested": len(symbols),
            **({"failed_tickers": failures_value(failures)} if failures else {}),
            "endpoint": endpoint,
            "api_requests": fmp.client.requests_made - requests_before,
            "seconds": round(time.monotonic() - started, 3),
        }
        context.log.info(
            f"{name}: {total.rows_written} rows for {len(symbols) - len(failures)} of "
            f"{len(symbols)} tickers; {len(total.changed)} tickers changed"
            + (f"; {len(failures)} failed" if failures else "")
        )
        fail_unless_complete(report, metadata)
        return dg.MaterializeResult(metadata=metadata, check_results=checks(database))

    return action_asset


def build_corporate_action_assets() -> list[dg.AssetsDefinition]:
    return [
        _build_action_asset(
            "stock_splits",
            endpoint="/stable/splits",
            request=splits_request,
            replace=replace_splits,
            table=tables.stock_splits,
            description=(
                "Stock splits of every tracked ticker (ex-date, numerator:denominator; a "
                "reverse split has numerator < denominator), one request per ticker. A "
                "ticker's rows are replaced by a clean, non-empty answer; an empty one keeps "
                "them. A new split re-bases daily_prices_adjusted by automation, with no "
                "history fetched again."
            ),
            check_specs=SPLIT_CHECK_SPECS,
            checks=lambda database: [split_ratio_result(database.get_engine())],
        ),
        _build_action_asset(
            "dividends",
            endpoint="/stable/dividends",
            request=dividends_request,
            replace=replace_dividends,
            table=tables.dividends,
            description=(
                "Cash dividends of every tracked ticker (ex-date, amount as declared and "
                "split-adjusted, record/payment/declaration dates — NULL where the API sends "
                "an empty string — and frequency), one request per ticker. A ticker the plan "
                "refuses (402) is reported as not in plan; the others are written."
            ),
        ),
    ]


def adjusted_prices_condition() -> dg.AutomationCondition:
    """When the adjusted_prices_automation sensor materializes daily_prices_adjusted.

    - After any daily_prices partition or corporate-action table is materialized (eager,
      and once more after an update that landed while it was running).
      Missing daily_prices partitions — most of the history, usually — do not hold it back;
      never-fetched splits or dividends do: an "adjusted" history without them would be the
      raw one under another name.
    - And once every weekday evening after the corporate-actions schedule, so that an update
      no condition can see (committed by a run that failed after writing most tickers)
      waits a day at most. A refresh with nothing to do is a couple of queries.
    """
    actions_fetched = ~dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.missing()
    ).allow(dg.AssetSelection.assets("stock_splits", "dividends"))
    return (
        (after_upstream_updates() | weekday_catch_up(DAILY_CATCH_UP_CRON)) & actions_fetched
    ).with_label("after_daily_prices_or_corporate_actions")


class AdjustedPricesConfig(dg.Config):
    chunk_rows: int = Field(default=5_000, ge=1, description="Rows per bulk insert statement.")


def legacy_rows(database: DatabaseResource) -> int:
    """daily_prices rows fetched before revision 0004 (split-adjusted as of their fetch)."""
    query = sa.select(sa.func.count()).where(tables.daily_prices.c.price_basis == SPLIT_ADJUSTED)
    with transaction(database.get_engine()) as conn:
        return int(conn.scalar(query) or 0)


@dg.asset(
    group_name=PRICE_HISTORY_GROUP,
    owners=OWNERS,
    deps=["daily_prices", "stock_splits", "dividends"],
    kinds={"sql", "table"},
    metadata=table_metadata(tables.daily_prices_adjusted),
    check_specs=ADJUSTED_CHECK_SPECS,
    automation_condition=adjusted_prices_condition(),
)
def daily_prices_adjusted(
    context: dg.AssetExecutionContext, config: AdjustedPricesConfig, database: DatabaseResource
) -> dg.MaterializeResult:
    """Split- and dividend-adjusted OHLCV for every stored day (CRSP-style backward
    adjustment, see the README), derived from daily_prices, stock_splits and dividends in the
    database: **no API call**.

    Incremental: a ticker whose applicable corporate actions changed (a new split, a
    dividend, an ex-date now passed) has its whole adjusted history rewritten; otherwise only
    its new or re-fetched days are written. Prices are exact decimals rounded once to 8
    places; one transaction per materialization. Rows stored before revision 0004
    (split-adjusted as of their fetch) are re-based from the splits here.
    """
    started = time.monotonic()
    engine = database.get_engine()
    as_of = datetime.now(UTC).astimezone(NEW_YORK).date()
    summary = refresh_adjusted_prices(engine, as_of=as_of, chunk_rows=config.chunk_rows)
    rebased = [
        {"ticker": ticker, "why": summary.why_rebased[ticker]} for ticker in summary.rebased[:50]
    ]
    legacy = legacy_rows(database)
    context.log.info(
        f"{summary.rows_written} adjusted rows written, {summary.rows_deleted} deleted: "
        f"{len(summary.rebased)} tickers re-based in full, {len(summary.extended)} extended"
    )
    metadata: dict[str, Any] = {
        "dagster/row_count": count_rows(engine, tables.daily_prices_adjusted),
        "as_of": as_of.isoformat(),
        "tickers_rebased": len(summary.rebased),
        **({"rebased": table_value(rebased)} if rebased else {}),
        "tickers_extended": len(summary.extended),
        "rows_written": summary.rows_written,
        "rows_deleted": summary.rows_deleted,
        "legacy_rows_rebased": legacy,
        "api_requests": 0,
        "seconds": round(time.monotonic() - started, 3),
    }
    if legacy:
        metadata["legacy_note"] = (
            f"{legacy} daily_prices rows were fetched before revision 0004 from /full "
            "(split-adjusted as of their fetch): they are re-based here from the splits; "
            "re-materializing their daily_prices partitions replaces them with as-traded rows."
        )
    return dg.MaterializeResult(
        metadata=metadata, check_results=adjusted_check_results(engine, as_of=as_of)
    )
