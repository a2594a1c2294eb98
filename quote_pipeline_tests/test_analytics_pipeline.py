"""daily_metrics end to end: the real definitions against the sandbox, on SQLite and
PostgreSQL, a real Dagster instance. Metrics equal an independent pandas computation across a
split, the watchlist's charts are in the materialization, automation follows the daily close
job, and the appended day resumes instead of recomputing."""

from __future__ import annotations

import base64
import io
import re
from datetime import date, datetime

import dagster as dg
import pytest
from PIL import Image

from quote_pipeline.market_calendar import NEW_YORK
from quote_pipeline.sandbox import SandboxServer
from quote_pipeline.storage import create_db_engine
from quote_pipeline.storage.adjusted_prices import read_adjusted_prices
from quote_pipeline_tests.conftest import SandboxFactory
from quote_pipeline_tests.history.support import (
    checks_of,
    history_definitions,
    metadata_of,
    run_daily,
)
from quote_pipeline_tests.support.metrics_reference import assert_metrics_match_pandas
from quote_pipeline_tests.test_corporate_actions_pipeline import (
    NO_DIVIDENDS_SINCE_2010,
    run_job,
)

METRICS = dg.AssetKey("daily_metrics")
ADJUSTED = dg.AssetKey("daily_prices_adjusted")
# Eleven months: long enough for every window (sma_200 included), a split in the middle.
RANGE = ("2025-03-03", "2026-01-29")
NEXT_SESSION = "2026-01-30"
SPLIT_DAY = date(2025, 11, 17)
FRIDAY_EVENING = datetime(2026, 1, 30, 18, 0, tzinfo=NEW_YORK)
TICKERS = ["SPLT", "AAPL", "MSFT"]
PNG_DATA = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)")


def materialize(defs: dg.Definitions, instance: dg.DagsterInstance, *assets: dg.AssetKey, **cfg):
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance,
        raise_on_error=False,
        asset_selection=list(assets),
        run_config={"ops": {"daily_metrics": {"config": cfg}}} if cfg else None,
    )


def embedded_png(markdown: str) -> Image.Image:
    match = PNG_DATA.search(markdown)
    assert match, markdown[:200]
    image = Image.open(io.BytesIO(base64.b64decode(match.group(1))))
    image.load()
    return image


@pytest.fixture
def sandbox_with_split(start_sandbox: SandboxFactory) -> SandboxServer:
    return start_sandbox(
        clock=FRIDAY_EVENING,
        splits=(("SPLT", SPLIT_DAY, 4, 1),),
        # Dividends long before the range: the split is the only re-basing event, so the
        # next session extends every ticker (a dividend after it would re-base that ticker).
        dividends=tuple((ticker, *NO_DIVIDENDS_SINCE_2010) for ticker in TICKERS),
    )


