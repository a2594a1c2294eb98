"""What the Dagster UI shows after a refresh is true, complete and readable.

Each test runs the real definitions against the sandbox on a real (SQLite) instance and reads
what the UI would read: check evaluations, the step and run failure events, materialization
metadata, the event log.
"""

from __future__ import annotations

from collections import Counter

import dagster as dg
import pytest

from quote_pipeline.sandbox import FaultConfig
from quote_pipeline_tests.conftest import SandboxFactory
from quote_pipeline_tests.helpers import (
    materialization_metadata,
    pipeline_definitions,
    run_refresh,
)

KNOWN = [f"T{i:03d}" for i in range(36)]
STOCKS_CHECKS = {
    "coverage",
    "api_quota_not_exhausted",
    "freshness",
    "prices_positive",
    "no_duplicate_tickers",
    "providers_agree",
}
TWENTY_STEPS = {
    "ops": {
        "raw_quotes": {
            "ops": {"plan_quote_batches": {"config": {"target_steps": 20, "min_batch_size": 1}}}
        }
    }
}


def materialize_from_the_ui(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    """What "Materialize all" on the quotes group does: the assets with every one of their
    checks (freshness included, unlike the refresh_quotes job)."""
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        asset_selection=[
            dg.AssetKey(k) for k in ("tickers", "raw_quotes", "stocks", "quote_snapshots")
        ],
    )


def evaluations(
    result: dg.ExecuteInProcessResult, asset: str
) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey(asset)
    }


