"""The API key never leaks, and a run killed mid-write leaves the tables as they were.

Both run the pipeline the way a user does: `dagster job execute` in its own process, with a
persistent DAGSTER_HOME whose event log and captured compute logs are then searched.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from quote_pipeline.sandbox import FaultConfig, SandboxServer
from quote_pipeline.storage import add_tickers, count_snapshots, create_db_engine, read_stocks
from quote_pipeline_tests.conftest import SANDBOX_KEY, SandboxFactory

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


def files_containing(root: Path, needle: bytes) -> list[str]:
    return [
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and needle in path.read_bytes()
    ]


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
        deadline = time.monotonic() + 240
        while not _active_write(engine):
            assert process.poll() is None, "the run ended before its write was caught"
            assert time.monotonic() < deadline, "no write seen"
            time.sleep(0.005)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)

    # PostgreSQL rolls the dead session's transaction back: nothing changed.
    deadline = time.monotonic() + 30
    while _active_write(engine) and time.monotonic() < deadline:
        time.sleep(0.1)
    after = {r.ticker: (r.price, r.volume, r.quoted_at) for r in read_stocks(engine)}
    assert after == before
    assert count_snapshots(engine) == snapshots_before

    assert run_dagster(env).returncode == 0
    rerun = {r.ticker: r for r in read_stocks(engine)}
    assert len(rerun) == len(symbols)
    assert sum(rerun[t].price != before[t][0] for t in symbols) > len(symbols) // 2
    assert count_snapshots(engine) == 2 * snapshots_before
