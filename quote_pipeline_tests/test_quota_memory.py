"""An exhausted quota is remembered across runs and processes, in the data database."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from quote_pipeline.sandbox import FaultConfig, SandboxServer
from quote_pipeline.storage import add_tickers, create_db_engine, read_stocks
from quote_pipeline.storage.schema import api_quota_state
from quote_pipeline_tests.conftest import SANDBOX_KEY, SandboxFactory

BIN = Path(sys.executable).parent
# Production wiring; only the client's patience is shortened, through run config as a user
# would set it in the launchpad.
RUN_CONFIG = """
resources:
  fmp:
    config:
      api_key:
        env: FMP_API_KEY
      quota_exhausted_after: 1.0
      rate_limit_pause: 0.05
      backoff_initial: 0.01
      pass_delay_seconds: 0
      max_concurrency: 4
"""


def refresh(sandbox: SandboxServer, database_url: str, home: Path) -> subprocess.CompletedProcess:
    """`dagster job execute` in a fresh process, as a schedule's run or a user's would be."""
    config = home / "run.yaml"
    config.write_text(RUN_CONFIG)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "FMP_BASE_URL": sandbox.url,
        "FMP_API_KEY": SANDBOX_KEY,
        "QUOTE_PIPELINE_DATABASE_URL": database_url,
    }
    argv = ["job", "execute", "-m", "quote_pipeline.definitions", "-j", "refresh_quotes"]
    return subprocess.run(
        [str(BIN / "dagster"), *argv, "-c", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_an_exhausted_quota_holds_for_every_process_until_a_call_succeeds(
    start_sandbox: SandboxFactory, database_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    engine = create_db_engine(database_url)
    tickers = [f"S{i:03d}" for i in range(30)]
    add_tickers(engine, tickers, now=datetime.now(UTC))
    sandbox = start_sandbox(faults=FaultConfig(daily_quota=20))

    first = refresh(sandbox, database_url, home)
    assert first.returncode != 0  # the quota check fails the run, after the good rows
    assert 0 < len(read_stocks(engine)) < len(tickers)
    with engine.connect() as conn:
        (held,) = conn.execute(sa.select(api_quota_state)).all()
    assert "Limit Reach" in held.reason and held.hold_until > datetime.now(UTC)
    assert SANDBOX_KEY not in held.account  # the account's hash, never the key

    # A second process, while the hold lasts: no request at all, a clear reason.
    asked_before = sandbox.stats()["requests_total"]
    second = refresh(sandbox, database_url, home)
    assert second.returncode != 0
    assert sandbox.stats()["requests_total"] == asked_before
    output = second.stdout + second.stderr
    assert "quota ran out" in output and "no request is made before" in output
    assert SANDBOX_KEY not in output

    # The hold's time passes and the plan's day turns over: the next run asks once, gets an
    # answer, and that success clears the remembered exhaustion.
    with engine.begin() as conn:
        conn.execute(
            sa.update(api_quota_state).values(hold_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    sandbox.set_faults(FaultConfig())
    sandbox.reset()
    third = refresh(sandbox, database_url, home)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert {r.ticker for r in read_stocks(engine)} == set(tickers)
    with engine.connect() as conn:
        assert conn.execute(sa.select(api_quota_state)).all() == []
