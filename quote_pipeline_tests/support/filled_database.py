"""A database filled the way production fills it, for the tests of what reads the tables (the
reader API, the notebook, the Django example): a real quote refresh, profiles, corporate
actions, a small daily backfill with its adjusted prices and metrics, and news, all through
the project's own definitions against the sandbox (news plan)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

import dagster as dg
import pytest

from quote_pipeline.definitions import build_definitions
from quote_pipeline.defs.resources import FMPResource
from quote_pipeline.sandbox import SandboxConfig, SandboxServer
from quote_pipeline.storage import add_tickers, create_db_engine
from quote_pipeline_tests.conftest import SANDBOX_KEY

TICKERS = ("AAPL", "MSFT", "NVDA", "SPLT")
# Three months of sessions, a split in the middle: enough for SMA 50 and a visible chart.
FIRST_SESSION, LAST_SESSION = "2026-08-03", "2026-10-30"
SPLIT = ("SPLT", date(2026, 9, 14), 2, 1)


@dataclass(frozen=True)
class FilledDatabase:
    url: str
    sandbox: SandboxServer
    tickers: tuple[str, ...]
    first_session: date
    last_session: date


def _run(result: dg.ExecuteInProcessResult, what: str) -> None:
    if not result.success:
        failures = [e.message for e in result.all_events if e.is_step_failure]
        raise AssertionError(f"{what} failed: {failures}")


@contextmanager
def filled_database(
    database_url: str, *, tickers: Sequence[str] = TICKERS
) -> Iterator[FilledDatabase]:
    """Fill ``database_url`` (tables empty, at the latest revision) and yield it with its
    sandbox, which keeps running until the context ends. The sandbox runs on the real clock:
    the news refresh asks for the last 30 days of *now*."""
    config = SandboxConfig(api_key=SANDBOX_KEY, news_plan=True, splits=(SPLIT,))
    with (
        SandboxServer(config) as sandbox,
        pytest.MonkeyPatch.context() as env,
        tempfile.TemporaryDirectory(prefix="filled-") as home,
        dg.instance_for_test(temp_dir=home) as instance,
    ):
        env.setenv("FMP_BASE_URL", sandbox.url)
        env.setenv("FMP_API_KEY", SANDBOX_KEY)
        env.setenv("QUOTE_PIPELINE_DATABASE_URL", database_url)
        engine = create_db_engine(database_url)
        add_tickers(engine, tickers, now=datetime.now(UTC))
        engine.dispose()
        fmp = FMPResource(
            api_key=dg.EnvVar("FMP_API_KEY"),
            base_url=sandbox.url,
            backoff_initial=0.01,
            pass_delay_seconds=0.0,
        )
        defs = build_definitions(resources={"fmp": fmp})
        for job in ("refresh_quotes", "refresh_company_profiles", "refresh_corporate_actions"):
            _run(defs.resolve_job_def(job).execute_in_process(instance=instance), job)
        _run(
            defs.resolve_job_def("daily_prices_job").execute_in_process(
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": FIRST_SESSION,
                    "dagster/asset_partition_range_end": LAST_SESSION,
                },
            ),
            "daily_prices_job",
        )
        _run(
            defs.resolve_implicit_global_asset_job_def().execute_in_process(
                instance=instance,
                asset_selection=[
                    dg.AssetKey("daily_prices_adjusted"),
                    dg.AssetKey("daily_metrics"),
                ],
            ),
            "daily_prices_adjusted and daily_metrics",
        )
        _run(defs.resolve_job_def("refresh_news").execute_in_process(instance=instance), "news")
        yield FilledDatabase(
            url=database_url,
            sandbox=sandbox,
            tickers=tuple(tickers),
            first_session=date.fromisoformat(FIRST_SESSION),
            last_session=date.fromisoformat(LAST_SESSION),
        )
