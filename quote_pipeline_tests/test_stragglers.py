"""One slow symbol never holds the table: the issue's scenario, at production defaults.

A hanging symbol (45 s on every request) and one answering 5xx until its outage ends sit
among healthy tickers. The refresh runs as a user runs it — `dagster asset materialize` in a
fresh process, default settings (10 s read timeout, one more pass 30 s later) — on SQLite
and on PostgreSQL at once. The good rows must be committed after one pass, one read timeout
and the retry budget, the run must end, and the two stragglers must be left to the retry
sensor, whose run asks for them alone once they recover.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from quote_pipeline.sandbox import FaultConfig, SandboxServer
from quote_pipeline.storage import add_tickers, create_db_engine, read_stocks
from quote_pipeline.storage.fetch_state import pending_symbols
from quote_pipeline.storage.schema import stocks, symbol_retries
from quote_pipeline_tests.conftest import SANDBOX_KEY, SandboxFactory
from quote_pipeline_tests.helpers import pipeline_definitions, run_refresh

BIN = Path(sys.executable).parent
HEALTHY = [f"S{i:03d}" for i in range(60)]
STRAGGLERS = ["FLAKY", "HANG"]
# Production defaults: one pass (the hanging symbol costs one 10 s read timeout), a 30 s
# pause, a second pass (another timeout); then the write. Slack for a slow machine.
READ_TIMEOUT, PASS_DELAY = 10.0, 30.0
GOOD_ROWS_BY = READ_TIMEOUT + PASS_DELAY + READ_TIMEOUT + 20.0


class CommitWatcher(threading.Thread):
    """Polls a stocks table from its own connection; notes when ``expected`` rows are in."""

    def __init__(self, database_url: str, expected: int) -> None:
        super().__init__(daemon=True)
        self.engine = create_db_engine(database_url)
        self.expected = expected
        self.started = time.monotonic()
        self.committed_after: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            with self.engine.connect() as conn:
                count = conn.scalar(sa.select(sa.func.count()).select_from(stocks)) or 0
            if count >= self.expected and self.committed_after is None:
                self.committed_after = time.monotonic() - self.started
            self.done.wait(0.2)


def materialize(sandbox: SandboxServer, database_url: str, home: Path) -> subprocess.Popen[str]:
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "FMP_BASE_URL": sandbox.url,
        "FMP_API_KEY": SANDBOX_KEY,
        "QUOTE_PIPELINE_DATABASE_URL": database_url,
    }
    argv = [str(BIN / "dagster"), "asset", "materialize", "-m", "quote_pipeline.definitions"]
    return subprocess.Popen(
        [*argv, "--select", "tickers,raw_quotes,stocks,quote_snapshots"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def requests_per_symbol(sandbox: SandboxServer) -> Counter[str]:
    return Counter(s for r in sandbox.stats()["requests"] for s in r["symbols"])


def test_stragglers_never_hold_the_good_rows_and_are_retried_alone(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    postgres_url: str,
    tmp_path: Path,
    dagster_instance: dg.DagsterInstance,
) -> None:
    faults = FaultConfig(hang_symbols={"HANG"}, hang_seconds=45, server_error_symbols={"FLAKY"})
    databases = {"sqlite": sqlite_url, "postgresql": postgres_url}
    sandboxes = {name: start_sandbox(latency_ms=20, faults=faults) for name in databases}
    for url in databases.values():
        add_tickers(create_db_engine(url), [*HEALTHY, *STRAGGLERS], now=datetime.now(UTC))

    # Both databases at once, each a fresh CLI process (as the user ran it).
    watchers = {name: CommitWatcher(url, len(HEALTHY)) for name, url in databases.items()}
    processes = {
        name: materialize(sandboxes[name], url, tmp_path / f"home-{name}")
        for name, url in databases.items()
    }
    for watcher in watchers.values():
        watcher.start()
    ended_after: dict[str, float] = {}
    outputs: dict[str, str] = {}
    for name, process in processes.items():
        outputs[name], _ = process.communicate(timeout=300)
        ended_after[name] = time.monotonic() - watchers[name].started
        watchers[name].done.set()
        assert process.returncode == 0, outputs[name][-3000:]

    for name, url in databases.items():
        committed = watchers[name].committed_after
        assert committed is not None and committed <= GOOD_ROWS_BY, (name, committed)
        # Nothing else holds the run after the write: the checks, and the process's exit.
        assert ended_after[name] <= committed + 30, (name, ended_after[name], committed)
        assert {r.ticker for r in read_stocks(create_db_engine(url))} == set(HEALTHY)
        asked = requests_per_symbol(sandboxes[name])
        # The hanging symbol: one request per pass (a timeout is not retried within one);
        # the 5xx symbol: its 4 tries in each pass. The probe asks the first symbols (these
        # two, alphabetically) once more each before it finds an answering one.
        assert asked["HANG"] == 1 + 2, asked
        assert asked["FLAKY"] == 4 + 2 * 4, asked
        assert all(asked[s] <= 2 for s in HEALTHY) and sum(asked[s] for s in HEALTHY) <= 61
        pending = {p.ticker: p for p in pending_symbols(create_db_engine(url), "quotes")}
        assert sorted(pending) == STRAGGLERS
        assert pending["HANG"].failure_kind == "transport_error"
        assert pending["FLAKY"].failure_kind == "server_error"
        assert all(p.status == "pending" and p.runs == 1 for p in pending.values())
        # Asked again a minute later (the back-off's first step).
        for p in pending.values():
            assert p.next_attempt_at is not None
            delay = p.next_attempt_at - p.last_failed_at
            assert delay == timedelta(minutes=1)

    # The outage ends and the symbol stops hanging; a minute passes. The retry sensor asks
    # for those two alone, and their rows arrive without re-fetching anyone else.
    for name, url in databases.items():
        sandbox = sandboxes[name]
        sandbox.set_faults(FaultConfig())
        sandbox.reset()
        engine = create_db_engine(url)
        with engine.begin() as conn:
            conn.execute(
                sa.update(symbol_retries).values(
                    next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)
                )
            )
        defs = pipeline_definitions(monkeypatch, sandbox, url)
        sensor = defs.resolve_sensor_def("retry_pending_quotes")
        with dg.build_sensor_context(
            instance=dagster_instance, definitions=defs, resources=defs.resources
        ) as context:
            (request,) = sensor.evaluate_tick(context).run_requests or []
        config = request.run_config["ops"]["raw_quotes"]["ops"]["plan_quote_batches"]
        assert config["config"]["only_symbols"] == STRAGGLERS
        result = run_refresh(defs, dagster_instance, run_config=request.run_config)
        assert result.success
        assert set(requests_per_symbol(sandbox)) == set(STRAGGLERS)
        assert {r.ticker for r in read_stocks(engine)} == {*HEALTHY, *STRAGGLERS}
        assert pending_symbols(engine, "quotes") == []
