"""`daily_metrics`: research statistics of the adjusted history, computed in the database's
neighbourhood (no API call), with candlestick charts of a watchlist on each materialization."""

import base64
import os
import time
from collections.abc import Sequence
from typing import Any

import dagster as dg
from pydantic import Field
from sqlalchemy.engine import Engine

from quote_pipeline.analytics import METRIC_COLUMNS
from quote_pipeline.charts import ChartError, ticker_chart
from quote_pipeline.defs.analytics.checks import METRICS_CHECK_SPECS, metrics_check_results
from quote_pipeline.defs.automation import after_upstream_updates, missed_update_catch_up
from quote_pipeline.defs.metadata import OWNERS, names_summary, table_metadata, table_value
from quote_pipeline.defs.resources import DatabaseResource
from quote_pipeline.models import InvalidSymbolError, normalize_symbols
from quote_pipeline.storage import schema as tables
from quote_pipeline.storage.metrics import (
    DEFAULT_TICKERS_PER_BATCH,
    read_latest_metrics,
    refresh_daily_metrics,
)
from quote_pipeline.storage.repository import count_rows, list_tickers

GROUP = "analytics"
WATCHLIST_ENV = "QUOTE_PIPELINE_CHART_WATCHLIST"
DEFAULT_WATCHLIST_SIZE = 12
MAX_WATCHLIST = 50
# After daily_prices_adjusted's own catch-up (19:00 New York) has had time to finish.
DAILY_CATCH_UP_CRON = "30 19 * * 1-5"
# The latest values shown in the UI's table, per watchlist ticker.
PREVIEW_COLUMNS = ("return_1d", "sma_20", "sma_50", "rsi_14", "volatility_20", "drawdown")


class MetricsConfig(dg.Config):
    watchlist: list[str] = Field(
        default_factory=list,
        max_length=MAX_WATCHLIST,
        description="Tickers whose candlestick chart is attached to the materialization. "
        f"Empty: {WATCHLIST_ENV} (comma-separated), else the first "
        f"{DEFAULT_WATCHLIST_SIZE} tracked tickers. At most {MAX_WATCHLIST}: each chart is "
        "~14 kB of base64 in the event log.",
    )
    chart_sessions: int = Field(
        default=120, ge=5, le=1_000, description="Sessions shown in each chart."
    )
    tickers_per_batch: int = Field(
        default=DEFAULT_TICKERS_PER_BATCH,
        ge=1,
        le=5_000,
        description="Tickers read and computed together (bounds memory on a full recompute).",
    )


def watchlist(config: MetricsConfig, engine: Engine) -> list[str]:
    """The configured watchlist, else the deployment's, else the first tracked tickers.

    Read before anything is computed: a mistyped symbol fails the run with one line, rather
    than after the metrics were written."""
    from_env = [s.strip() for s in os.environ.get(WATCHLIST_ENV, "").split(",") if s.strip()]
    source, symbols = (
        ("watchlist", config.watchlist) if config.watchlist else (WATCHLIST_ENV, from_env)
    )
    if not symbols:
        return list_tickers(engine)[:DEFAULT_WATCHLIST_SIZE]
    try:
        chosen = normalize_symbols(symbols)
    except InvalidSymbolError as exc:
        raise dg.Failure(f"{source}: {exc}", allow_retries=False) from None
    if len(chosen) > MAX_WATCHLIST:
        raise dg.Failure(
            f"{source}: {len(chosen)} tickers, at most {MAX_WATCHLIST} are charted",
            allow_retries=False,
        )
    return chosen


