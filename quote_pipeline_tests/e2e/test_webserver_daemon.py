"""End to end, as a user runs it: webserver and daemon processes, PostgreSQL, the GraphQL API.

The tests share one stack (see conftest.py) and run in file order: what the UI shows, two
runs sharing the fmp_api pool (the first runs on a fresh instance), a backfill from the
Partitions tab, a launched refresh, a crashed run, the schedule under the daemon.
"""

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

# The scheduler's own state and cron iterator: the schedule test backdates when it was
# turned on, so that the daemon has a real tick to evaluate now rather than at :01.
from dagster._core.scheduler.instigation import InstigatorType, ScheduleInstigatorData
from dagster._utils.schedules import schedule_execution_time_iterator

from quote_pipeline.defs.code_version import CODE_VERSION_TAG
from quote_pipeline.defs.history.jobs import DAILY_PRICES_JOB, DAILY_PRICES_MAX_RUNTIME_SECONDS
from quote_pipeline.defs.quotes.jobs import REFRESH_QUOTES_MAX_RUNTIME_SECONDS
from quote_pipeline.defs.quotes.schedules import CRON_SCHEDULE, EXECUTION_TIMEZONE, SCHEDULE_NAME
from quote_pipeline.market_calendar import NEW_YORK, market_day
from quote_pipeline.run_policy import JOB_TAG, MAX_RUNTIME_TAG
from quote_pipeline.sandbox import SandboxServer
from quote_pipeline.storage import add_tickers, create_db_engine, read_stocks, remove_tickers
from quote_pipeline_tests.conftest import SANDBOX_KEY
from quote_pipeline_tests.e2e.conftest import HANG_SYMBOL
from quote_pipeline_tests.support.dagster_processes import (
    BIN,
    LOCATION_NAME,
    PROJECT_ROOT,
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

RUN = """
query($id: ID!) { runOrError(runId: $id) { ... on Run {
    jobName status tags { key value } stepStats { stepKey status } } } }
"""

JOB_TAGS = """
query($selector: RepositorySelector!) { repositoryOrError(repositorySelector: $selector) {
    ... on Repository { jobs { name tags { key value } } } } }
"""

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }
"""

BACKFILL_RUNS = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) {
    __typename ... on PartitionBackfill { status runs { runId status } } } }
"""

# Past NYSE sessions (Wednesday to Friday, no holiday) the sandbox serves daily bars for,
# whether daily_prices has a partition per calendar day or per session.
BACKFILL_DAYS = ("2026-11-18", "2026-11-19", "2026-11-20")


def _owners(node: dict[str, Any]) -> list[str]:
    return [o.get("team") or o.get("email") for o in node["owners"]]


def _run(stack: DagsterStack, run_id: str) -> dict[str, Any]:
    """The run as the UI shows it: job, status, tags (as a dict), step states."""
    run = stack.graphql(RUN, {"id": run_id})["runOrError"]
    return {**run, "tags": {t["key"]: t["value"] for t in run["tags"]}}


def _event_time(instance: dg.DagsterInstance, run_id: str, *types: dg.DagsterEventType) -> float:
    """When the run's first event of one of ``types`` was stored."""
    for event in instance.all_logs(run_id, of_type=set(types)):
        return event.timestamp
    raise AssertionError(f"run {run_id} has no {', '.join(t.value for t in types)} event")


RUN_END = (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE)
# The daemon takes a run off the queue by launching it: RUN_STARTING is that moment.
DEQUEUED = dg.DagsterEventType.RUN_STARTING


def _why_failed(stack: DagsterStack, run_id: str) -> str:
    """The run's failure events with their errors, for an assertion message."""
    with stack.instance() as instance:
        events = instance.all_logs(
            run_id,
            of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE},
        )
    lines = []
    for event in events:
        error = getattr(event.dagster_event.event_specific_data, "error", None)  # type: ignore[union-attr]
        lines.append(f"{event.step_key or 'run'}: {event.message}")
        if error is not None:
            lines.append(error.to_string())
    return "\n".join(lines) or f"run {run_id}: no failure event"


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