def test_metrics_follow_the_daily_close_by_automation_and_equal_pandas_across_a_split(
    monkeypatch: pytest.MonkeyPatch,
    sandbox_with_split: SandboxServer,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    defs = history_definitions(monkeypatch, sandbox_with_split.url, database_url, TICKERS)
    start = dg.evaluate_automation_conditions(defs=defs, instance=dagster_instance)
    assert start.total_requested == 0
    assert run_job(defs, dagster_instance, "refresh_corporate_actions").success
    assert run_daily(defs, dagster_instance, *RANGE).success

    # The daily close job wrote daily_prices only; automation asks for the adjusted history,
    # and once that is materialized, for the metrics.
    tick = dg.evaluate_automation_conditions(
        defs=defs, instance=dagster_instance, cursor=start.cursor
    )
    assert tick.get_num_requested(ADJUSTED) == 1
    # Evaluated together here, eager sees daily_prices_adjusted will be updated; under the
    # daemon, analytics_automation follows a tick later (the e2e test shows that).
    assert tick.get_num_requested(METRICS) == 1
    result = materialize(defs, dagster_instance, ADJUSTED, METRICS)
    assert result.success

    engine = create_db_engine(database_url)
    for ticker in TICKERS:
        metrics = assert_metrics_match_pandas(engine, ticker)
        assert metrics["sma_200"].notna().any()
    # The split shows as the day's move, not a 75 % fall: metrics read adjusted prices.
    splt = assert_metrics_match_pandas(engine, "SPLT")
    assert abs(splt.loc[SPLIT_DAY, "return_1d"]) < 0.25
    adjusted = {r.day: r.adj_close for r in read_adjusted_prices(engine, ["SPLT"])}
    assert len(adjusted) == len(splt)

    checks = checks_of(result)
    for name in (
        "covers_every_adjusted_row",
        "volatility_not_negative",
        "rsi_between_0_and_100",
        "drawdown_not_positive",
    ):
        assert checks[name].passed, checks[name]
    metadata = metadata_of(result, "daily_metrics")
    assert metadata["tickers_recomputed"] == 3
    assert metadata["api_requests"] == 0
    for ticker in TICKERS:
        image = embedded_png(metadata[f"chart_{ticker}"])
        assert (image.format, image.size) == ("PNG", (640, 400))
    assert [r.data["ticker"] for r in metadata["latest"].records] == sorted(TICKERS)

    # Settled: nothing more to do until daily_prices changes again.
    quiet = dg.evaluate_automation_conditions(
        defs=defs, instance=dagster_instance, cursor=tick.cursor
    )
    assert quiet.total_requested == 0

    # The next session: one row per ticker, resumed rather than recomputed.
    assert run_daily(defs, dagster_instance, NEXT_SESSION).success
    tick = dg.evaluate_automation_conditions(
        defs=defs, instance=dagster_instance, cursor=quiet.cursor
    )
    assert tick.get_num_requested(ADJUSTED) == 1
    appended = materialize(defs, dagster_instance, ADJUSTED, METRICS)
    assert appended.success
    metadata = metadata_of(appended, "daily_metrics")
    assert (metadata["tickers_recomputed"], metadata["tickers_extended"]) == (0, 3)
    assert metadata["rows_written"] == 3
    for ticker in TICKERS:
        assert_metrics_match_pandas(engine, ticker)


def test_the_watchlist_comes_from_config_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    sandbox_with_split: SandboxServer,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    defs = history_definitions(monkeypatch, sandbox_with_split.url, sqlite_url, TICKERS)
    assert run_job(defs, dagster_instance, "refresh_corporate_actions").success
    assert run_daily(defs, dagster_instance, "2026-01-05", "2026-01-29").success

    monkeypatch.setenv("QUOTE_PIPELINE_CHART_WATCHLIST", "msft, aapl")
    from_env = metadata_of(materialize(defs, dagster_instance, ADJUSTED, METRICS), "daily_metrics")
    assert sorted(k for k in from_env if k.startswith("chart_")) == ["chart_AAPL", "chart_MSFT"]

    configured = materialize(
        defs, dagster_instance, METRICS, watchlist=["SPLT", "NOPE"], chart_sessions=10
    )
    assert configured.success
    metadata = metadata_of(configured, "daily_metrics")
    assert sorted(k for k in metadata if k.startswith("chart_")) == ["chart_SPLT"]
    assert metadata["not_charted"] == "NOPE (no stored prices)"
    assert (metadata["rows_written"], metadata["rows_removed"]) == (0, 0)

    # A mistyped symbol fails the run with one line, before anything is computed.
    monkeypatch.setenv("QUOTE_PIPELINE_CHART_WATCHLIST", "AAPL,NOT A SYMBOL")
    failed = materialize(defs, dagster_instance, METRICS)
    assert not failed.success
    (failure,) = [e for e in failed.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "QUOTE_PIPELINE_CHART_WATCHLIST: invalid ticker symbol(s): 'NOT A SYMBOL'" in message
    assert "Traceback" not in message and len(message.splitlines()) == 1

    # The failed run is tried again at the evening catch-up (eager would wait for the next
    # update of daily_prices_adjusted), and not before it.
    monkeypatch.delenv("QUOTE_PIPELINE_CHART_WATCHLIST")
    monday = datetime(2026, 2, 2, 19, 0, tzinfo=NEW_YORK)
    before = dg.evaluate_automation_conditions(
        defs=defs, instance=dagster_instance, evaluation_time=monday
    )
    assert before.get_num_requested(METRICS) == 0
    after = dg.evaluate_automation_conditions(
        defs=defs,
        instance=dagster_instance,
        cursor=before.cursor,
        evaluation_time=monday.replace(minute=31),
    )
    assert after.get_num_requested(METRICS) == 1
