"""End to end, as a user runs it: webserver and daemon processes, PostgreSQL, the GraphQL API.

The tests share one stack (see conftest.py) and run in file order: what the UI shows, a
launched refresh, a crashed run, the schedule under the daemon.
"""

import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pytest

# The scheduler's own state and cron iterator: the schedule test backdates when it was
# turned on, so that the daemon has a real tick to evaluate now rather than at :01.
from dagster._core.scheduler.instigation import InstigatorType, ScheduleInstigatorData
from dagster._utils.schedules import schedule_execution_time_iterator

from quote_pipeline.defs.quotes.jobs import REFRESH_QUOTES_MAX_RUNTIME_SECONDS
from quote_pipeline.defs.quotes.schedules import CRON_SCHEDULE, EXECUTION_TIMEZONE, SCHEDULE_NAME
from quote_pipeline.market_calendar import NEW_YORK, market_day
from quote_pipeline.sandbox import SandboxServer
from quote_pipeline.storage import add_tickers, create_db_engine, read_stocks, remove_tickers
from quote_pipeline_tests.conftest import SANDBOX_KEY
from quote_pipeline_tests.e2e.conftest import HANG_SYMBOL
from quote_pipeline_tests.support.dagster_processes import (
    LOCATION_NAME,
    REPOSITORY_NAME,
    DagsterStack,
    wait_until,
)
from quote_pipeline_tests.support.leaks import columns_containing, files_containing

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    # dagster-graphql's client calls gql the way gql now deprecates; not ours to fix.
    pytest.mark.filterwarnings("ignore:Using variable_values and operation_name"),
]

TICKERS = ("AAPL", "MSFT", "NVDA")
SELECTOR = {"repositoryName": REPOSITORY_NAME, "repositoryLocationName": LOCATION_NAME}
SCHEDULE_SELECTOR = {**SELECTOR, "scheduleName": SCHEDULE_NAME}

INVENTORY = """
query Inventory($selector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $selector) {
    __typename
    ... on PythonError { message }
    ... on Repository {
      assetNodes {
        assetKey { path }
        description groupName kinds pools
        owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
        metadataEntries { label }
        assetChecksOrError { ... on AssetChecks { checks { name description } } }
      }
      jobs {
        name description isAssetJob
        owners { ... on TeamDefinitionOwner { team } ... on UserDefinitionOwner { email } }
        tags { key value }
      }
      schedules {
        name cronSchedule executionTimezone description pipelineName defaultStatus
        owners { ... on TeamDefinitionOwner { team } ... on UserDefinitionOwner { email } }
        scheduleState { status }
      }
    }
  }
}
"""

SCHEDULE_TICKS = """
query Ticks($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) {
    ... on Schedule {
      scheduleState {
        status
        ticks(limit: 5) { status timestamp skipReason runIds error { message } }
      }
    }
  }
}
"""

FUTURE_TICKS = """
query FutureTicks($selector: ScheduleSelector!, $cursor: Float!, $until: Float!) {
  scheduleOrError(scheduleSelector: $selector) {
    ... on Schedule { futureTicks(cursor: $cursor, until: $until) { results { timestamp } } }
  }
}
"""

POOL = """
{ instance { concurrencyLimit(concurrencyKey: "fmp_api") {
    limit usingDefaultLimit claimedSlots { runId stepKey } } } }
"""


def _owners(node: dict[str, Any]) -> list[str]:
    return [o.get("team") or o.get("email") for o in node["owners"]]


@pytest.fixture
def tickers(dagster_stack: DagsterStack) -> Iterator[tuple[str, ...]]:
    """The stack's tickers table holds TICKERS for the test, and is emptied after."""
    engine = create_db_engine(dagster_stack.database_url)
    add_tickers(engine, TICKERS, now=datetime.now(UTC))
    yield TICKERS
    remove_tickers(engine, [*TICKERS, HANG_SYMBOL])
    engine.dispose()


