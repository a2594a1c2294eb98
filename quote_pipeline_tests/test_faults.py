"""Every failure a real market-data API produces, injected by the sandbox, on PostgreSQL.

One test per row of the fault table: what the API does, and what the pipeline must do.
"""

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg
import pytest

from quote_pipeline.definitions import build_definitions
from quote_pipeline.defs.resources import DatabaseResource, FMPResource
from quote_pipeline.fmp import ClientSettings, FMPAuthError, FMPClient
from quote_pipeline.fmp.quotes import PROBE_SYMBOLS
from quote_pipeline.sandbox import FaultConfig, SandboxServer
from quote_pipeline.storage import add_tickers, count_snapshots, create_db_engine, read_stocks
from quote_pipeline.storage.fetch_state import pending_symbols
from quote_pipeline_tests.conftest import SANDBOX_KEY, SandboxFactory
from quote_pipeline_tests.helpers import materialization_metadata, run_refresh, served_quote

FAST_STEP_RETRIES = {
    "QUOTE_PIPELINE_FETCH_RETRIES": "2",
    "QUOTE_PIPELINE_FETCH_RETRY_DELAY_SECONDS": "0.05",
}


def fast_definitions(
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxServer,
    database_url: str,
    tickers: Sequence[str],
    *,
    key: str = SANDBOX_KEY,
    **fmp_settings: object,
) -> dg.Definitions:
    """Production wiring with short timeouts and retry delays (same code paths)."""
    monkeypatch.setenv("FMP_API_KEY", key)
    monkeypatch.setenv("QUOTE_PIPELINE_DATABASE_URL", database_url)
    for name, value in FAST_STEP_RETRIES.items():
        monkeypatch.setenv(name, value)
    add_tickers(create_db_engine(database_url), tickers, now=datetime.now(UTC))
    settings: dict[str, object] = {
        "read_timeout": 0.5,
        "attempts": 3,
        "backoff_initial": 0.01,
        "quota_exhausted_after": 1.0,
        "rate_limit_pause": 0.1,
        "pass_delay_seconds": 0.05,
        **fmp_settings,
    }
    fmp = FMPResource(
        api_key=dg.EnvVar("FMP_API_KEY"),
        base_url=sandbox.url,
        database=DatabaseResource(),
        **settings,  # type: ignore[arg-type]
    )
    return build_definitions(resources={"fmp": fmp})


def symbols(n: int, prefix: str = "S") -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(n)]


