"""Backfills of `daily_prices` the ways a user launches them: the CLI, and the UI's GraphQL
mutation against a running webserver and daemon. Each range is one run, one request per
ticker."""

import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from quote_pipeline.defs.history.assets import daily_partitions_from
from quote_pipeline.defs.settings import DEFAULT_HISTORY_START
from quote_pipeline.fmp.history import DAILY_PATH
from quote_pipeline.market_calendar import sessions_between
from quote_pipeline.sandbox import SandboxServer
from quote_pipeline.storage import add_tickers, create_db_engine
from quote_pipeline.storage.history import read_daily_prices
from quote_pipeline_tests.conftest import SANDBOX_KEY, SandboxFactory
from quote_pipeline_tests.history.support import TICKERS, history_requests, served
from quote_pipeline_tests.support.dagster_processes import start_dagster_stack, wait_until
from quote_pipeline_tests.support.postgres import PostgresServer

FIRST, LAST = "2026-01-05", "2026-03-31"
DAGSTER = Path(sys.executable).with_name("dagster")


def assert_range_stored(database_url: str, sandbox: SandboxServer) -> None:
    """Every tracked ticker has exactly the sandbox's bars for every session of the range."""
    first, last = date.fromisoformat(FIRST), date.fromisoformat(LAST)
    rows = read_daily_prices(create_db_engine(database_url), start=first, end=last)
    sessions = sessions_between(first, last)
    assert len(rows) == len(TICKERS) * len(sessions)
    for ticker in TICKERS:
        stored = {r.day: r.close for r in rows if r.symbol == ticker}
        expected = served(sandbox, DAILY_PATH, ticker, first, last)
        assert stored == {date.fromisoformat(r["date"]): r["close"] for r in expected}


def test_cli_partition_range_is_one_run_with_one_request_per_ticker(
    start_sandbox: SandboxFactory, database_url: str, tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    add_tickers(create_db_engine(database_url), TICKERS, now=datetime.now(UTC))
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FMP_", "DAGSTER_"))},
        "FMP_BASE_URL": sandbox.url,
        "FMP_API_KEY": SANDBOX_KEY,
        "QUOTE_PIPELINE_DATABASE_URL": database_url,
        "DAGSTER_HOME": str(home),
    }
    command = [
        str(DAGSTER),
        *("asset", "materialize", "-m", "quote_pipeline.definitions"),
        *("--select", "daily_prices", "--partition-range", f"{FIRST}...{LAST}"),
    ]
    started = time.monotonic()
    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert time.monotonic() - started < 120

    assert history_requests(sandbox) == {t: 1 for t in TICKERS}
    assert sandbox.stats()["requests_total"] == len(TICKERS)
    assert_range_stored(database_url, sandbox)
    assert SANDBOX_KEY not in done.stdout + done.stderr

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        runs = instance.get_runs()
        assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
        assert runs[0].tags["dagster/asset_partition_range_start"] == FIRST
        assert runs[0].tags["dagster/asset_partition_range_end"] == LAST
        materialized = instance.get_materialized_partitions(dg.AssetKey("daily_prices"))
        sessions = sessions_between(date.fromisoformat(FIRST), date.fromisoformat(LAST))
        # The range's sessions, each once; a Saturday (2026-02-14) is no partition.
        assert materialized == {d.isoformat() for d in sessions}
    finally:
        instance.dispose()


LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on UnauthorizedError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on RunConflict { message }
  }
}
"""

BACKFILL_STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status
      numPartitions
      runs { runId status tags { key value } }
      error { message }
    }
    ... on PythonError { message }
  }
}
"""

DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


@pytest.mark.slow
@pytest.mark.postgres
def test_ui_backfill_through_graphql_is_one_run_with_one_request_per_ticker(
    start_sandbox: SandboxFactory, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    with start_dagster_stack(
        tmp_path,
        postgres_server_url=postgres_server.url,
        fmp_base_url=sandbox.url,
        fmp_api_key=SANDBOX_KEY,
    ) as stack:
        add_tickers(create_db_engine(stack.database_url), TICKERS, now=datetime.now(UTC))
        keys = daily_partitions_from(DEFAULT_HISTORY_START).get_partition_keys_in_range(
            dg.PartitionKeyRange(FIRST, LAST)
        )
        # What the UI sends from "Materialize… > Launch backfill" on the asset's page.
        launched = stack.graphql(
            LAUNCH_BACKFILL,
            {
                "params": {
                    "assetSelection": [{"path": ["daily_prices"]}],
                    "partitionNames": keys,
                    "fromFailure": False,
                    "title": "Q1 2026",
                    "tags": [],
                }
            },
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]

        def finished() -> dict[str, Any] | None:
            answer = stack.graphql(BACKFILL_STATUS, {"id": backfill_id})
            backfill = answer["partitionBackfillOrError"]
            assert backfill["__typename"] == "PartitionBackfill", backfill
            return backfill if backfill["status"] in DONE else None

        try:
            backfill = wait_until(finished, timeout=240, interval=2, what="the backfill")
        except TimeoutError:
            raise AssertionError(
                f"backfill still running; daemon log:\n{stack.log_tail('daemon', 80)}"
            ) from None
        assert backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}, backfill
        assert backfill["numPartitions"] == len(keys)
        (run,) = backfill["runs"]  # BackfillPolicy.single_run: the whole range in one run
        assert run["status"] == "SUCCESS"
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags["dagster/asset_partition_range_start"] == FIRST
        assert tags["dagster/asset_partition_range_end"] == LAST
        assert tags["dagster/backfill"] == backfill_id

        assert history_requests(sandbox) == {t: 1 for t in TICKERS}
        assert_range_stored(stack.database_url, sandbox)
        with stack.instance() as instance:
            materialized = instance.get_materialized_partitions(dg.AssetKey("daily_prices"))
        assert set(keys) <= materialized