def test_the_ui_shows_the_whole_pipeline(dagster_stack: DagsterStack) -> None:
    repo = dagster_stack.graphql(INVENTORY, {"selector": SELECTOR})["repositoryOrError"]
    assert repo["__typename"] == "Repository", repo

    assets = {"/".join(a["assetKey"]["path"]): a for a in repo["assetNodes"]}
    jobs = {j["name"]: j for j in repo["jobs"] if not j["name"].startswith("__")}
    schedules = {s["name"]: s for s in repo["schedules"]}

    # What the UI shows for every definition, collected so one run names every gap.
    gaps: list[str] = []
    for key, node in assets.items():
        if not node["description"]:
            gaps.append(f"asset {key}: no description")
        if not node["groupName"] or node["groupName"] == "default":
            gaps.append(f"asset {key}: no group")
        if not node["kinds"]:
            gaps.append(f"asset {key}: no kinds")
        if not _owners(node):
            gaps.append(f"asset {key}: no owners")
        for check in node["assetChecksOrError"].get("checks", []):
            if not check["description"]:
                gaps.append(f"check {key}:{check['name']}: no description")
    for name, job in jobs.items():
        if not job["description"]:
            gaps.append(f"job {name}: no description")
    for name, schedule in schedules.items():
        if not schedule["description"]:
            gaps.append(f"schedule {name}: no description")
        if not _owners(schedule):
            gaps.append(f"schedule {name}: no owners")
    assert not gaps, "\n".join(gaps)

    assert {"tickers", "raw_quotes", "stocks"} <= set(assets)
    for table in ("tickers", "stocks"):
        labels = {m["label"] for m in assets[table]["metadataEntries"]}
        assert "dagster/column_schema" in labels, f"{table} has no column schema"
    assert "fmp_api" in assets["raw_quotes"]["pools"]
    assert assets["stocks"]["assetChecksOrError"]["checks"], "stocks has no checks"

    refresh = jobs["refresh_quotes"]
    # Owners sit on the assets and schedules; Dagster 1.13 still calls job owners beta and
    # would warn about them on every load.
    assert _owners(assets["stocks"]) == ["market-data"]
    assert {t["key"] for t in refresh["tags"]} >= {"quote_pipeline/code_version"}

    hourly = schedules[SCHEDULE_NAME]
    assert hourly["cronSchedule"] == "1 * * * 1-5"
    assert hourly["executionTimezone"] == "America/New_York"
    assert hourly["pipelineName"] == "refresh_quotes"
    assert hourly["defaultStatus"] == "STOPPED"
    assert hourly["scheduleState"]["status"] == "STOPPED"


def test_the_webserver_computes_ticks_across_dst_in_new_york(dagster_stack: DagsterStack) -> None:
    start = datetime(2026, 3, 6, tzinfo=NEW_YORK)  # Friday before spring forward
    until = datetime(2026, 3, 10, tzinfo=NEW_YORK)  # Tuesday after
    data = dagster_stack.graphql(
        FUTURE_TICKS,
        {"selector": SCHEDULE_SELECTOR, "cursor": start.timestamp(), "until": until.timestamp()},
    )
    stamps = [r["timestamp"] for r in data["scheduleOrError"]["futureTicks"]["results"]]
    local = [datetime.fromtimestamp(s, NEW_YORK) for s in stamps]
    assert len(local) == 48 and {t.weekday() for t in local} == {0, 4}
    assert all(t.minute == 1 for t in local)
    friday_ten = datetime(2026, 3, 6, 10, 1, tzinfo=NEW_YORK)
    monday_ten = datetime(2026, 3, 9, 10, 1, tzinfo=NEW_YORK)
    assert friday_ten in local and monday_ten in local
    assert friday_ten.astimezone(UTC).hour == 15 and monday_ten.astimezone(UTC).hour == 14


def test_launch_refresh_quotes_and_the_stocks_table_fills(
    dagster_stack: DagsterStack, e2e_sandbox: SandboxServer, tickers: tuple[str, ...]
) -> None:
    requests_before = e2e_sandbox.stats()["requests_total"]
    run_id = dagster_stack.launch_job("refresh_quotes")
    status = dagster_stack.wait_for_run(run_id, timeout=120)
    assert status == dg.DagsterRunStatus.SUCCESS, dagster_stack.log_tail("webserver")

    rows = read_stocks(create_db_engine(dagster_stack.database_url))
    assert sorted(r.ticker for r in rows) == sorted(tickers)
    assert all(r.price > 0 and r.volume >= 0 for r in rows)
    assert e2e_sandbox.stats()["requests_total"] > requests_before

    run = dagster_stack.graphql(
        "query($id: ID!) { runOrError(runId: $id) { ... on Run { tags { key value } } } }",
        {"id": run_id},
    )["runOrError"]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["quote_pipeline/job"] == "refresh_quotes"
    assert tags["dagster/max_runtime"] == str(REFRESH_QUOTES_MAX_RUNTIME_SECONDS)
    assert tags["quote_pipeline/code_version"]


def test_a_crashed_run_fails_and_frees_its_pool_slot(
    dagster_stack: DagsterStack, tickers: tuple[str, ...]
) -> None:
    add_tickers(create_db_engine(dagster_stack.database_url), [HANG_SYMBOL], now=datetime.now(UTC))
    run_id = dagster_stack.launch_job("refresh_quotes")

    def slot_held() -> dict[str, Any] | None:
        pool = dagster_stack.graphql(POOL)["instance"]["concurrencyLimit"]
        return pool if any(s["runId"] == run_id for s in pool["claimedSlots"]) else None

    # A fetch step waits on HANG while holding the pool's one slot (the default limit).
    pool = wait_until(slot_held, timeout=90, what="a fetch step to hold the fmp_api slot")
    assert pool["limit"] == 1 and pool["usingDefaultLimit"]

    with dagster_stack.instance() as instance:
        started = [
            e
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if e.message.startswith("Started process for run")
        ]
    assert started, "no run worker process recorded"
    pid = int(started[0].dagster_event.engine_event_data.metadata["pid"].value)  # type: ignore[union-attr]
    os.kill(pid, signal.SIGKILL)  # the run worker: a crash, not a cancel

    assert dagster_stack.wait_for_run(run_id, timeout=60) == dg.DagsterRunStatus.FAILURE
    # The code server saw its worker die and failed the run, but nothing released the slot:
    # run monitoring frees it free_slots_after_run_end_seconds (5 s here) after the end.
    assert slot_held(), "the slot was released without run monitoring"
    wait_until(
        lambda: not slot_held(), timeout=60, interval=1, what="the crashed run's slot to be freed"
    )