def test_runs_calling_fmp_run_one_at_a_time(
    dagster_stack: DagsterStack, tickers: tuple[str, ...]
) -> None:
    """Two runs of different jobs that both use the fmp_api pool (limit 1, counted per run),
    launched together: the queue starts the second only once the first has finished.

    First to launch runs in the file, so the pool has never been used: the run coordinator
    sets its limit when the runs are submitted, or the queue's first pass would start both.
    """
    run_ids = [
        dagster_stack.launch_job("refresh_quotes"),
        dagster_stack.launch_job(DAILY_PRICES_JOB, tags={"dagster/partition": BACKFILL_DAYS[0]}),
    ]
    for run_id in run_ids:
        status = dagster_stack.wait_for_run(run_id, timeout=120)
        assert status == dg.DagsterRunStatus.SUCCESS, _why_failed(dagster_stack, run_id)

    with dagster_stack.instance() as instance:
        times = {
            run_id: {
                "enqueued": _event_time(instance, run_id, dg.DagsterEventType.RUN_ENQUEUED),
                "dequeued": _event_time(instance, run_id, DEQUEUED),
                "ended": _event_time(instance, run_id, *RUN_END),
            }
            for run_id in run_ids
        }
        # Neither run's steps ever waited for the pool: it was the run's from its start.
        blocked = [
            e.message
            for run_id in run_ids
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if "blocked by limit" in e.message
        ]
    assert blocked == []
    first, second = sorted(run_ids, key=lambda run_id: times[run_id]["dequeued"])
    # Queued while the first ran, and left in the queue until it had ended.
    assert times[second]["enqueued"] < times[first]["ended"], times
    assert times[second]["dequeued"] >= times[first]["ended"], times