def test_one_symbol_without_a_quote_leaves_every_check_green_but_fetch_failures(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox(faults=FaultConfig(unknown_symbols={"ZZZQ"}))
    defs = pipeline_definitions(monkeypatch, sandbox, sqlite_url, [*KNOWN, "ZZZQ"])

    result = materialize_from_the_ui(defs, dagster_instance)

    assert result.success
    stocks_checks = evaluations(result, "stocks")
    assert set(stocks_checks) == STOCKS_CHECKS
    # freshness is about stored rows going stale: ZZZQ never had one (coverage reports it).
    assert {name: e.passed for name, e in stocks_checks.items()} == dict.fromkeys(
        STOCKS_CHECKS, True
    )
    assert stocks_checks["coverage"].description == (
        "1 of 37 tickers got no quote (2.7% within 5%): ZZZQ no_quote"
    )
    (fetch_failures,) = evaluations(result, "raw_quotes").values()
    assert not fetch_failures.passed and fetch_failures.severity == dg.AssetCheckSeverity.WARN
    assert fetch_failures.description == "1 of 37 tickers got no quote: ZZZQ no_quote"


def test_too_many_failures_record_every_check_and_fail_the_run_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    unknown = ["ZZZA", "ZZZB", "ZZZC", "ZZZD"]  # 4 of 40: 10 % > 5 %
    sandbox = start_sandbox(faults=FaultConfig(unknown_symbols=set(unknown)))
    defs = pipeline_definitions(monkeypatch, sandbox, sqlite_url, [*KNOWN, *unknown])

    result = materialize_from_the_ui(defs, dagster_instance)

    assert not result.success
    stocks_checks = evaluations(result, "stocks")
    # Every check has a result: none is "Dependencies failed. Not executing."
    assert set(stocks_checks) == STOCKS_CHECKS
    assert not stocks_checks["coverage"].passed
    assert all(stocks_checks[c].passed for c in STOCKS_CHECKS - {"coverage"})
    reason = (
        "4 of 40 tickers got no quote (10.0% > 5%): "
        "ZZZA no_quote, ZZZB no_quote, ZZZC no_quote, ZZZD no_quote"
    )
    assert stocks_checks["coverage"].description == reason
    skipped = [e for e in result.all_events if e.event_type_value == "STEP_SKIPPED"]
    assert not skipped

    # The failure says why in words: no DagsterAssetCheckFailedError, no Dagster frames.
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "stocks_refresh_outcome"
    data = failure.step_failure_data
    assert data.user_failure_data is not None
    assert data.user_failure_data.description == reason
    assert data.error is not None and data.error.cls_name == "Failure"
    run_failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    error = run_failure.event_specific_data.error
    assert error is not None and reason in error.message
    assert "DagsterAssetCheckFailedError" not in error.to_string()
    # The good rows were written first.
    assert materialization_metadata(result, "stocks")["rows_written"] == len(KNOWN)


def test_raw_quotes_shows_what_the_fetch_got_and_cost(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox(faults=FaultConfig(unknown_symbols={"ZZZQ"}))
    defs = pipeline_definitions(monkeypatch, sandbox, sqlite_url, [*KNOWN, "ZZZQ"])

    result = run_refresh(defs, dagster_instance, run_config=TWENTY_STEPS)

    raw = materialization_metadata(result, "raw_quotes")
    assert raw["dagster/row_count"] == len(KNOWN)
    assert raw["failures"] == 1
    assert raw["failures_by_kind"] == "no_quote: 1"
    assert raw["endpoint"] == "single-symbol"  # the sandbox's free plan
    sent = len(sandbox.stats()["requests"])  # the plan's probe included
    assert raw["api_requests"] == sent
    assert raw["summary"].startswith(f"36 of 37 tickers got a quote with {sent} requests")
    (failed,) = raw["failed_tickers"].records
    assert failed.data["ticker"] == "ZZZQ"
    batches = raw["batches"].records
    assert len(batches) == 19  # 37 tickers, 2 per step
    assert sum(b.data["quotes"] for b in batches) == len(KNOWN)
    assert sum(b.data["failures"] for b in batches) == 1
    assert "path" not in raw  # no pickle path: nothing a user can open


def test_a_twenty_step_refresh_writes_no_io_manager_chatter(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox()
    defs = pipeline_definitions(
        monkeypatch, sandbox, sqlite_url, [*KNOWN, "ZZZA", "ZZZB", "ZZZC", "ZZZD"]
    )

    result = run_refresh(defs, dagster_instance, run_config=TWENTY_STEPS)

    assert result.success
    records = dagster_instance.all_logs(result.run_id)
    messages = [r.user_message for r in records if r.dagster_event is None]
    assert not [m for m in messages if "Writing file at" in m or "Loading file from" in m]
    # Our own lines: the plan, the fetch's summary, the write (and the fallback to single
    # symbols on the free plan).
    assert len(messages) <= 4, messages
    assert any(m.startswith("40 of 40 tickers got a quote") for m in messages)
    by_type = Counter(r.dagster_event.event_type_value for r in records if r.dagster_event)
    # Before this IO manager the same run wrote 322 events, 85 of them the pickle IO
    # manager's lines; what is left is Dagster's own per-step plumbing.
    assert len(records) < 260, by_type


def refresh_quotes_job() -> dg.JobDefinition:
    """The refresh job, rebuilt in whichever process re-executes it."""
    from quote_pipeline.definitions import build_definitions

    return build_definitions().resolve_job_def("refresh_quotes")


def test_re_execution_from_failure_finds_the_values_of_the_failed_run(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    unknown = ["ZZZA", "ZZZB", "ZZZC", "ZZZD"]
    sandbox = start_sandbox(faults=FaultConfig(unknown_symbols=set(unknown)))
    pipeline_definitions(monkeypatch, sandbox, sqlite_url, [*KNOWN, *unknown])
    job = dg.reconstructable(refresh_quotes_job)

    with dg.execute_job(job, instance=dagster_instance) as failed:
        assert not failed.success
    requests_before = len(sandbox.stats()["requests"])

    relaxed = {"ops": {"stocks_refresh_outcome": {"config": {"max_failed_share": 0.2}}}}
    with dg.execute_job(
        job,
        instance=dagster_instance,
        run_config=relaxed,
        reexecution_options=dg.ReexecutionOptions.from_failure(failed.run_id, dagster_instance),
    ) as retried:
        assert retried.success
        steps = {e.step_key for e in retried.all_events if e.event_type_value == "STEP_SUCCESS"}
        assert steps == {"stocks_refresh_outcome"}  # only the failed step, on stored inputs
    assert len(sandbox.stats()["requests"]) == requests_before  # nothing fetched again
