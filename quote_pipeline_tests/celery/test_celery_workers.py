"""The quote refresh on the celery executor, with two real `quote-pipeline worker` processes
(w1, w2; `dagster-celery`'s Celery app on a private Redis), the instance and the data on
PostgreSQL, against the FMP sandbox.

The run is executed the way `dagster job execute -m quote_pipeline.definitions` does it (a
reconstructable job, the instance from DAGSTER_HOME), its orchestration in this process and
every step a Celery task on a worker.
"""

from __future__ import annotations

import time

import dagster as dg
import pytest

from quote_pipeline.sandbox import FaultConfig
from quote_pipeline.storage import create_db_engine
from quote_pipeline.storage.fetch_state import pending_symbols
from quote_pipeline_tests.celery.conftest import CeleryStack
from quote_pipeline_tests.celery.support import (
    group_alive,
    hostname,
    quote_tables,
    rows_differing_from_sandbox,
    run_job,
    step_event_counts,
    step_workers,
)
from quote_pipeline_tests.support.dagster_processes import wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    # dagster-celery 0.29.27 registers its task again for every step it submits (same name,
    # same function); Celery warns and keeps the first. Theirs, and harmless.
    pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning"),
]

# Longer than any step here (the hung fetch below lasts 8 s), short enough that the step of a
# killed worker comes back soon: Redis gives an unacknowledged task to another worker after it.
VISIBILITY_TIMEOUT_SECONDS = 15
# A whole fetch step failing is retried (its RetryPolicy) after 1 s instead of 30.
DEPLOYMENT_ENV = {"QUOTE_PIPELINE_FETCH_RETRY_DELAY_SECONDS": "1"}
RUN_TIMEOUT_SECONDS = 150
FETCH_STEP = "raw_quotes.fetch_quote_batch"


def batching(steps: int) -> dict[str, object]:
    return {
        "ops": {
            "raw_quotes": {
                "ops": {"plan_quote_batches": {"config": {"target_steps": steps}}},
            }
        }
    }


def assert_every_row_exact(stack: CeleryStack, tickers: list[str]) -> None:
    rows, snapshots, distinct = quote_tables(stack.deployment.data_url)
    assert [r.ticker for r in rows] == sorted(tickers)
    assert rows_differing_from_sandbox(rows) == []
    # One snapshot per ticker: the run's one quote of each, written once.
    assert snapshots == distinct == len(tickers)


def test_a_refresh_of_2000_tickers_runs_its_steps_on_both_workers(stack: CeleryStack) -> None:
    tickers = stack.seed_tickers(2000)
    started = time.monotonic()
    handle = run_job(stack.deployment, "refresh_quotes", batching(8))
    status = handle.wait(RUN_TIMEOUT_SECONDS)
    seconds = time.monotonic() - started
    assert status == dg.DagsterRunStatus.SUCCESS, stack.worker_logs()

    with stack.deployment.instance() as instance:
        run_id = handle.run_id(instance)
        workers = step_workers(instance, run_id)
        run = instance.get_run_by_id(run_id)
    assert run is not None and run.tags["quote_pipeline_test/launch"] == handle.tag
    fetches = {k: v for k, v in workers.items() if k.startswith(FETCH_STEP)}
    assert len(fetches) == 8  # 250 tickers a step
    # Every step once, on one worker or the other, and both did some.
    assert all(len(hosts) == 1 for hosts in workers.values()), workers
    assert {"tickers", "raw_quotes.plan_quote_batches", "stocks"} <= set(workers)
    assert {h for hosts in workers.values() for h in hosts} == {hostname("w1"), hostname("w2")}

    assert_every_row_exact(stack, tickers)
    requests = stack.sandbox.stats()["requests"]
    assert len(requests) == len(tickers) + 1  # the plan probe, then each ticker exactly once
    print(f"2,000 tickers, {len(workers)} steps on the celery executor: {seconds:.1f} s")