def test_the_daemon_ticks_the_schedule(
    dagster_stack: DagsterStack, tickers: tuple[str, ...]
) -> None:
    # The daemon evaluates a schedule only at cron times after it was turned on, and the next
    # `1 * * * 1-5` time may be an hour (or a weekend) away. So: stop the daemon, turn the
    # schedule on through the API, move its start to just before the latest past cron time,
    # start the daemon, and watch it evaluate that real tick now.
    dagster_stack.stop_daemon()
    result = dagster_stack.graphql(
        """mutation($selector: ScheduleSelector!) { startSchedule(scheduleSelector: $selector) {
             __typename ... on ScheduleStateResult { scheduleState { status } }
             ... on PythonError { message } } }""",
        {"selector": SCHEDULE_SELECTOR},
    )["startSchedule"]
    assert result["__typename"] == "ScheduleStateResult", result
    assert result["scheduleState"]["status"] == "RUNNING"

    latest_tick = next(
        schedule_execution_time_iterator(
            time.time(), CRON_SCHEDULE, EXECUTION_TIMEZONE, ascending=False
        )
    )
    with dagster_stack.instance() as instance:
        (state,) = [
            s
            for s in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
            if s.instigator_name == SCHEDULE_NAME
        ]
        instance.update_instigator_state(
            state.with_data(
                ScheduleInstigatorData(CRON_SCHEDULE, start_timestamp=latest_tick.timestamp() - 1)
            )
        )
    dagster_stack.start_daemon()

    def evaluated() -> dict[str, Any] | None:
        data = dagster_stack.graphql(SCHEDULE_TICKS, {"selector": SCHEDULE_SELECTOR})
        ticks = data["scheduleOrError"]["scheduleState"]["ticks"]
        done = [t for t in ticks if t["status"] in {"SUCCESS", "SKIPPED", "FAILURE"}]
        return done[0] if done else None

    tick = wait_until(evaluated, timeout=90, interval=1, what="the daemon to evaluate a tick")
    assert tick["timestamp"] == pytest.approx(latest_tick.timestamp())
    day = market_day(latest_tick.astimezone(NEW_YORK).date())
    if day.is_session:
        assert tick["status"] == "SUCCESS", tick
        (run_id,) = tick["runIds"]
        assert dagster_stack.wait_for_run(run_id, timeout=120) == dg.DagsterRunStatus.SUCCESS
    else:
        assert tick["status"] == "SKIPPED", tick
        assert day.closed_reason and day.closed_reason in tick["skipReason"]

    stopped = dagster_stack.graphql(
        """mutation($id: String!) { stopRunningSchedule(id: $id) {
             __typename ... on ScheduleStateResult { scheduleState { status } }
             ... on PythonError { message } } }""",
        {"id": _schedule_state_id(dagster_stack)},
    )["stopRunningSchedule"]
    assert stopped.get("scheduleState", {}).get("status") == "STOPPED", stopped


def _schedule_state_id(stack: DagsterStack) -> str:
    data = stack.graphql(
        """query($selector: ScheduleSelector!) { scheduleOrError(scheduleSelector: $selector) {
             ... on Schedule { scheduleState { id } } } }""",
        {"selector": SCHEDULE_SELECTOR},
    )
    return data["scheduleOrError"]["scheduleState"]["id"]


def test_the_key_is_in_no_process_log_or_stored_event(dagster_stack: DagsterStack) -> None:
    # Last in the file: after a launched run, a crashed one and a scheduled tick, the bare
    # key is in none of the processes' output (webserver, daemon, their run workers), no
    # file of the instance and no text column of Dagster's PostgreSQL storage.
    logs = sorted(dagster_stack.log_dir.glob("*.log"))
    assert {p.name for p in logs} >= {"webserver.log", "daemon.log"}
    for root in (dagster_stack.log_dir, dagster_stack.home):
        assert files_containing(root, SANDBOX_KEY.encode()) == []
    assert columns_containing(dagster_stack.dagster_database_url, SANDBOX_KEY) == []
    # The searches looked where the runs left their traces.
    assert files_containing(dagster_stack.log_dir, b"refresh_quotes")
    assert columns_containing(dagster_stack.dagster_database_url, "fetch_quote_batch")
