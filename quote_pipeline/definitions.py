"""The `quote_pipeline` code location: every asset, check, job and schedule, wired once."""

import gc

import dagster as dg

from quote_pipeline.defs.code_version import code_version
from quote_pipeline.defs.history import build_history_schedules, history_assets, history_jobs
from quote_pipeline.defs.quotes.assets import (
    build_raw_quotes,
    fetch_retry_policy_from_env,
    stocks,
    tickers,
)
from quote_pipeline.defs.quotes.checks import quote_checks
from quote_pipeline.defs.quotes.jobs import check_stocks_freshness, refresh_quotes
from quote_pipeline.defs.quotes.schedules import (
    ScheduleOptions,
    build_freshness_check_schedule,
    build_refresh_quotes_schedule,
)
from quote_pipeline.defs.resources import DatabaseResource, FMPResource, fmp_resource_from_env


def build_definitions(
    *, fmp: FMPResource | None = None, fetch_retry_policy: dg.RetryPolicy | None = None
) -> dg.Definitions:
    """All definitions, with resources configured from the environment.

    ``fmp`` and ``fetch_retry_policy`` replace the settings read from the environment
    (tests use short timeouts and retry delays).
    """
    quotes_asset = build_raw_quotes(fetch_retry_policy or fetch_retry_policy_from_env())
    schedule_options = ScheduleOptions.from_env()
    database = DatabaseResource()
    return dg.Definitions(
        assets=[tickers, quotes_asset, stocks, *history_assets],
        asset_checks=quote_checks,
        jobs=[refresh_quotes, check_stocks_freshness, *history_jobs],
        # Options from QUOTE_PIPELINE_SCHEDULE_* variables: market hours only, default status.
        schedules=[
            build_refresh_quotes_schedule(schedule_options),
            build_freshness_check_schedule(schedule_options),
            *build_history_schedules(schedule_options.default_status),
        ],
        # The FMP plan's cap is counted in the database, shared by every run and process.
        resources={"fmp": fmp or fmp_resource_from_env(database), "database": database},
        # Mapped steps are cheap in process (~15 ms) and ~1 s each as subprocesses; the
        # concurrency that matters is the HTTP inside each step, so run steps in process.
        executor=dg.in_process_executor,
        metadata={"code_version": code_version()},
    )


defs = build_definitions()

# What is loaded by now (Dagster, pandas, SQLAlchemy, these definitions) lives as long as the
# process. Freezing it takes those few hundred thousand objects out of every later full
# collection, and out of the one at interpreter exit, which took ~0.4 s of each CLI run.
gc.freeze()
