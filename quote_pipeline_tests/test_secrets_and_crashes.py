"""The API key never leaks, and a run killed mid-write leaves the tables as they were.

Both run the pipeline the way a user does: `dagster job execute` in its own process, with a
persistent DAGSTER_HOME whose event log and captured compute logs are then searched.
"""

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from quote_pipeline.sandbox import FaultConfig, SandboxServer
from quote_pipeline.storage import add_tickers, count_snapshots, create_db_engine, read_stocks
from quote_pipeline_tests.conftest import SANDBOX_KEY, SandboxFactory
from quote_pipeline_tests.support.dagster_processes import (
    DAGSTER_YAML,
    postgres_env,
    wait_until,
)
from quote_pipeline_tests.support.leaks import columns_containing, files_containing
from quote_pipeline_tests.support.postgres import PostgresServer, create_database, drop_database

BIN = Path(sys.executable).parent
REFRESH = ["job", "execute", "-m", "quote_pipeline.definitions", "-j", "refresh_quotes"]


def dagster_env(tmp_path: Path, base_url: str, database_url: str, key: str) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "FMP_BASE_URL": base_url,
        "FMP_API_KEY": key,
        "QUOTE_PIPELINE_DATABASE_URL": database_url,
        # Short retry waits: the same RetryPolicy path, without minutes of sleeping.
        "QUOTE_PIPELINE_FETCH_RETRIES": "1",
        "QUOTE_PIPELINE_FETCH_RETRY_DELAY_SECONDS": "0.1",
    }


def run_dagster(env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(BIN / "dagster"), *REFRESH], env=env, capture_output=True, timeout=300, check=False
    )


@pytest.mark.parametrize("key", [SANDBOX_KEY, "wrong-key-91be04d7c2"], ids=["valid", "invalid"])
def test_the_key_is_in_no_log_event_or_output(
    start_sandbox: SandboxFactory, postgres_url: str, tmp_path: Path, key: str
) -> None:
    faults = FaultConfig(
        server_error_rate=0.2,
        malformed_symbols={"MALF"},
        error_body_symbols={"ERRB"},
        plan_gated_symbols={"GATED"},
    )
    sandbox = start_sandbox(seed=11, faults=faults)
    symbols = [f"K{i:02d}" for i in range(30)] + ["MALF", "ERRB", "GATED"]
    add_tickers(create_db_engine(postgres_url), symbols, now=datetime.now(UTC))
    outputs = [run_dagster(dagster_env(tmp_path, sandbox.url, postgres_url, key))]
    # Connection refused: the transport's exception text names the request (requests puts
    # the full URL, key included, in it), and it is stored as the run's failure.
    outputs.append(run_dagster(dagster_env(tmp_path, "http://127.0.0.1:9", postgres_url, key)))

    assert all(o.returncode != 0 for o in outputs)  # failures happened and were reported
    for output in outputs:
        assert key.encode() not in output.stdout + output.stderr
    home = tmp_path / "dagster_home"
    assert list(home.rglob("*.db")), "the instance kept its event log"
    assert list(home.rglob("compute_logs/*.err")), "the steps' output was captured"
    assert files_containing(home, key.encode()) == []
    # The searches looked at the right things: the errors are stored there.
    assert files_containing(home, b"Connection refused")
    if key != SANDBOX_KEY:
        assert files_containing(home, b"Invalid API KEY")


# Every row of README's "What happens when the API misbehaves", in three runs: the sandbox's
# faults with a valid key (5xx, 429, a hang past the read timeout, 402 on the batch endpoint
# and for one symbol, no quote, an error body, malformed JSON, a wrong shape), a wrong key
# (401), and nothing listening (unreachable).
MISBEHAVING_API = FaultConfig(
    server_error_rate=0.2,
    rate_limit_rate=0.1,
    hang_symbols={"HANG"},
    hang_seconds=3,
    plan_gated_symbols={"GATED"},
    unknown_symbols={"GONE"},
    error_body_symbols={"ERRB"},
    malformed_symbols={"MALF"},
    bad_shape_symbols={"BADS"},
)
# The client's settings for those runs: a hang costs one second, a 429 a moment, and no
# pause between passes.
FAST_FAILURES_CONFIG = """
resources:
  fmp:
    config:
      api_key: {env: FMP_API_KEY}
      read_timeout: 1.0
      backoff_initial: 0.01
      rate_limit_pause: 0.05
      pass_delay_seconds: 0
      extra_passes: 0
"""


@pytest.fixture
def postgres_instance_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database for a Dagster instance's storage, dropped after the test."""
    name = f"qp_leak_dagster_{uuid.uuid4().hex[:10]}"
    url = create_database(postgres_server.url, name)
    yield url
    drop_database(postgres_server.url, name)


