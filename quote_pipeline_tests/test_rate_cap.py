"""The client-side cap keeps a whole run under the plan's calls per rolling minute."""

import dagster as dg
import pytest

from quote_pipeline.sandbox import FaultConfig
from quote_pipeline_tests.conftest import SandboxFactory
from quote_pipeline_tests.helpers import pipeline_definitions, run_refresh

CAP = 30


@pytest.mark.slow
def test_requests_per_rolling_minute_stay_under_the_cap(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    postgres_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    # The sandbox enforces the same cap as FMP would: one call too many answers 429.
    sandbox = start_sandbox(faults=FaultConfig(calls_per_minute=CAP))
    tickers = [f"R{i:02d}" for i in range(45)]
    defs = pipeline_definitions(
        monkeypatch, sandbox, postgres_url, tickers, FMP_CALLS_PER_MINUTE=str(CAP)
    )
    result = run_refresh(defs, dagster_instance)
    assert result.success

    log = sandbox.stats()["requests"]
    assert sandbox.stats()["by_status"].get("429", 0) == 0
    times = sorted(r["t"] for r in log)
    assert len(times) == len(tickers) + 1  # the plan probe, then one per ticker
    busiest = max(sum(1 for t in times[i:] if t < start + 60) for i, start in enumerate(times))
    assert busiest <= CAP
    assert busiest == CAP  # and the cap was used, not undershot