def test_a_fetch_step_that_fails_whole_is_retried_on_the_workers(stack: CeleryStack) -> None:
    """Dagster's retry of a step (its RetryPolicy: the API unreachable for one step) is a
    new Celery task, on whichever worker takes it; the retry finds its input on disk and the
    run ends with every row, nothing left pending."""
    tickers = stack.seed_tickers(400)
    step = f"{FETCH_STEP}[batch_0001]"
    stack.sandbox.set_faults(FaultConfig(server_error_symbols=set(tickers[100:200])))
    quick = {
        "api_key": {"env": "FMP_API_KEY"},  # a resource's run config is all of it
        "attempts": 2,
        "backoff_initial": 0.01,
        "extra_passes": 0,
    }
    handle = run_job(
        stack.deployment,
        "refresh_quotes",
        {**batching(4), "resources": {"fmp": {"config": quick}}},
    )
    with stack.deployment.instance() as instance:
        run_id = handle.run_id(instance)
        wait_until(
            lambda: step_event_counts(instance, run_id, step).get("STEP_UP_FOR_RETRY"),
            timeout=90,
            interval=0.1,
            what=f"{step} to fail and be up for retry",
        )
        stack.sandbox.set_faults(FaultConfig())  # the outage ends
        assert handle.wait(RUN_TIMEOUT_SECONDS) == dg.DagsterRunStatus.SUCCESS
        counts = step_event_counts(instance, run_id, step)
        workers = step_workers(instance, run_id)
    assert counts["STEP_UP_FOR_RETRY"] == 1
    assert counts["STEP_RESTARTED"] == 1
    assert counts["STEP_SUCCESS"] == 1
    assert len(workers[step]) == 2  # two tasks, one per attempt
    assert_every_row_exact(stack, tickers)
    engine = create_db_engine(stack.deployment.data_url)
    assert pending_symbols(engine, "quotes") == []  # nothing left to the retry sensor
    engine.dispose()
    print(f"{step}: attempts on {workers[step]}")


def test_a_worker_killed_mid_step_loses_nothing(stack: CeleryStack) -> None:
    """SIGKILL of a whole worker (Celery and its pool) while it runs a fetch step: the step's
    task, never acknowledged, is handed to the other worker after the visibility timeout and
    run again from the start; the run succeeds with every row, each snapshot once."""
    tickers = stack.seed_tickers(800)
    step = f"{FETCH_STEP}[batch_0002]"  # tickers 400-599 (4 steps of 200)
    # One of its symbols answers after 8 s (under the 10 s read timeout): the step is
    # certainly still running when its worker dies.
    stack.sandbox.set_faults(FaultConfig(hang_symbols={tickers[450]}, hang_seconds=8))
    handle = run_job(stack.deployment, "refresh_quotes", batching(4))

    with stack.deployment.instance() as instance:
        run_id = handle.run_id(instance)
        victim_host = wait_until(
            lambda: step_workers(instance, run_id).get(step, [None])[0],
            timeout=90,
            interval=0.1,
            what=f"a worker to start {step}",
        )
    time.sleep(1.5)  # into the hung request
    victim = victim_host.split("@")[0]
    survivor = next(name for name in ("w1", "w2") if name != victim)
    killed_at = time.monotonic()
    pgid = stack.workers.kill(victim)
    assert not group_alive(pgid)
    stack.sandbox.set_faults(FaultConfig())  # the re-run need not wait 8 s again

    status = handle.wait(RUN_TIMEOUT_SECONDS)
    recovered = time.monotonic() - killed_at
    assert status == dg.DagsterRunStatus.SUCCESS, stack.worker_logs()
    with stack.deployment.instance() as instance:
        workers = step_workers(instance, run_id)
        counts = step_event_counts(instance, run_id, step)
    # Started on the victim, started again from the beginning on the survivor, done once.
    assert workers[step] == [victim_host, hostname(survivor)]
    assert counts["STEP_START"] == 2
    assert counts["STEP_SUCCESS"] == 1
    assert "STEP_FAILURE" not in counts
    assert_every_row_exact(stack, tickers)
    # Not before Redis gave the task back (the visibility timeout), nor long after it.
    assert VISIBILITY_TIMEOUT_SECONDS - 5 <= recovered <= VISIBILITY_TIMEOUT_SECONDS + 60
    print(f"killed {victim} mid-step; the run ended {recovered:.1f} s later")