def chart_metadata(
    context: dg.AssetExecutionContext, engine: Engine, tickers: Sequence[str], *, sessions: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """One markdown entry per ticker embedding its PNG (the asset page shows the image), and
    the tickers not charted, with why. A chart that fails is reported, never fails the run:
    the metrics are committed by then."""
    charts: dict[str, Any] = {}
    not_charted: dict[str, str] = {}
    for ticker in tickers:
        try:
            chart = ticker_chart(engine, ticker, days=sessions)
        except ChartError:
            not_charted[ticker] = "no stored prices"
            continue
        except Exception as exc:  # a plotting bug must not hide committed metrics
            context.log.warning(f"chart of {ticker} failed: {type(exc).__name__}: {exc}")
            not_charted[ticker] = f"failed: {type(exc).__name__}"
            continue
        encoded = base64.b64encode(chart.png).decode("ascii")
        charts[f"chart_{ticker}"] = dg.MetadataValue.md(
            f"![{chart.title}](data:image/png;base64,{encoded})"
        )
    return charts, not_charted


def latest_metrics(engine: Engine, tickers: Sequence[str]) -> list[dict[str, Any]]:
    """Each ticker's latest stored metrics, rounded for reading."""
    return [
        {
            "ticker": row.ticker,
            "date": row.date.isoformat(),
            **{c: None if row[c] != row[c] else round(float(row[c]), 4) for c in PREVIEW_COLUMNS},
        }
        for _, row in read_latest_metrics(engine, tickers).iterrows()
    ]


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    deps=["daily_prices_adjusted"],
    kinds={"pandas", "sql", "table"},
    metadata=table_metadata(tables.daily_metrics),
    check_specs=METRICS_CHECK_SPECS,
    automation_condition=(
        after_upstream_updates() | missed_update_catch_up(DAILY_CATCH_UP_CRON)
    ).with_label("after_daily_prices_adjusted"),
)
def daily_metrics(
    context: dg.AssetExecutionContext, config: MetricsConfig, database: DatabaseResource
) -> dg.MaterializeResult:
    """Daily research statistics per ticker and session, from daily_prices_adjusted: 1-day
    return and log return, SMA 20/50/200, EMA 12/26, MACD and its signal, 20-day annualised
    volatility, Wilder's RSI 14, drawdown from the running peak, 52-week high and low.

    **Floats** (double precision): statistics, not prices. NULL until a window has enough
    sessions. Incremental: a new or re-fetched day resumes from the stored values of the
    session before it (a window's worth of reading); a ticker whose adjusted history was
    re-based (a new split or dividend) is recomputed in full. One transaction. The
    materialization carries candlestick charts of a watchlist.
    """
    started = time.monotonic()
    engine = database.get_engine()
    charted = watchlist(config, engine)
    summary = refresh_daily_metrics(engine, tickers_per_batch=config.tickers_per_batch)
    computed_seconds = time.monotonic() - started
    context.log.info(
        f"{summary.rows_written} metrics rows written, {summary.rows_removed} removed: "
        f"{len(summary.recomputed)} tickers recomputed in full, {len(summary.extended)} "
        f"extended, in {computed_seconds:.2f} s"
    )

    charts, not_charted = chart_metadata(context, engine, charted, sessions=config.chart_sessions)
    recomputed = [{"ticker": t, "why": summary.why_recomputed[t]} for t in summary.recomputed[:50]]
    metadata: dict[str, Any] = {
        "dagster/row_count": count_rows(engine, tables.daily_metrics),
        "tickers_recomputed": len(summary.recomputed),
        **({"recomputed": table_value(recomputed)} if recomputed else {}),
        "tickers_extended": len(summary.extended),
        "rows_written": summary.rows_written,
        "rows_removed": summary.rows_removed,
        "metrics": ", ".join(METRIC_COLUMNS),
        "latest": table_value(latest_metrics(engine, charted)),
        **charts,
        **(
            {"not_charted": names_summary([f"{t} ({why})" for t, why in not_charted.items()])}
            if not_charted
            else {}
        ),
        "api_requests": 0,
        "compute_seconds": round(computed_seconds, 3),
        "seconds": round(time.monotonic() - started, 3),
    }
    return dg.MaterializeResult(metadata=metadata, check_results=metrics_check_results(engine))