def test_a_backfill_from_the_partitions_tab_runs_with_its_jobs_tags(
    dagster_stack: DagsterStack, tickers: tuple[str, ...]
) -> None:
    """A backfill of daily_prices as the asset's Partitions tab launches it runs Dagster's
    hidden asset job, whose runs have no tags of their own: the run coordinator gives it
    daily_prices_job's, so the job's queue limit and run-time limit apply to it."""
    launched = dagster_stack.graphql(
        LAUNCH_BACKFILL,
        {
            "params": {
                "assetSelection": [{"path": ["daily_prices"]}],
                "partitionNames": list(BACKFILL_DAYS),
                "fromFailure": False,
                "tags": [],
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def submitted() -> str | None:
        backfill = dagster_stack.graphql(BACKFILL_RUNS, {"id": backfill_id})
        runs = backfill["partitionBackfillOrError"]["runs"]
        # Tags are added on submission, before the run is QUEUED.
        return next((r["runId"] for r in runs if r["status"] != "NOT_STARTED"), None)

    # The backfill daemon looks at new backfills about every 30 s.
    run_id = wait_until(submitted, timeout=90, interval=1, what="the backfill's run")
    run = _run(dagster_stack, run_id)
    assert run["jobName"] == "__ASSET_JOB"
    assert run["tags"]["dagster/backfill"] == backfill_id
    assert run["tags"][JOB_TAG] == DAILY_PRICES_JOB
    assert run["tags"][MAX_RUNTIME_TAG] == str(DAILY_PRICES_MAX_RUNTIME_SECONDS) == "3600"
    # Every tag the job carries, the code version as its code location computed it.
    jobs = dagster_stack.graphql(JOB_TAGS, {"selector": SELECTOR})["repositoryOrError"]["jobs"]
    (job,) = [j for j in jobs if j["name"] == DAILY_PRICES_JOB]
    job_tags = {t["key"]: t["value"] for t in job["tags"]}
    assert job_tags[CODE_VERSION_TAG]
    assert job_tags.items() <= run["tags"].items()

    status = dagster_stack.wait_for_run(run_id, timeout=120)
    assert status == dg.DagsterRunStatus.SUCCESS, _why_failed(dagster_stack, run_id)


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

    tags = _run(dagster_stack, run_id)["tags"]
    assert tags[JOB_TAG] == "refresh_quotes"
    assert tags[MAX_RUNTIME_TAG] == str(REFRESH_QUOTES_MAX_RUNTIME_SECONDS)
    assert tags[CODE_VERSION_TAG]


def test_a_crashed_run_fails_and_no_longer_holds_the_pool(
    dagster_stack: DagsterStack, tickers: tuple[str, ...]
) -> None:
    """A run using fmp_api keeps the next one QUEUED for as long as it runs; killed, it is
    failed, and the queued run then starts: a crash does not leave the pool taken."""
    engine = create_db_engine(dagster_stack.database_url)
    add_tickers(engine, [HANG_SYMBOL], now=datetime.now(UTC))
    run_id = dagster_stack.launch_job("refresh_quotes")

    def fetching() -> bool:
        steps = _run(dagster_stack, run_id)["stepStats"]
        return any(
            s["stepKey"].startswith("raw_quotes.fetch_quote_batch[")
            and s["status"] == "IN_PROGRESS"
            for s in steps
        )

    # A fetch step waits on HANG (for two minutes) in a STARTED run.
    wait_until(fetching, timeout=90, what="a fetch step of the refresh to be in progress")
    # The refresh has read the tickers; the run queued next must not hang on HANG too.
    remove_tickers(engine, [HANG_SYMBOL])
    # The pool has its default limit; per run, no step holds a slot of its own.
    pool = dagster_stack.graphql(POOL)["instance"]["concurrencyLimit"]
    assert pool["limit"] == 1 and pool["usingDefaultLimit"], pool
    assert pool["claimedSlots"] == [], pool

    queued_id = dagster_stack.launch_job(
        DAILY_PRICES_JOB, tags={"dagster/partition": BACKFILL_DAYS[1]}
    )
    # The queue looks every second here: it sees the pool taken pass after pass.
    watch_until = time.monotonic() + 4
    while time.monotonic() < watch_until:
        assert dagster_stack.run_status(queued_id) == dg.DagsterRunStatus.QUEUED
        time.sleep(0.5)
    assert dagster_stack.run_status(run_id) == dg.DagsterRunStatus.STARTED

    with dagster_stack.instance() as instance:
        started = [
            e
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if e.message.startswith("Started process for run")
        ]
    assert started, "no run worker process recorded"
    pid = int(started[0].dagster_event.engine_event_data.metadata["pid"].value)  # type: ignore[union-attr]
    os.kill(pid, signal.SIGKILL)  # the run worker: a crash, not a cancel

    # Its code server or run monitoring sees the worker gone and fails the run; from then
    # on it no longer counts against fmp_api, and the queued run goes.
    assert dagster_stack.wait_for_run(run_id, timeout=60) == dg.DagsterRunStatus.FAILURE
    status = dagster_stack.wait_for_run(queued_id, timeout=120)
    assert status == dg.DagsterRunStatus.SUCCESS, _why_failed(dagster_stack, queued_id)
    with dagster_stack.instance() as instance:
        failed_at = _event_time(instance, run_id, dg.DagsterEventType.RUN_FAILURE)
        dequeued_at = _event_time(instance, queued_id, DEQUEUED)
    assert dequeued_at >= failed_at


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


RUN_ORIGIN = """
query($id: ID!) { runOrError(runId: $id) { ... on Run {
    status repositoryOrigin { repositoryLocationName repositoryName } } } }
"""


def _launch_from_the_shell(stack: DagsterStack, *args: str) -> dg.DagsterRun:
    """Run README's `dagster job launch -w workspace.yaml …` and return the run it queued."""
    with stack.instance() as instance:
        before = {r.run_id for r in instance.get_runs()}
    done = subprocess.run(
        [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", *args],
        cwd=PROJECT_ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    job = args[args.index("-j") + 1]
    with stack.instance() as instance:
        # The automation sensor may launch daily_prices_adjusted meanwhile: not this run.
        (run,) = [r for r in instance.get_runs() if r.run_id not in before and r.job_name == job]
    return run


def test_the_readme_launch_commands_make_runs_of_the_workspace_location(
    dagster_stack: DagsterStack, tickers: tuple[str, ...]
) -> None:
    """README's `dagster job launch -w workspace.yaml` commands queue runs that the UI shows
    as the workspace's own code location (so it can re-execute them), with the job's tags;
    `dagster job execute -m` would make runs with no code location at all."""
    refresh = _launch_from_the_shell(dagster_stack, "-j", "refresh_quotes")
    first, last = BACKFILL_DAYS[0], BACKFILL_DAYS[-1]
    range_tags = (
        f'{{"dagster/asset_partition_range_start": "{first}", '
        f'"dagster/asset_partition_range_end": "{last}"}}'
    )
    backfill = _launch_from_the_shell(dagster_stack, "-j", DAILY_PRICES_JOB, "--tags", range_tags)
    for run in (refresh, backfill):
        assert run.remote_job_origin is not None
        assert run.remote_job_origin.location_name == "quote_pipeline"
        status = dagster_stack.wait_for_run(run.run_id, timeout=180)  # the daemon dequeued it
        assert status == dg.DagsterRunStatus.SUCCESS, dagster_stack.log_tail("daemon")
        origin = dagster_stack.graphql(RUN_ORIGIN, {"id": run.run_id})["runOrError"]
        assert origin["repositoryOrigin"]["repositoryLocationName"] == "quote_pipeline"
        assert run.tags[JOB_TAG] == run.job_name
    with dagster_stack.instance() as instance:
        written = instance.get_materialized_partitions(dg.AssetKey("daily_prices"))
    assert set(BACKFILL_DAYS) <= written


def test_the_daemon_derives_adjusted_prices_and_metrics_after_the_daily_close(
    dagster_stack: DagsterStack, tickers: tuple[str, ...]
) -> None:
    """Only daily_prices is launched (and, once, the corporate actions the adjustment needs):
    the automation sensors under the real daemon materialize daily_prices_adjusted and then
    daily_metrics, with no manual step, and the metrics cover every adjusted row."""

    def derived_since(key: str, moment: float) -> Any:
        with dagster_stack.instance() as instance:
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            return event if event and event.timestamp > moment else None

    def wait_for_derived_tables(since_run: str, timeout: float = 480) -> tuple[Any, Any]:
        with dagster_stack.instance() as instance:
            ended = instance.get_run_stats(since_run).end_time or 0.0
        return tuple(  # type: ignore[return-value]
            wait_until(
                lambda key=key: derived_since(key, ended),
                # Two sensor ticks (30 s apart) and two run processes; a loaded CI machine
                # (the Celery tests beside it) needs several minutes.
                timeout=timeout,
                interval=2,
                what=f"the automation sensor to materialize {key}",
            )
            for key in ("daily_prices_adjusted", "daily_metrics")
        )

    # The corporate actions come first: the adjustment waits for them, then follows them.
    # (Let that settle: eager does not fire for an update that lands while it is running.)
    actions = dagster_stack.launch_job("refresh_corporate_actions")
    assert dagster_stack.wait_for_run(actions, timeout=180) == dg.DagsterRunStatus.SUCCESS
    wait_for_derived_tables(actions)
    first, last = BACKFILL_DAYS[0], BACKFILL_DAYS[-1]
    # Known race, not yet understood (left open in the closing note): now and then the
    # analytics sensor does not follow an adjusted-prices update seen while that run was
    # in progress, until the evening catch-up. The next daily close is then followed; the
    # test gives the chain one more close before it fails.
    for attempt in (1, 2):
        daily = dagster_stack.launch_job(
            DAILY_PRICES_JOB,
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            },
        )
        assert dagster_stack.wait_for_run(daily, timeout=180) == dg.DagsterRunStatus.SUCCESS
        try:
            adjusted, metrics = wait_for_derived_tables(daily, timeout=300)
            break
        except TimeoutError:
            if attempt == 2:
                raise
    assert metrics.timestamp >= adjusted.timestamp
    with dagster_stack.instance() as instance:
        for event, sensor in (
            (adjusted, "adjusted_prices_automation"),
            (metrics, "analytics_automation"),
        ):
            run = instance.get_run_by_id(event.run_id)
            assert run is not None
            assert run.tags.get("dagster/sensor_name") == sensor, run.tags
            assert run.job_name == "__ASSET_JOB"
    engine = create_db_engine(dagster_stack.database_url)
    with engine.connect() as conn:
        counts = {
            table: conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE ticker = ANY(:t)"),
                {"t": list(tickers)},
            ).scalar_one()
            for table in ("daily_prices", "daily_prices_adjusted", "daily_metrics")
        }
    engine.dispose()
    assert counts["daily_prices"] >= len(tickers) * len(BACKFILL_DAYS)
    assert counts["daily_metrics"] == counts["daily_prices_adjusted"] == counts["daily_prices"]


def test_the_django_sites_refresh_button_launches_a_run_and_its_page_shows_the_new_price(
    dagster_stack: DagsterStack, e2e_sandbox: SandboxServer, tickers: tuple[str, ...]
) -> None:
    """examples/django_site on the stack's database: the ticker page's CSRF-protected refresh
    form, posted with its token and cookie, queues a real run of refresh_quotes for one
    ticker through the webserver and answers at once, sending the browser to the page that
    waits for the price; a second request (the JSON twin) is refused while the run is
    pending; when the run has succeeded, that page shows the new price — the sandbox's quote
    at its current market clock, which cannot be the one stored before — and only that
    ticker's row moved."""
    import re
    from datetime import timedelta
    from decimal import Decimal
    from urllib.parse import parse_qs, urlsplit

    from quote_pipeline.models import Quote
    from quote_pipeline.sandbox.market import simulated_quote
    from quote_pipeline.storage import schema, write_quotes
    from quote_pipeline_tests.django_site.support import django_site

    ticker = "AAPL"
    engine = create_db_engine(dagster_stack.database_url)
    # The quote the run must replace: an hour old, at a price the sandbox never quotes AAPL
    # at (its illustrative range is 180 to 260), so a price after the run is the run's.
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    old_price = Decimal("1.00")
    with engine.begin() as conn:
        conn.execute(sa.delete(schema.stocks).where(schema.stocks.c.ticker == ticker))
    old = Quote(ticker, old_price, 1, None, an_hour_ago, an_hour_ago)
    write_quotes(engine, [old], written_at=an_hour_ago)
    before = {row.ticker: row for row in read_stocks(engine)}
    # The market moves on; the sandbox's quotes are a function of its market clock.
    generation = e2e_sandbox.advance()
    quote = simulated_quote(ticker, seed=e2e_sandbox.config.seed, generation=generation)
    expected_price = quote["price"]
    assert expected_price != old_price
    wait_for_price = '<meta http-equiv="refresh" content="5">'
    try:
        with django_site(dagster_stack.database_url, dagster_url=dagster_stack.url):
            from django.test import Client

            client = Client(enforce_csrf_checks=True)  # as a browser: token and cookie
            page = client.get(f"/ticker/{ticker}/").content.decode()
            assert f'<span class="price" id="price">{old_price}</span>' in page
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
            assert token, "no CSRF token on the ticker page"

            asked_at = time.monotonic()
            pressed = client.post(
                f"/ticker/{ticker}/refresh", {"csrfmiddlewaretoken": token.group(1)}
            )
            assert time.monotonic() - asked_at < 15, "the view waited for the run"
            assert pressed.status_code == 302, pressed.content
            waiting_url = pressed["Location"]
            query = parse_qs(urlsplit(waiting_url).query)
            (run_id,) = query["run"]
            assert query["awaiting"] == [before[ticker].updated_at.isoformat()]

            again = client.post(f"/api/ticker/{ticker}/refresh", content_type="application/json")
            assert again.status_code == 409, again.content
            assert again.json()["run_id"] == run_id
            assert again.json()["run_url"] == f"{dagster_stack.url}/runs/{run_id}"

            waiting = client.get(waiting_url).content.decode()
            (row,) = read_stocks(engine, [ticker])
            if row.updated_at == before[ticker].updated_at:  # not written when the page read
                assert 'data-state="waiting"' in waiting and wait_for_price in waiting
                assert f'<a href="{dagster_stack.url}/runs/{run_id}">{run_id}</a>' in waiting

            status = dagster_stack.wait_for_run(run_id, timeout=120)
            assert status == dg.DagsterRunStatus.SUCCESS, _why_failed(dagster_stack, run_id)
            run = _run(dagster_stack, run_id)
            assert run["jobName"] == "refresh_quotes"
            assert run["tags"]["quote_pipeline/requested_ticker"] == ticker
            assert run["tags"]["quote_pipeline/requested_by"] == "django"

            after = {row.ticker: row for row in read_stocks(engine)}
            stored = after[ticker]
            # The price changed, to the sandbox's quote at the current market clock.
            assert stored.price != before[ticker].price
            assert stored.price == expected_price
            assert stored.updated_at > before[ticker].updated_at
            assert stored.quoted_at > before[ticker].quoted_at
            for other in set(tickers) - {ticker}:  # only_symbols: nothing else was fetched
                assert after.get(other) == before.get(other), other

            # The page the button sent the browser to now shows it, and stops reloading.
            shown = client.get(waiting_url).content.decode()
            price = format(stored.price, "f")
            assert 'data-state="written"' in shown and wait_for_price not in shown
            assert f'<span class="price" id="price">{price}</span>' in shown
            assert f"New price <strong>{price}</strong>, updated at" in shown
            assert f'datetime="{stored.updated_at.isoformat()}"' in shown
            body = client.get(f"/api/ticker/{ticker}/").json()
            assert body["stock"]["price"] == price
            assert body["stock"]["quoted_at"] == stored.quoted_at.isoformat()
            assert body["stock"]["updated_at"] == stored.updated_at.isoformat()
    finally:
        engine.dispose()