def failures_of(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    raw = result.asset_value("raw_quotes")
    return {f.symbol: f.kind.value for f in raw.failures}


def check_result(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def step_restarts(result: dg.ExecuteInProcessResult) -> int:
    return sum(1 for e in result.all_events if e.event_type_value == "STEP_RESTARTED")


def stored(database_url: str) -> set[str]:
    return {r.ticker for r in read_stocks(create_db_engine(database_url))}


# --- 5xx, resets, timeouts ---------------------------------------------------------------


def test_server_errors_are_retried_until_every_ticker_is_written(
    monkeypatch, start_sandbox: SandboxFactory, postgres_url: str, dagster_instance
) -> None:
    tickers = symbols(150)
    sandbox = start_sandbox(seed=7, faults=FaultConfig(server_error_rate=0.3))
    # 3 tries per request, in 4 passes: a ticker fails only if all 12 did (0.3^12).
    defs = fast_definitions(monkeypatch, sandbox, postgres_url, tickers, extra_passes=3)
    result = run_refresh(defs, dagster_instance)
    assert result.success
    assert stored(postgres_url) == set(tickers)
    statuses = sandbox.stats()["by_status"]
    assert sum(n for s, n in statuses.items() if s.startswith("5")) > 20  # faults were real
    assert materialization_metadata(result, "raw_quotes")["api_requests"] > len(tickers)


def test_a_hanging_symbol_costs_one_timeout_per_pass_and_is_left_to_the_retry_sensor(
    monkeypatch, start_sandbox: SandboxFactory, postgres_url: str, dagster_instance
) -> None:
    tickers = [*symbols(40), "SLOW"]
    sandbox = start_sandbox(faults=FaultConfig(hang_symbols={"SLOW"}, hang_seconds=2))
    defs = fast_definitions(monkeypatch, sandbox, postgres_url, tickers)
    result = run_refresh(defs, dagster_instance)
    assert result.success  # 1 of 41 is under the 5 % threshold
    assert failures_of(result) == {"SLOW": "transport_error"}
    assert stored(postgres_url) == set(tickers) - {"SLOW"}
    # A read timeout is not retried within its pass, and the step is never restarted for
    # one symbol: one request in each of the two passes of the run's budget.
    assert step_restarts(result) == 0
    slow = [r for r in sandbox.stats()["requests"] if r["symbols"] == ["SLOW"]]
    assert len(slow) == 2
    (pending,) = pending_symbols(create_db_engine(postgres_url), "quotes")
    assert (pending.ticker, pending.failure_kind, pending.attempts) == (
        "SLOW",
        "transport_error",
        2,
    )
    assert pending.status == "pending" and pending.next_attempt_at is not None
    metadata = materialization_metadata(result, "stocks")
    assert metadata["pending_retry"] == 1
    assert [r.data["ticker"] for r in metadata["pending_tickers"].records] == ["SLOW"]


def test_a_whole_step_failing_is_retried_by_its_retry_policy(
    monkeypatch, start_sandbox: SandboxFactory, postgres_url: str, dagster_instance
) -> None:
    # The API answers the probe, then every symbol of one mapped step gets 5xx: an outage
    # (at least 10 symbols, none answered), not a straggler. The step's RetryPolicy (2 quick
    # retries here) asks again; the other steps are not restarted.
    failing = symbols(10, "X")
    sandbox = start_sandbox(faults=FaultConfig(server_error_symbols=set(failing)))
    tickers = [*symbols(10, "A"), *failing]
    defs = fast_definitions(monkeypatch, sandbox, postgres_url, tickers)
    batches = {"target_steps": 2, "min_batch_size": 10}
    config = {"ops": {"raw_quotes": {"ops": {"plan_quote_batches": {"config": batches}}}}}
    result = run_refresh(defs, dagster_instance, run_config=config)
    assert not result.success
    restarted = [e.step_key for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert restarted == ["raw_quotes.fetch_quote_batch[batch_0001]"] * 2
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retried and all(
        "the API looks unreachable" in e.event_specific_data.error.to_string() for e in retried
    )
    asked = Counter(s for r in sandbox.stats()["requests"] for s in r["symbols"])
    # 3 tries a request, 2 passes, 3 step attempts; the healthy step asked once each.
    assert {asked[s] for s in failing} == {3 * 2 * 3}
    assert {asked[s] for s in symbols(10, "A")} <= {1, 2}  # the first is the probe's too


def test_a_retry_run_moves_the_back_off_on_or_settles_what_it_asked(
    monkeypatch, start_sandbox: SandboxFactory, postgres_url: str, dagster_instance
) -> None:
    sandbox = start_sandbox(faults=FaultConfig(server_error_symbols={"FLAKY"}))
    defs = fast_definitions(monkeypatch, sandbox, postgres_url, [*symbols(20), "FLAKY"])
    assert run_refresh(defs, dagster_instance).success  # 1 of 21 is under the threshold
    engine = create_db_engine(postgres_url)
    (first,) = pending_symbols(engine, "quotes")
    # What the retry sensor asks for (its run config).
    only_flaky = {"config": {"only_symbols": ["FLAKY"]}}
    retry = {"ops": {"raw_quotes": {"ops": {"plan_quote_batches": only_flaky}}}}

    # Still failing: the retry run fails at its probe, and says so, but the back-off moves
    # on (so the sensor's next run is a new one, later).
    again = run_refresh(defs, dagster_instance, run_config=retry)
    assert not again.success
    failure = next(e for e in again.all_events if e.event_type_value == "STEP_FAILURE")
    assert "FLAKY still failing" in failure.event_specific_data.error.message
    (second,) = pending_symbols(engine, "quotes")
    assert second.runs == first.runs + 1 and second.next_attempt_at > first.next_attempt_at

    # Now the API has no quote for it at all: that is the coverage check's to report, not a
    # retry's; the symbol is no longer pending.
    sandbox.set_faults(FaultConfig(unknown_symbols={"FLAKY"}))
    settled = run_refresh(defs, dagster_instance, run_config=retry)
    assert not check_result(settled, "coverage").passed
    assert pending_symbols(engine, "quotes") == []


def test_an_api_that_only_errors_fails_the_run_at_the_probe_and_writes_nothing(
    monkeypatch, start_sandbox: SandboxFactory, postgres_url: str, dagster_instance
) -> None:
    engine = create_db_engine(postgres_url)
    sandbox = start_sandbox(faults=FaultConfig(server_error_rate=1.0))
    defs = fast_definitions(monkeypatch, sandbox, postgres_url, symbols(10))
    result = run_refresh(defs, dagster_instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "raw_quotes.plan_quote_batches"  # before any fan-out
    assert "HTTP 50" in failure.event_specific_data.error.message
    # The probe's 3 attempts for each of 3 symbols (one sick symbol is not a dead API),
    # nothing more.
    assert sandbox.stats()["requests_total"] == 3 * PROBE_SYMBOLS
    assert read_stocks(engine) == []


def test_an_unreachable_api_fails_in_seconds(
    monkeypatch, sandbox: SandboxServer, postgres_url: str, dagster_instance
) -> None:
    defs = fast_definitions(monkeypatch, sandbox, postgres_url, symbols(10))
    defs = build_definitions(
        resources={
            "fmp": FMPResource(
                api_key=dg.EnvVar("FMP_API_KEY"),
                base_url="http://127.0.0.1:9",
                backoff_initial=0.01,
            )
        }
    )
    result = run_refresh(defs, dagster_instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "raw_quotes.plan_quote_batches"
    message = failure.event_specific_data.error.message
    assert "NewConnectionError" in message and "Connection refused" in message
    assert SANDBOX_KEY not in message
    assert step_restarts(result) == 0


# --- 429 ---------------------------------------------------------------------------------


def test_rate_limited_requests_slow_down_and_succeed(
    monkeypatch, start_sandbox: SandboxFactory, postgres_url: str, dagster_instance
) -> None:
    tickers = symbols(100)
    sandbox = start_sandbox(seed=3, faults=FaultConfig(rate_limit_rate=0.2))
    defs = fast_definitions(monkeypatch, sandbox, postgres_url, tickers, attempts=5)
    result = run_refresh(defs, dagster_instance)
    assert result.success
    assert stored(postgres_url) == set(tickers)
    assert sandbox.stats()["by_status"].get("429", 0) > 5


def test_limit_reach_inside_a_200_is_a_rate_limit_too(
    monkeypatch, start_sandbox: SandboxFactory, postgres_url: str, dagster_instance
) -> None:
    tickers = symbols(60)
    faults = FaultConfig(rate_limit_rate=0.2, limit_reach_in_200=True)
    sandbox = start_sandbox(seed=5, faults=faults)
    defs = fast_definitions(monkeypatch, sandbox, postgres_url, tickers, attempts=5)
    result = run_refresh(defs, dagster_instance)
    assert result.success
    assert stored(postgres_url) == set(tickers)


def test_an_exhausted_quota_stops_asking_writes_what_it_got_and_fails_the_run(
    monkeypatch, start_sandbox: SandboxFactory, postgres_url: str, dagster_instance
) -> None:
    tickers = symbols(300)
    sandbox = start_sandbox(faults=FaultConfig(daily_quota=40))
    defs = fast_definitions(monkeypatch, sandbox, postgres_url, tickers, max_concurrency=4)
    result = run_refresh(defs, dagster_instance)
    assert not result.success

    served_ok = [
        r for r in sandbox.stats()["requests"] if r["status"] == 200 and r["symbols"] != []
    ]
    assert len(served_ok) == 39  # the quota of 40, less the plan probe (answered 402)
    assert len(stored(postgres_url)) == len(served_ok)
    quota = check_result(result, "api_quota_not_exhausted")
    assert not quota.passed and "quota ran out" in quota.description
    kinds = set(failures_of(result).values())
    assert "quota_exhausted" in kinds
    # It stopped asking: far fewer requests than tickers times attempts.
    assert sandbox.stats()["requests_total"] < 40 + 4 * 3 * 4
    # The materialization is recorded although the run failed, so the UI shows what landed.
    assert materialization_metadata(result, "stocks")["rows_written"] == len(served_ok)


# --- 401 / 403 ---------------------------------------------------------------------------


def test_an_invalid_key_fails_fast_without_retries_or_writes(
    monkeypatch, start_sandbox: SandboxFactory, postgres_url: str, dagster_instance
) -> None:
    wrong = "wrong-key-5c1d8e"
    sandbox = start_sandbox()
    defs = fast_definitions(monkeypatch, sandbox, postgres_url, symbols(200), key=wrong)
    result = run_refresh(defs, dagster_instance)
    assert not result.success
    assert sandbox.stats()["requests_total"] == 1
    assert step_restarts(result) == 0
    assert read_stocks(create_db_engine(postgres_url)) == []
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.to_string()
    assert "Invalid API KEY" in message
    assert wrong not in message


def test_a_forbidden_legacy_endpoint_is_an_auth_error(sandbox: SandboxServer) -> None:
    with FMPClient(SANDBOX_KEY, ClientSettings(base_url=sandbox.url)) as client:
        with pytest.raises(FMPAuthError) as caught:
            client.get_json("/api/v3/quote-short/AAPL", {})
        assert client.requests_made == 1
    assert caught.value.status == 403
    assert "Legacy Endpoint" in str(caught.value)


# --- 402, 200 [], error bodies, malformed ------------------------------------------------


@pytest.mark.parametrize("premium", [False, True], ids=["single", "batch"])
def test_a_symbol_outside_the_plan_fails_alone(
    monkeypatch, start_sandbox: SandboxFactory, postgres_url: str, dagster_instance, premium: bool
) -> None:
    tickers = [*symbols(40), "GATED"]
    sandbox = start_sandbox(premium=premium, faults=FaultConfig(plan_gated_symbols={"GATED"}))
    result = run_refresh(
        fast_definitions(monkeypatch, sandbox, postgres_url, tickers), dagster_instance
    )
    assert result.success
    # A batch simply omits it; a single request then tells "not in plan" from "no quote".
    assert failures_of(result) == {"GATED": "not_in_plan"}
    assert stored(postgres_url) == set(tickers) - {"GATED"}


@pytest.mark.parametrize("premium", [False, True], ids=["single", "batch"])
def test_an_error_body_in_a_200_is_classified_and_isolated(
    monkeypatch, start_sandbox: SandboxFactory, postgres_url: str, dagster_instance, premium: bool
) -> None:
    tickers = [*symbols(40), "ERRB"]
    sandbox = start_sandbox(premium=premium, faults=FaultConfig(error_body_symbols={"ERRB"}))
    defs = fast_definitions(monkeypatch, sandbox, postgres_url, tickers)
    result = run_refresh(defs, dagster_instance)
    assert result.success
    # In a batch the error body spoils the whole chunk; its symbols are then asked singly.
    assert failures_of(result) == {"ERRB": "api_error"}
    assert stored(postgres_url) == set(tickers) - {"ERRB"}


def test_malformed_and_badly_shaped_answers_are_bad_responses_never_written(
    monkeypatch, start_sandbox: SandboxFactory, postgres_url: str, dagster_instance
) -> None:
    bad = {"MALF", "SHAPE1", "SHAPE2", "SHAPE3", "SHAPE4"}
    tickers = [*symbols(100), *sorted(bad)]
    faults = FaultConfig(malformed_symbols={"MALF"}, bad_shape_symbols=bad - {"MALF"})
    sandbox = start_sandbox(faults=faults)
    defs = fast_definitions(monkeypatch, sandbox, postgres_url, tickers)
    result = run_refresh(defs, dagster_instance, run_config=_allow(0.1))
    assert result.success
    assert failures_of(result) == dict.fromkeys(bad, "bad_response")
    assert stored(postgres_url) == set(tickers) - bad


def test_a_malformed_batch_fails_only_its_own_symbols(
    monkeypatch, start_sandbox: SandboxFactory, postgres_url: str, dagster_instance
) -> None:
    tickers = symbols(300)
    sandbox = start_sandbox(premium=True, faults=FaultConfig(malformed_symbols={"S150"}))
    defs = fast_definitions(monkeypatch, sandbox, postgres_url, tickers, symbols_per_request=10)
    result = run_refresh(defs, dagster_instance)
    assert result.success
    failed = failures_of(result)
    assert "S150" in failed and set(failed.values()) == {"bad_response"}
    assert len(failed) <= 10  # the chunk of 10 around it, nothing else
    assert stored(postgres_url) == set(tickers) - set(failed)


# --- run outcome -------------------------------------------------------------------------


def _allow(share: float) -> dict:
    return {"ops": {"stocks_refresh_outcome": {"config": {"max_failed_share": share}}}}


def test_too_many_failures_fail_the_run_after_writing_the_good_rows(
    monkeypatch, start_sandbox: SandboxFactory, postgres_url: str, dagster_instance
) -> None:
    unknown = {f"GONE{i}" for i in range(5)}
    tickers = [*symbols(45), *sorted(unknown)]
    sandbox = start_sandbox(faults=FaultConfig(unknown_symbols=unknown))
    defs = fast_definitions(monkeypatch, sandbox, postgres_url, tickers)

    result = run_refresh(defs, dagster_instance)  # 10 % failed > 5 %
    assert not result.success
    assert stored(postgres_url) == set(tickers) - unknown
    coverage = check_result(result, "coverage")
    assert not coverage.passed
    assert "5 of 50" in coverage.description
    for ticker in symbols(45):
        assert (
            read_stocks(create_db_engine(postgres_url), [ticker])[0].price
            == served_quote(sandbox, ticker)["price"]
        )

    relaxed = run_refresh(defs, dagster_instance, run_config=_allow(0.2))
    assert relaxed.success
    assert check_result(relaxed, "coverage").passed
    assert count_snapshots(create_db_engine(postgres_url)) == 90  # two runs, distinct times
