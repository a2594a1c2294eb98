"""The plan's rate cap holds across two Celery workers fetching at once: the calls are
counted in the data database (api_calls), which every worker's steps share.

This costs a real minute: 400 tickers against a 300-calls-a-minute plan (the sandbox answers
429 to the 301st call in any rolling minute, as FMP does) take just over one.
"""

from __future__ import annotations

import dagster as dg
import pytest

from quote_pipeline.sandbox import FaultConfig
from quote_pipeline_tests.celery.conftest import CeleryStack
from quote_pipeline_tests.celery.support import (
    busiest_minute,
    hostname,
    quote_tables,
    rows_differing_from_sandbox,
    run_job,
    step_workers,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning"),
]

CAP = 300
# Every process of the deployment (the run worker and both Celery workers) has the cap.
DEPLOYMENT_ENV = {"FMP_CALLS_PER_MINUTE": str(CAP)}
# A fetch step here waits a minute for the cap: the task must not be handed to another
# worker meanwhile.
VISIBILITY_TIMEOUT_SECONDS = 180


def test_the_rate_cap_holds_across_two_workers(stack: CeleryStack) -> None:
    tickers = stack.seed_tickers(400)
    stack.sandbox.set_faults(FaultConfig(calls_per_minute=CAP))
    batching = {"target_steps": 4}  # 4 fetch steps of 100: two on each worker at once
    handle = run_job(
        stack.deployment,
        "refresh_quotes",
        {"ops": {"raw_quotes": {"ops": {"plan_quote_batches": {"config": batching}}}}},
    )
    assert handle.wait(240) == dg.DagsterRunStatus.SUCCESS, stack.worker_logs()

    stats = stack.sandbox.stats()
    assert stats["by_status"].get("429", 0) == 0
    times = [r["t"] for r in stats["requests"]]
    assert len(times) == len(tickers) + 1  # the plan probe, then one per ticker
    busiest = busiest_minute(times)
    assert busiest <= CAP
    assert busiest >= CAP - 10  # the cap was used, not undershot
    assert max(times) - min(times) > 60  # so the run did wait for the window

    with stack.deployment.instance() as instance:
        workers = step_workers(instance, handle.run_id(instance))
    fetch_hosts = {
        h for k, hosts in workers.items() if k.startswith("raw_quotes.fetch_") for h in hosts
    }
    assert fetch_hosts == {hostname("w1"), hostname("w2")}  # both were fetching
    rows, snapshots, _ = quote_tables(stack.deployment.data_url)
    assert len(rows) == snapshots == len(tickers)
    assert rows_differing_from_sandbox(rows) == []
    print(f"busiest minute {busiest} calls (cap {CAP}), 0 x 429, fetch steps on {fetch_hosts}")