def test_the_bare_key_is_in_no_table_of_a_postgresql_instance_after_any_api_failure(
    start_sandbox: SandboxFactory,
    postgres_url: str,
    postgres_instance_database: str,
    tmp_path: Path,
) -> None:
    sandbox = start_sandbox(seed=5, faults=MISBEHAVING_API)
    symbols = [f"L{i:02d}" for i in range(12)] + ["HANG", "GATED", "GONE", "ERRB", "MALF", "BADS"]
    add_tickers(create_db_engine(postgres_url), symbols, now=datetime.now(UTC))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML.read_text())  # the production instance
    config = tmp_path / "run_config.yaml"
    config.write_text(FAST_FAILURES_CONFIG)
    command = [str(BIN / "dagster"), *REFRESH, "-c", str(config)]
    wrong_key = "wrong-key-5c0ffee9d1"
    runs = [
        (sandbox.url, SANDBOX_KEY),
        (sandbox.url, wrong_key),
        ("http://127.0.0.1:9", SANDBOX_KEY),
    ]
    outputs = []
    for base_url, key in runs:
        env = {
            **dagster_env(tmp_path, base_url, postgres_url, key),
            **postgres_env(postgres_instance_database),
        }
        outputs.append(
            subprocess.run(command, env=env, capture_output=True, timeout=300, check=False)
        )

    assert all(o.returncode != 0 for o in outputs)  # every run ended in a reported failure
    for key in (SANDBOX_KEY, wrong_key):
        for output in outputs:
            assert key.encode() not in output.stdout + output.stderr
        assert columns_containing(postgres_instance_database, key) == []
        assert files_containing(home, key.encode()) == []
    # The instance holds the failures the key could have ridden on, where the search looked.
    stored = {
        marker: columns_containing(postgres_instance_database, marker)
        for marker in ("Connection refused", "Invalid API KEY", "HANG", "MALF", "GATED")
    }
    assert all(stored.values()), stored
    stats = sandbox.stats()["by_status"]
    assert {"200", "401", "402", "429"} <= set(stats) and {"500", "502", "503"} & set(stats)
    assert stats.get("499"), "no request outlasted the client's read timeout"


def _active_write(engine: sa.Engine) -> bool:
    """Whether another session is inside a transaction that touched the stocks tables."""
    query = sa.text(
        "select count(*) from pg_stat_activity where datname = current_database() "
        "and pid <> pg_backend_pid() and xact_start is not null "
        "and (query ilike '%INSERT INTO stocks%' or query ilike '%INSERT INTO quote_snapshots%')"
    )
    with engine.connect() as conn:
        return bool(conn.scalar(query))


def test_a_run_killed_during_the_write_changes_nothing_and_a_rerun_completes(
    start_sandbox: SandboxFactory, postgres_url: str, tmp_path: Path
) -> None:
    engine = create_db_engine(postgres_url)
    sandbox: SandboxServer = start_sandbox(premium=True)
    symbols = [f"C{i:05d}" for i in range(40_000)]
    add_tickers(engine, symbols, now=datetime.now(UTC))
    env = dagster_env(tmp_path, sandbox.url, postgres_url, SANDBOX_KEY)
    assert run_dagster(env).returncode == 0
    before = {r.ticker: (r.price, r.volume, r.quoted_at) for r in read_stocks(engine)}
    snapshots_before = count_snapshots(engine)
    assert len(before) == len(symbols)

    sandbox.advance()  # new prices, so an unrolled-back write would show
    process = subprocess.Popen(
        [str(BIN / "dagster"), *REFRESH],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def writing() -> bool:
            assert process.poll() is None, "the run ended before its write was caught"
            return _active_write(engine)

        wait_until(writing, timeout=240, interval=0.005, what="the run's write to start")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)

    # PostgreSQL rolls the dead session's transaction back: nothing changed.
    wait_until(
        lambda: not _active_write(engine),
        timeout=30,
        interval=0.1,
        what="PostgreSQL to end the killed session's transaction",
    )
    after = {r.ticker: (r.price, r.volume, r.quoted_at) for r in read_stocks(engine)}
    assert after == before
    assert count_snapshots(engine) == snapshots_before

    assert run_dagster(env).returncode == 0
    rerun = {r.ticker: r for r in read_stocks(engine)}
    assert len(rerun) == len(symbols)
    assert sum(rerun[t].price != before[t][0] for t in symbols) > len(symbols) // 2
    assert count_snapshots(engine) == 2 * snapshots_before
