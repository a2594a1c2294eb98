"""Benchmarks: the quote refresh (and history backfill) measured as a user runs them.

Each case starts the FMP sandbox in its own process (latency and plan as the case says), seeds
N tickers in a fresh database (with `quote-pipeline tickers import`), and times the Dagster CLI
in a fresh process from its start to its exit (the rows are committed by then). It records wall
time, the CLI process's CPU seconds (user + system, its children included) and peak RSS, API
requests, 429s, and mapped steps, and compares each case with two references: the naive
design (one mapped step per ticker, multiprocess executor; run at a small N, extrapolated)
and the theoretical limit (requests x latency / concurrency, or the rate cap). The bulk upsert
is timed alone, against row-by-row writes (the replaced design) and against moving the same
rows into an unindexed table (its floor).

The refresh cases run `dagster job execute` / `dagster asset materialize` on a throwaway
local SQLite instance (a one-off run, no daemon); `refresh_5000_pg_instance` repeats the
5,000-ticker case on the production instance (the project's dagster.yaml, storage on
PostgreSQL), with the stocks tables on PostgreSQL. `refresh_400_straggler` materializes the
quote assets (`dagster asset materialize`) with one of 400 symbols hanging 45 s on every
request, default retry settings, and polls the stocks table while it runs: the 399 good rows
should be committed within 90 s of the CLI's
start and the run should end within 180 s. `daily_metrics_5y_500` (data on PostgreSQL)
materializes daily_metrics over five years of 500 tickers from scratch, then again after one
new session for every ticker (incremental); its targets (<= 30 s, <= 3 s) are on the asset's
own computation (its `compute_seconds` metadata), the CLI's figures reported beside them.
Every CLI run is killed after --timeout-seconds (default 900) and then reported as timed out.

    .venv/bin/python -m benchmarks.run                   # every case, a table and JSON
    .venv/bin/python -m benchmarks.run --cases refresh_5000,upsert_50k_postgres
    .venv/bin/python -m benchmarks.run --cases refresh_400_straggler --timeout-seconds 240

--baseline REV compares the code of commit REV (checked out in a git worktree under /tmp)
with the working tree, in one invocation, since this machine's speed varies from day to day:
each chosen case (default: the refresh cases) runs baseline, current, baseline, current, ...
(--repeats times each), every run with its own sandbox, data database and DAGSTER_HOME, and
the table gives the medians and current/baseline ratios of wall and CPU seconds.

    .venv/bin/python -m benchmarks.run --baseline HEAD~1 --cases refresh_5000 --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
API_KEY = "benchmark-key"
REFRESH = ["job", "execute", "-m", "quote_pipeline.definitions", "-j", "refresh_quotes"]
# What the issue's user ran: the three quote assets, materialized from the command line.
MATERIALIZE_QUOTES = [
    "asset", "materialize", "-m", "quote_pipeline.definitions",
    "--select", "tickers,raw_quotes,stocks,quote_snapshots",
]  # fmt: skip
DEFAULT_TIMEOUT_SECONDS = 900.0
MARKET_SIZE = 11_000  # US stocks in a grouped-daily answer
POSTGRES_CASES = (
    "upsert_50k_postgres",
    "refresh_5000_pg_instance",
    "daily_metrics_5y_500",
    "celery_cpu_1_vs_2_workers",
)


@dataclass
class Measurement:
    case: str
    target: str
    wall_seconds: float
    met: bool | None = None
    cpu_seconds: float | None = None  # the CLI process's user + system, its children included
    peak_rss_mb: float | None = None
    api_requests: int | None = None
    http_429: int | None = None
    mapped_steps: int | None = None
    rows: int | None = None
    tickers: int | None = None  # what the naive design's line is extrapolated over
    limit_seconds: float | None = None
    naive_seconds: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Options:
    """What the command line changes in the cases."""

    database_url: str | None = None
    tickers: int | None = None  # overrides the ticker count of the refresh cases
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    straggler_hang_seconds: float = 45.0

    def count(self, default: int) -> int:
        return self.tickers or default


# --- which code runs -----------------------------------------------------------------------


@dataclass(frozen=True)
class CodeTree:
    """Where a run's `quote_pipeline` is imported from: the working tree, or a git worktree
    of the baseline commit. Its CLIs run with the tree as working directory (Dagster puts
    that first on sys.path for `-m`) and first on PYTHONPATH (ahead of the editable install
    of /work/main, which is only a finder at the end of sys.meta_path)."""

    label: str
    root: Path
    commit: str | None = None

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        paths = [str(self.root), *filter(None, [base.get("PYTHONPATH")])]
        return {**base, "PYTHONPATH": os.pathsep.join(paths)}

    def imported_from(self) -> Path:
        """The `quote_pipeline` package a process of this tree imports (checked, not assumed)."""
        completed = subprocess.run(
            [sys.executable, "-c", "import quote_pipeline; print(quote_pipeline.__file__)"],
            env=self.env(os.environ),
            cwd=self.root,
            capture_output=True,
            text=True,
            check=True,
        )
        package = Path(completed.stdout.strip()).resolve().parent
        if not package.is_relative_to(self.root.resolve()):
            raise RuntimeError(f"{self.label}: quote_pipeline came from {package}, not {self.root}")
        return package


CURRENT = CodeTree("current", ROOT)


def git(*args: str, cwd: Path = ROOT) -> str:
    """Read-only git (no optional locks: the index is never rewritten by us)."""
    return subprocess.run(
        ["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def baseline_tree(rev: str) -> CodeTree:
    """A detached worktree of ``rev`` at /tmp/qp-baseline-<hash>, made once and reused."""
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    path = Path(tempfile.gettempdir()) / f"qp-baseline-{commit[:12]}"
    if path.exists():
        if git("rev-parse", "HEAD", cwd=path) != commit or git("status", "--porcelain", cwd=path):
            raise RuntimeError(f"{path} exists but is not a clean checkout of {commit}")
    else:
        # --force: a worktree of this path that was deleted without `git worktree remove`.
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--force", str(path), commit],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
    return CodeTree("baseline", path, commit)


@functools.cache
def client_concurrency(tree: CodeTree) -> int | None:
    """Concurrent requests a run of ``tree`` makes by default (the limit's divisor)."""
    probe = "from quote_pipeline.fmp import ClientSettings; print(ClientSettings().max_concurrency)"
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        env=tree.env(os.environ), cwd=tree.root, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if completed.returncode != 0:
        print(f"  ({tree.label}: no ClientSettings().max_concurrency, so no limit figure)")
        return None
    return int(completed.stdout.strip())


# --- infrastructure ------------------------------------------------------------------------


@contextmanager
def sandbox_process(*flags: str) -> Iterator[str]:
    """`quote-pipeline sandbox` (the working tree's) in its own process, so it does not share
    the run's CPU time."""
    keys = ("--api-key", API_KEY, "--massive-key", API_KEY)
    process = subprocess.Popen(
        [str(BIN / "quote-pipeline"), "sandbox", "--port", "0", *keys, *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if "listening on" not in line:
            raise RuntimeError(f"sandbox did not start: {line!r}")
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        process.terminate()
        process.wait(10)


def sandbox_stats(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/_sandbox/stats", timeout=30).json()


def symbols(count: int) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return ["".join(letters[i // 26**k % 26] for k in (3, 2, 1, 0)) for i in range(count)]


def plain_engine(database_url: str) -> sa.Engine:
    """An engine that only reads or wipes: no schema of any code version is created."""
    url = make_url(database_url)
    connect_args = {"timeout": 5} if url.get_backend_name() == "sqlite" else {}
    return sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)


def wipe_database(database_url: str) -> None:
    """Remove every table (a SQLite file altogether), whichever code version made them."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(url.database + suffix).unlink(missing_ok=True)
        return
    engine = plain_engine(database_url)
    try:
        existing = sa.MetaData()
        existing.reflect(engine)
        existing.drop_all(engine)
    finally:
        engine.dispose()


def fresh_database(
    workdir: Path, database_url: str | None, tickers: int, tree: CodeTree = CURRENT
) -> str:
    """A fresh data database tracking ``tickers`` symbols, made by ``tree``'s own CLI (its
    schema is that code's, however that code creates or migrates it)."""
    url = database_url or f"sqlite:///{workdir / 'bench.db'}"
    wipe_database(url)
    listing = workdir / "tickers.txt"
    listing.write_text("\n".join(symbols(tickers)) + "\n")
    command = [
        str(BIN / "quote-pipeline"), "--database-url", url, "tickers", "import", str(listing),
    ]  # fmt: skip
    completed = subprocess.run(
        command, env=tree.env(os.environ), cwd=tree.root, capture_output=True, text=True
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{tree.label}: seeding failed: {completed.stderr[-2000:]}")
    return url


@dataclass
class CliRun:
    wall_seconds: float
    cpu_seconds: float  # user + system of the CLI processes and their waited-for children
    peak_rss_mb: float  # of the largest process
    exit_code: int  # the worst of the copies
    timed_out: bool


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):  # the group is gone already
        os.killpg(process.pid, sig)


def run_cli(
    command: list[str],
    env: dict[str, str],
    *,
    cwd: Path,
    copies: int = 1,
    timeout_seconds: float | None = None,
    watch: Callable[[float], None] | None = None,
    watch_interval: float = 0.25,
) -> CliRun:
    """Run ``copies`` instances of ``command`` started together (as two runs of two users)
    and wait for them. While they run, ``watch(seconds since the start)`` is called every
    ``watch_interval`` from another thread; past ``timeout_seconds`` each process group is
    sent SIGTERM, then SIGKILL 5 s later."""
    # Dagster logs every event to stderr: a file, never a pipe nobody reads while it runs.
    with ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(copies)]
        done, timed_out = threading.Event(), threading.Event()
        started = time.perf_counter()
        processes = [
            subprocess.Popen(
                command, env=env, cwd=cwd, stdout=log, stderr=log, start_new_session=True
            )
            for log in logs
        ]

        def watchdog() -> None:
            while not done.wait(watch_interval):
                elapsed = time.perf_counter() - started
                if watch:
                    watch(elapsed)
                if timeout_seconds is not None and elapsed > timeout_seconds:
                    timed_out.set()
                    for process in processes:
                        _signal_group(process, signal.SIGTERM)
                    if not done.wait(5):
                        for process in processes:
                            _signal_group(process, signal.SIGKILL)
                    return

        thread = threading.Thread(target=watchdog, daemon=True)
        thread.start()
        peak_rss, cpu, codes = 0.0, 0.0, []
        try:
            for process, log in zip(processes, logs, strict=True):
                # The rusage of this child and of the children it waited for.
                _, status, usage = os.wait4(process.pid, 0)
                process.returncode = os.waitstatus_to_exitcode(status)
                peak_rss = max(peak_rss, usage.ru_maxrss / 1024)
                cpu += usage.ru_utime + usage.ru_stime
                codes.append(process.returncode)
                if process.returncode != 0:
                    log.seek(0)
                    why = "killed at the timeout" if timed_out.is_set() else "failed"
                    sys.stderr.write(f"--- the CLI {why}; the end of its log:\n")
                    sys.stderr.write(log.read().decode(errors="replace")[-3000:])
                    sys.stderr.write("\n---\n")
            wall = time.perf_counter() - started
        finally:
            done.set()
            for process in processes:  # only if interrupted: nothing must outlive us
                if process.returncode is None:
                    _signal_group(process, signal.SIGKILL)
                    process.wait()
            thread.join()
    return CliRun(wall, cpu, peak_rss, max(codes, key=abs), timed_out.is_set())


def dagster_env(
    workdir: Path,
    base_url: str,
    database_url: str,
    *,
    tree: CodeTree = CURRENT,
    instance_url: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment of a user's run of ``tree``: a local SQLite instance (what README's
    "Running it with Dagster" sets up), or with ``instance_url`` the production instance (the
    project's dagster.yaml, its storage on that PostgreSQL database)."""
    home = workdir / "dagster_home"
    home.mkdir(exist_ok=True)
    env = {
        **tree.env(os.environ),
        "DAGSTER_HOME": str(home),
        "FMP_BASE_URL": base_url,
        "FMP_API_KEY": API_KEY,
        # The sandbox speaks Massive's dialect too; used only where a case names it.
        "MASSIVE_BASE_URL": base_url,
        "MASSIVE_API_KEY": API_KEY,
        "QUOTE_PIPELINE_DATABASE_URL": database_url,
        **extra,
    }
    if instance_url:
        shutil.copy(tree.root / "dagster.yaml", home / "dagster.yaml")
        url = make_url(instance_url)
        env |= {
            "DAGSTER_PG_USERNAME": url.username or "",
            "DAGSTER_PG_PASSWORD": url.password or "",
            "DAGSTER_PG_HOST": url.host or "127.0.0.1",
            "DAGSTER_PG_PORT": str(url.port or 5432),
            "DAGSTER_PG_DB": url.database or "",
        }
    else:
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # A user's instance already exists: create its storage now, outside the measured run.
    with open_instance(env):
        pass
    return env


@contextmanager
def open_instance(env: dict[str, str]) -> Iterator[Any]:
    """The Dagster instance of ``env`` (its dagster.yaml reads DAGSTER_PG_* from there)."""
    import dagster as dg

    with mock.patch.dict(os.environ, env), dg.DagsterInstance.get() as instance:
        yield instance


def mapped_steps(env: dict[str, str], step_prefix: str) -> int:
    with open_instance(env) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return 0
        return sum(
            1
            for entry in instance.all_logs(runs[0].run_id)
            if entry.dagster_event
            and entry.dagster_event.event_type_value == "STEP_SUCCESS"
            and (entry.step_key or "").startswith(step_prefix)
        )


def count_rows(database_url: str, table: str) -> int:
    """Rows in ``table`` (0 if there is no such table)."""
    engine = plain_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.scalar(sa.text(f"select count(*) from {table}")) or 0
    except sa.exc.DBAPIError:
        return 0
    finally:
        engine.dispose()


class RowWatch:
    """Polls ``select count(*)`` of a table on its own connection; keeps the first time the
    count reached ``goal``."""

    def __init__(self, database_url: str, table: str, goal: int) -> None:
        self.engine = plain_engine(database_url)
        self.query = sa.text(f"select count(*) from {table}")
        self.goal = goal
        self.reached_at: float | None = None
        self.last_count = 0
        self.polls = 0

    def __call__(self, elapsed: float) -> None:
        if self.reached_at is not None:
            return
        self.polls += 1
        try:
            with self.engine.connect() as conn:
                self.last_count = conn.scalar(self.query) or 0
        except sa.exc.DBAPIError:  # no table yet, or locked for a moment
            return
        if self.last_count >= self.goal:
            self.reached_at = elapsed

    def close(self) -> None:
        self.engine.dispose()


# --- cases ---------------------------------------------------------------------------------


def refresh_case(
    tree: CodeTree,
    name: str,
    target: str,
    *,
    tickers: int,
    latency_ms: float,
    premium: bool,
    timeout_seconds: float,
    target_seconds: float | None = None,
    target_rss_mb: float | None = None,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    sandbox_flags: tuple[str, ...] = (),
    instance_url: str | None = None,
    provider: str = "fmp",
) -> Measurement:
    with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(workdir, database_url, tickers, tree)
        flags = ("--latency-ms", str(latency_ms), *(("--premium",) if premium else ()))
        with sandbox_process(*flags, *sandbox_flags) as base_url:
            env = dagster_env(
                workdir, base_url, url, tree=tree, instance_url=instance_url,
                QUOTE_PIPELINE_QUOTE_PROVIDERS=provider, **(extra_env or {}),
            )  # fmt: skip
            run = run_cli(
                [str(BIN / "dagster"), *REFRESH], env, cwd=tree.root,
                timeout_seconds=timeout_seconds,
            )  # fmt: skip
            stats = sandbox_stats(base_url)
        rows = count_rows(url, "stocks")
        steps = mapped_steps(env, "raw_quotes.fetch_quote_batch[")
    requests_made = stats["requests_total"]
    concurrency = client_concurrency(tree)
    limit = requests_made * latency_ms / 1000 / concurrency if concurrency else None
    met = run.exit_code == 0 and rows == tickers and not run.timed_out
    if target_seconds is not None:
        met = met and run.wall_seconds <= target_seconds
    if target_rss_mb is not None:
        met = met and run.peak_rss_mb <= target_rss_mb
    return Measurement(
        case=name,
        target=target,
        wall_seconds=run.wall_seconds,
        met=met,
        cpu_seconds=run.cpu_seconds,
        peak_rss_mb=run.peak_rss_mb,
        api_requests=requests_made,
        http_429=stats["by_status"].get("429", 0),
        mapped_steps=steps,
        rows=rows,
        tickers=tickers,
        limit_seconds=limit,
        notes={"exit_code": run.exit_code, "timed_out": run.timed_out},
    )


def straggler_case(
    tree: CodeTree,
    *,
    tickers: int,
    hang_seconds: float,
    timeout_seconds: float,
    database_url: str | None = None,
    rows_target_seconds: float = 90,
    end_target_seconds: float = 180,
    latency_ms: float = 50,
) -> Measurement:
    """`dagster asset materialize` of tickers,raw_quotes,stocks,quote_snapshots, one symbol hanging
    ``hang_seconds`` on every request, production retry settings; the stocks table is polled
    (every 0.25 s, its own connection) for the time the good rows are committed."""
    hung = symbols(tickers)[tickers // 2]
    good = tickers - 1
    with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(workdir, database_url, tickers, tree)
        flags = ("--latency-ms", str(latency_ms), "--hang-symbols", hung)
        with sandbox_process(*flags, "--hang-seconds", str(hang_seconds)) as base_url:
            env = dagster_env(workdir, base_url, url, tree=tree)
            watch = RowWatch(url, "stocks", good)
            try:
                run = run_cli(
                    [str(BIN / "dagster"), *MATERIALIZE_QUOTES], env, cwd=tree.root,
                    timeout_seconds=timeout_seconds, watch=watch,
                )  # fmt: skip
            finally:
                watch.close()
            stats = sandbox_stats(base_url)
        rows = count_rows(url, "stocks")
        steps = mapped_steps(env, "raw_quotes.fetch_quote_batch[")
    rows_at = watch.reached_at
    if rows_at is None and rows >= good and not run.timed_out:
        rows_at = run.wall_seconds  # committed between the last poll and the exit
    requests_made = stats["requests_total"]
    hung_requests = sum(1 for r in stats["requests"] if hung in r.get("symbols", []))
    concurrency = client_concurrency(tree)
    rows_met = rows_at is not None and rows_at <= rows_target_seconds
    end_met = not run.timed_out and run.wall_seconds <= end_target_seconds
    return Measurement(
        case="refresh_400_straggler",
        target=f"{good} rows <= {rows_target_seconds:g} s, end <= {end_target_seconds:g} s",
        wall_seconds=run.wall_seconds,
        met=rows_met and end_met,
        cpu_seconds=run.cpu_seconds,
        peak_rss_mb=run.peak_rss_mb,
        api_requests=requests_made,
        http_429=stats["by_status"].get("429", 0),
        mapped_steps=steps,
        rows=rows,
        tickers=tickers,
        limit_seconds=requests_made * latency_ms / 1000 / concurrency if concurrency else None,
        notes={
            "good_rows": good,
            "good_rows_seconds": rows_at,
            "good_rows_target_seconds": rows_target_seconds,
            "good_rows_met": rows_met,
            "run_end_target_seconds": end_target_seconds,
            "run_end_met": end_met,
            "rows_when_last_polled": watch.last_count,
            "polls": watch.polls,
            "timed_out": run.timed_out,
            "timeout_seconds": timeout_seconds,
            "exit_code": run.exit_code,
            "hang_symbol": hung,
            "hang_seconds": hang_seconds,
            "hung_symbol_requests": hung_requests,
        },
    )


def rate_cap_case(
    tree: CodeTree,
    database_url: str | None,
    *,
    timeout_seconds: float,
    tickers: int = 900,
    runs: int = 1,
) -> Measurement:
    """``runs`` refreshes of ``tickers`` started together against a 600/min plan. With two,
    each run has its own process, and only the call count in the database keeps them under
    the cap together."""
    cap = 600
    with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(workdir, database_url, tickers, tree)
        # The sandbox enforces the cap like FMP (429 past it); the client paces to the same cap.
        with sandbox_process("--latency-ms", "50", "--calls-per-minute", str(cap)) as base_url:
            env = dagster_env(workdir, base_url, url, tree=tree, FMP_CALLS_PER_MINUTE=str(cap))
            run = run_cli(
                [str(BIN / "dagster"), *REFRESH], env, cwd=tree.root, copies=runs,
                timeout_seconds=timeout_seconds,
            )  # fmt: skip
            stats = sandbox_stats(base_url)
        rows = count_rows(url, "stocks")
    times = sorted(r["t"] for r in stats["requests"])
    busiest = max((sum(1 for t in times[i:] if t < s + 60) for i, s in enumerate(times)), default=0)
    achieved = busiest / cap
    http_429 = stats["by_status"].get("429", 0)
    # The limit: the first `cap` calls at once, the rest one window later.
    limit = 60.0 * ((len(times) - 1) // cap) if times else None
    return Measurement(
        case=f"rate_cap_600_{tickers}" if runs == 1 else f"rate_cap_600_{runs}x{tickers}",
        target=">= 95% of 600/min, zero 429",
        wall_seconds=run.wall_seconds,
        met=run.exit_code == 0 and rows == tickers and achieved >= 0.95 and http_429 == 0,
        cpu_seconds=run.cpu_seconds,
        peak_rss_mb=run.peak_rss_mb,
        api_requests=len(times),
        http_429=http_429,
        rows=rows,
        tickers=tickers * runs,
        limit_seconds=limit,
        notes={
            "busiest_minute_calls": busiest,
            "cap_achieved": round(achieved, 3),
            "runs_at_once": runs,
            "exit_code": run.exit_code,
            "timed_out": run.timed_out,
        },
    )


def upsert_case(name: str, database_url: str, rows: int = 50_000) -> Measurement:
    """The bulk write alone, against two references: the replaced design's row-by-row writes
    (one transaction per row, timed on a sample) and the floor of moving the same rows into
    an unindexed table (COPY on PostgreSQL, a plain multi-row INSERT on SQLite)."""
    # The working tree's code, in this process (imported here, so that the CLI cases and
    # --baseline do not depend on these names).
    from quote_pipeline.models import Quote
    from quote_pipeline.storage import create_db_engine, write_quotes
    from quote_pipeline.storage.schema import metadata

    engine = create_db_engine(database_url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    now = datetime.now(UTC)
    quotes = [
        Quote(s, Decimal("123.4567") + i, 2**33 + i, Decimal("-0.12"), now, now)
        for i, s in enumerate(symbols(rows))
    ]
    timings = []
    for _ in range(2):  # an insert, then an update of every row
        started = time.perf_counter()
        write_quotes(engine, quotes, written_at=datetime.now(UTC))
        timings.append(time.perf_counter() - started)
    sample = quotes[:2000]
    naive = row_by_row_seconds(engine, sample) * rows / len(sample)
    floor = bulk_load_floor_seconds(engine, quotes)
    engine.dispose()
    target = 1.0 if "postgres" in name else None
    return Measurement(
        case=name,
        target="<= 1 s" if target else "(reported)",
        wall_seconds=max(timings),
        met=max(timings) <= target if target else None,
        rows=rows,
        limit_seconds=floor,
        naive_seconds=naive,
        notes={
            "insert_seconds": round(timings[0], 3),
            "update_seconds": round(timings[1], 3),
            "naive_sample_rows": len(sample),
        },
    )


def row_by_row_seconds(engine: sa.Engine, quotes: list[Any]) -> float:
    """Seconds to write ``quotes`` the way the Celery design did: a statement and a
    transaction per row (here a one-row upsert, as Django's update_or_create would be)."""
    from sqlalchemy.dialects import postgresql, sqlite

    from quote_pipeline.storage.schema import stocks

    dialect_insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    insert = dialect_insert(stocks)
    upsert = insert.on_conflict_do_update(
        index_elements=["ticker"],
        set_={"price": insert.excluded.price, "volume": insert.excluded.volume,
              "quoted_at": insert.excluded.quoted_at, "updated_at": insert.excluded.updated_at},
    )  # fmt: skip
    started = time.perf_counter()
    for q in quotes:
        with engine.begin() as conn:
            conn.execute(
                upsert,
                {"ticker": q.symbol, "price": q.price, "volume": q.volume, "change": q.change,
                 "quoted_at": q.quoted_at, "updated_at": datetime.now(UTC)},
            )  # fmt: skip
    return time.perf_counter() - started


def bulk_load_floor_seconds(engine: sa.Engine, quotes: list[Any]) -> float:
    """Seconds to move ``quotes`` into an empty table with no key, index or conflict check."""
    floor = sa.Table(
        "bench_load_floor",
        sa.MetaData(),
        sa.Column("ticker", sa.String(15)),
        sa.Column("price", sa.Numeric()),
        sa.Column("volume", sa.BigInteger()),
        sa.Column("quoted_at", sa.DateTime(timezone=True)),
    )
    floor.drop(engine, checkfirst=True)
    floor.create(engine)
    try:
        started = time.perf_counter()
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                buffer = io.StringIO()
                writer = csv.writer(buffer)
                for q in quotes:
                    writer.writerow((q.symbol, q.price, q.volume, q.quoted_at.isoformat()))
                buffer.seek(0)
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                cursor.copy_expert("COPY bench_load_floor FROM STDIN WITH (FORMAT csv)", buffer)
                cursor.close()
            else:
                conn.execute(
                    floor.insert(),
                    [
                        {"ticker": q.symbol, "price": q.price, "volume": q.volume,
                         "quoted_at": q.quoted_at}
                        for q in quotes
                    ],
                )  # fmt: skip
        return time.perf_counter() - started
    finally:
        floor.drop(engine)


def backfill_case(
    tree: CodeTree,
    database_url: str | None,
    *,
    timeout_seconds: float,
    tickers: int = 500,
    provider: str = "fmp",
    name: str = "backfill_1y_500",
    target: str = "<= 60 s, one run, 500 requests",
    target_seconds: float = 60,
) -> Measurement:
    """A one-year daily_prices backfill as one run, from ``provider``: FMP asks once per
    ticker, Massive's grouped daily once per session (every ticker in each answer)."""
    # NYSE sessions: the partitions are sessions only (2025-01-01 is a holiday).
    first, last = "2025-01-02", "2025-12-31"
    sessions = 250
    with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(workdir, database_url, tickers, tree)
        # The whole US market answers a grouped-daily request (~11,000 tickers), whatever
        # is tracked: the sandbox's universe is that size, the tracked tickers among them.
        flags = ("--latency-ms", "50", "--universe-size", str(max(tickers, MARKET_SIZE)))
        with sandbox_process(*flags) as base_url:
            env = dagster_env(
                workdir, base_url, url, tree=tree, QUOTE_PIPELINE_HISTORY_PROVIDERS=provider
            )
            command = [
                str(BIN / "dagster"), "asset", "materialize", "-m", "quote_pipeline.definitions",
                "--select", "daily_prices", "--partition-range", f"{first}...{last}",
            ]  # fmt: skip
            run = run_cli(command, env, cwd=tree.root, timeout_seconds=timeout_seconds)
            stats = sandbox_stats(base_url)
        rows = count_rows(url, "daily_prices")
        with open_instance(env) as instance:
            runs = len(instance.get_runs())
    # Whichever daily endpoint the measured code asks (/full before revision 0004).
    eod = sum(
        count
        for path, count in stats["by_endpoint"].items()
        if path.startswith("/stable/historical-price-eod/")
    )
    grouped = sum(
        count for path, count in stats["by_endpoint"].items() if path.startswith("/v2/aggs/grouped")
    )
    expected = sessions if provider == "massive" else tickers
    concurrency = client_concurrency(tree)
    return Measurement(
        case=name,
        target=target,
        wall_seconds=run.wall_seconds,
        met=(
            run.exit_code == 0
            and run.wall_seconds <= target_seconds
            and runs == 1
            and stats["requests_total"] == expected
            and rows == tickers * sessions
        ),
        cpu_seconds=run.cpu_seconds,
        peak_rss_mb=run.peak_rss_mb,
        api_requests=stats["requests_total"],
        rows=rows,
        tickers=tickers,
        limit_seconds=expected * 0.05 / concurrency if concurrency else None,
        notes={
            "runs": runs,
            "eod_requests": eod,
            "grouped_daily_requests": grouped,
            # Massive's free plan allows 5 calls a minute: what the same requests take there.
            "minutes_at_5_per_minute": round(stats["requests_total"] / 5, 1),
            "exit_code": run.exit_code,
            "timed_out": run.timed_out,
        },
    )


def news_case(
    tree: CodeTree, database_url: str | None, *, timeout_seconds: float, tickers: int = 500
) -> Measurement:
    """A first 30-day news fetch for ``tickers`` (the sandbox on a Starter plan, 50 ms)."""
    with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(workdir, database_url, tickers, tree)
        with sandbox_process("--latency-ms", "50", "--news-plan") as base_url:
            env = dagster_env(workdir, base_url, url, tree=tree)
            command = [
                str(BIN / "dagster"), "asset", "materialize", "-m", "quote_pipeline.definitions",
                "--select", "news_articles",
            ]  # fmt: skip
            run = run_cli(command, env, cwd=tree.root, timeout_seconds=timeout_seconds)
            stats = sandbox_stats(base_url)
        articles = count_rows(url, "news_articles")
        links = count_rows(url, "news_article_tickers")
    return Measurement(
        case="news_500_first_30_days",
        target="(reported)",
        wall_seconds=run.wall_seconds,
        met=run.exit_code == 0,
        cpu_seconds=run.cpu_seconds,
        peak_rss_mb=run.peak_rss_mb,
        api_requests=stats["requests_total"],
        rows=articles,
        tickers=tickers,
        notes={"links": links, "exit_code": run.exit_code, "timed_out": run.timed_out},
    )


def corporate_actions_case(
    tree: CodeTree, database_url: str | None, *, timeout_seconds: float, tickers: int = 500
) -> Measurement:
    """A profiles + corporate-actions refresh of ``tickers`` (one request per ticker per
    endpoint, three endpoints; the sandbox at 50 ms), from the command line."""
    with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(workdir, database_url, tickers, tree)
        with sandbox_process("--latency-ms", "50") as base_url:
            env = dagster_env(workdir, base_url, url, tree=tree)
            command = [
                str(BIN / "dagster"), "asset", "materialize", "-m", "quote_pipeline.definitions",
                "--select", "company_profiles,stock_splits,dividends",
            ]  # fmt: skip
            run = run_cli(command, env, cwd=tree.root, timeout_seconds=timeout_seconds)
            stats = sandbox_stats(base_url)
        rows = {t: count_rows(url, t) for t in ("company_profiles", "stock_splits", "dividends")}
    concurrency = client_concurrency(tree)
    return Measurement(
        case="corporate_actions_500",
        target="(reported) 3 requests per ticker",
        wall_seconds=run.wall_seconds,
        met=run.exit_code == 0 and stats["requests_total"] == 3 * tickers,
        cpu_seconds=run.cpu_seconds,
        peak_rss_mb=run.peak_rss_mb,
        api_requests=stats["requests_total"],
        rows=sum(rows.values()),
        tickers=tickers,
        limit_seconds=3 * tickers * 0.05 / concurrency if concurrency else None,
        notes={**rows, "by_endpoint": stats["by_endpoint"], "exit_code": run.exit_code},
    )


# The sessions seed_five_years writes (the last one a Friday), and when they were fetched.
FIVE_YEARS = (date(2021, 11, 1), date(2026, 10, 30))
FIVE_YEARS_FETCHED = datetime(2026, 10, 31, tzinfo=UTC)


def seed_five_years(url: str, tickers: int) -> tuple[int, str]:
    """Five years of as-traded daily rows for ``tickers`` symbols, written straight through
    the storage layer (the sandbox's own generator; not measured). Returns the row count and
    a symbol without splits, which the measured re-basing gives one."""
    from quote_pipeline.fmp.history import parse_daily_rows
    from quote_pipeline.sandbox.corporate import simulated_raw_daily_bars
    from quote_pipeline.storage import create_db_engine
    from quote_pipeline.storage.history import replace_daily_prices

    engine = create_db_engine(url)
    first, last = FIVE_YEARS
    fetched = FIVE_YEARS_FETCHED
    rows = 0
    for name in symbols(tickers):
        served = simulated_raw_daily_bars(name, first, last)
        history = parse_daily_rows(served, name, first, last, fetched)
        rows += replace_daily_prices(engine, [name], first, last, history.bars).rows_written
    return rows, symbols(tickers)[0]


def rebase_case(
    tree: CodeTree, database_url: str | None, *, timeout_seconds: float, tickers: int = 500
) -> Measurement:
    """Re-basing five years of ``tickers`` after one new split: the first derivation of
    daily_prices_adjusted, then one split added, then the measured re-materialization (no
    API call). Both from the command line, as the automation sensor's runs are."""
    with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(workdir, database_url, tickers, tree)
        rows, symbol = seed_five_years(url, tickers)
        env = dagster_env(workdir, "http://127.0.0.1:9", url, tree=tree)
        command = [
            str(BIN / "dagster"), "asset", "materialize", "-m", "quote_pipeline.definitions",
            "--select", "daily_prices_adjusted",
        ]  # fmt: skip
        first = run_cli(command, env, cwd=tree.root, timeout_seconds=timeout_seconds)
        with plain_engine(url).begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO stock_splits (ticker, ex_date, numerator, denominator, "
                    "split_type, fetched_at) VALUES (:t, :d, :n, :m, 'stock-split', :f)"
                ),
                {"t": symbol, "d": "2024-06-10", "n": "4", "m": "1", "f": "2026-10-31 00:00:00"},
            )
        rebase = run_cli(command, env, cwd=tree.root, timeout_seconds=timeout_seconds)
        adjusted = count_rows(url, "daily_prices_adjusted")
    return Measurement(
        case="rebase_5y_500_one_split",
        target="(reported) 0 requests, one ticker rewritten",
        wall_seconds=rebase.wall_seconds,
        met=first.exit_code == 0 and rebase.exit_code == 0 and adjusted == rows,
        cpu_seconds=rebase.cpu_seconds,
        peak_rss_mb=rebase.peak_rss_mb,
        api_requests=0,
        rows=adjusted,
        tickers=tickers,
        notes={
            "first_derivation_seconds": round(first.wall_seconds, 2),
            "first_derivation_cpu_seconds": round(first.cpu_seconds, 2),
            "raw_rows": rows,
            "exit_codes": [first.exit_code, rebase.exit_code],
        },
    )


def seed_next_session(url: str, tickers: int) -> tuple[date, int]:
    """One more session for every ticker, as the daily close brings it: the first NYSE
    session after seed_five_years's (the sandbox's generator again; not measured). Returns
    the session and the rows written."""
    from quote_pipeline.fmp.history import parse_daily_rows
    from quote_pipeline.market_calendar import sessions_between
    from quote_pipeline.sandbox.corporate import simulated_raw_daily_bars
    from quote_pipeline.storage import create_db_engine
    from quote_pipeline.storage.history import replace_daily_prices

    last = FIVE_YEARS[1]
    day = sessions_between(last + timedelta(days=1), last + timedelta(days=10))[0]
    fetched = datetime(day.year, day.month, day.day, 21, 30, tzinfo=UTC)  # after the close
    names = symbols(tickers)
    bars = []
    for name in names:
        served = simulated_raw_daily_bars(name, day, day)
        bars += parse_daily_rows(served, name, day, day, fetched).bars
    engine = create_db_engine(url)
    try:
        return day, replace_daily_prices(engine, names, day, day, bars).rows_written
    finally:
        engine.dispose()


def last_materialization(env: dict[str, str], asset: str) -> tuple[dict[str, Any], dict[str, bool]]:
    """The numeric metadata of ``asset``'s materialization in the instance's latest run ({}
    if that run materialized nothing: it failed), and whether each asset check it evaluated
    passed."""
    import dagster as dg

    with open_instance(env) as instance:
        runs = instance.get_runs(limit=1)
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        if not runs or event is None or event.run_id != runs[0].run_id:
            return {}, {}
        materialization = event.asset_materialization
        metadata = {
            key: value.value
            for key, value in (materialization.metadata if materialization else {}).items()
            if isinstance(value.value, int | float)
        }
        checks = {
            evaluation.check_name: evaluation.passed
            for entry in instance.all_logs(
                runs[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
            if entry.dagster_event
            for evaluation in [entry.dagster_event.event_specific_data]
        }
    return metadata, checks


def daily_metrics_case(
    tree: CodeTree,
    database_url: str,
    *,
    timeout_seconds: float,
    tickers: int = 500,
    scratch_target_seconds: float = 30,
    next_day_target_seconds: float = 3,
) -> Measurement:
    """daily_metrics of five years of ``tickers`` (data on PostgreSQL), from the command line
    as the automation's runs are: computed from scratch, then after one new session for every
    ticker (incremental). The seeding and each derivation of daily_prices_adjusted before the
    two are not measured. `met` judges the asset's own computation (its `compute_seconds`
    metadata: the refresh, without the CLI's start-up, the watchlist charts and the checks),
    and that both phases wrote what they should: as many metrics rows as adjusted rows, every
    ticker recomputed the first time, every ticker extended by one row (none recomputed) the
    second."""
    materialize = [
        str(BIN / "dagster"), "asset", "materialize", "-m", "quote_pipeline.definitions",
        "--select",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(workdir, database_url, tickers, tree)
        raw_rows, _ = seed_five_years(url, tickers)
        env = dagster_env(workdir, "http://127.0.0.1:9", url, tree=tree)

        def run(asset: str) -> tuple[CliRun, dict[str, Any], dict[str, bool]]:
            done = run_cli(
                [*materialize, asset], env, cwd=tree.root, timeout_seconds=timeout_seconds
            )
            return done, *last_materialization(env, asset)

        first_derivation, _, _ = run("daily_prices_adjusted")
        scratch, scratch_meta, scratch_checks = run("daily_metrics")
        scratch_rows = count_rows(url, "daily_metrics")
        scratch_adjusted = count_rows(url, "daily_prices_adjusted")

        day, new_rows = seed_next_session(url, tickers)
        derivation, derivation_meta, _ = run("daily_prices_adjusted")
        next_day, next_meta, next_checks = run("daily_metrics")
        next_rows = count_rows(url, "daily_metrics")
        next_adjusted = count_rows(url, "daily_prices_adjusted")

    scratch_compute = scratch_meta.get("compute_seconds")
    next_compute = next_meta.get("compute_seconds")
    checks = {
        "derivations_exit_0": first_derivation.exit_code == 0 and derivation.exit_code == 0,
        "scratch_exit_0": scratch.exit_code == 0,
        "scratch_rows_equal_adjusted": scratch_rows == scratch_adjusted == raw_rows,
        "scratch_recomputed_every_ticker": scratch_meta.get("tickers_recomputed") == tickers,
        "scratch_asset_checks_passed": bool(scratch_checks) and all(scratch_checks.values()),
        "new_session_rows": new_rows == tickers,
        "adjusted_extended_not_rebased": derivation_meta.get("tickers_extended") == tickers
        and derivation_meta.get("tickers_rebased") == 0,
        "next_day_exit_0": next_day.exit_code == 0,
        "next_day_rows_equal_adjusted": next_rows == next_adjusted == raw_rows + tickers,
        "next_day_extended_every_ticker": next_meta.get("tickers_extended") == tickers,
        "next_day_recomputed_none": next_meta.get("tickers_recomputed") == 0,
        "next_day_rows_written": next_meta.get("rows_written") == tickers,
        "next_day_asset_checks_passed": bool(next_checks) and all(next_checks.values()),
    }
    failed = [name for name, ok in checks.items() if not ok]
    met = (
        not failed
        and scratch_compute is not None
        and scratch_compute <= scratch_target_seconds
        and next_compute is not None
        and next_compute <= next_day_target_seconds
    )
    return Measurement(
        case="daily_metrics_5y_500",
        target=f"compute <={scratch_target_seconds:g} s; +1d <={next_day_target_seconds:g} s",
        wall_seconds=scratch.wall_seconds,
        met=met,
        cpu_seconds=scratch.cpu_seconds,
        peak_rss_mb=scratch.peak_rss_mb,
        api_requests=0,
        rows=scratch_rows,
        tickers=tickers,
        notes={
            "scratch_target_seconds": scratch_target_seconds,
            "next_day_target_seconds": next_day_target_seconds,
            "scratch_compute_seconds": scratch_compute,
            "scratch_asset_seconds": scratch_meta.get("seconds"),  # + charts and checks
            "scratch_rows_written": scratch_meta.get("rows_written"),
            "scratch_tickers_recomputed": scratch_meta.get("tickers_recomputed"),
            "next_day": day.isoformat(),
            "next_day_wall_seconds": round(next_day.wall_seconds, 3),
            "next_day_cpu_seconds": round(next_day.cpu_seconds, 3),
            "next_day_peak_rss_mb": round(next_day.peak_rss_mb, 1),
            "next_day_compute_seconds": next_compute,
            "next_day_asset_seconds": next_meta.get("seconds"),
            "next_day_rows": next_rows,
            "next_day_rows_written": next_meta.get("rows_written"),
            "next_day_rows_removed": next_meta.get("rows_removed"),
            "next_day_tickers_extended": next_meta.get("tickers_extended"),
            "next_day_tickers_recomputed": next_meta.get("tickers_recomputed"),
            "adjusted_rows": next_adjusted,
            "raw_rows": raw_rows + new_rows,
            "first_derivation_seconds": round(first_derivation.wall_seconds, 2),
            "next_day_derivation_seconds": round(derivation.wall_seconds, 2),
            "asset_checks": {"scratch": scratch_checks, "next_day": next_checks},
            "checks_failed": failed,
            "exit_codes": [r.exit_code for r in (first_derivation, scratch, derivation, next_day)],
            "exit_code": max((scratch.exit_code, next_day.exit_code), key=abs),
            "timed_out": scratch.timed_out or next_day.timed_out,
        },
    )


def daily_metrics_summary(m: Measurement) -> str:
    n = m.notes
    verdict = {True: "met", False: "NOT met"}

    def compute(phase: str) -> str:
        seconds, target = n[f"{phase}_compute_seconds"], n[f"{phase}_target_seconds"]
        met = seconds is not None and seconds <= target
        return f"compute {fmt(seconds, '.2f')} s [<= {target:g} s: {verdict[met]}]"

    checks = "all checks passed" if not n["checks_failed"] else f"FAILED {n['checks_failed']}"
    return (
        f"{m.case}: from scratch {fmt(m.rows, 'd')} rows, {compute('scratch')} (CLI wall "
        f"{m.wall_seconds:.2f} s, CPU {fmt(m.cpu_seconds, '.2f')} s, RSS "
        f"{fmt(m.peak_rss_mb, '.0f')} MB); next day {n['next_day']}: "
        f"{fmt(n['next_day_rows_written'], 'd')} rows written, {compute('next_day')} (CLI wall "
        f"{n['next_day_wall_seconds']:.2f} s, CPU {n['next_day_cpu_seconds']:.2f} s, RSS "
        f"{n['next_day_peak_rss_mb']:.0f} MB); {checks}"
    )


def sentiment_case(articles: int = 20_000) -> Measurement:
    """The offline scorer's throughput on sandbox articles (title + two sentences)."""
    from datetime import date, timedelta

    from quote_pipeline.sandbox.news import symbol_news
    from quote_pipeline.sentiment import HeadlineScorer

    rows: list[dict[str, Any]] = []
    day = date(2026, 11, 27)
    names = symbols(400)
    while len(rows) < articles:
        for name in names:
            rows.extend(symbol_news(name, day))
        day -= timedelta(days=1)
    rows = rows[:articles]
    scorer = HeadlineScorer()
    started = time.perf_counter()
    for row in rows:
        scorer.score(row["title"], row["text"])
    seconds = time.perf_counter() - started
    return Measurement(
        case="sentiment_20k_articles",
        target="(reported)",
        wall_seconds=seconds,
        rows=len(rows),
        notes={"articles_per_second": round(len(rows) / seconds)},
    )


def naive_run_seconds(tickers: int, latency_ms: float) -> float:
    """Wall seconds of one run of the replaced design over ``tickers`` tickers."""
    with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(workdir, None, tickers)
        with sandbox_process("--latency-ms", str(latency_ms)) as base_url:
            env = dagster_env(workdir, base_url, url)
            command = [
                str(BIN / "dagster"), "job", "execute", "-m", "benchmarks.naive_design",
                "-j", "naive_refresh",
            ]  # fmt: skip
            run = run_cli(command, env, cwd=ROOT, timeout_seconds=DEFAULT_TIMEOUT_SECONDS)
    if run.exit_code != 0:
        raise RuntimeError("the naive design's run failed")
    return run.wall_seconds


def naive_reference(tickers: int = 12, latency_ms: float = 50) -> tuple[float, float]:
    """(fixed seconds, seconds per ticker) of the replaced design (one multiprocess step per
    ticker), from runs at ``tickers`` and twice as many: a line to extrapolate along."""
    small = naive_run_seconds(tickers, latency_ms)
    large = naive_run_seconds(2 * tickers, latency_ms)
    per_ticker = (large - small) / tickers
    return small - per_ticker * tickers, per_ticker


def benchmark_postgres_database() -> str | None:
    """A scratch database on the PostgreSQL server the tests use (found or started the same
    way); None, with a note, when there is none."""
    from quote_pipeline_tests.support.postgres import (
        PostgresUnavailable,
        acquire_postgres,
        create_database,
    )

    try:
        server = acquire_postgres()
    except PostgresUnavailable as exc:
        print(f"no PostgreSQL, so no PostgreSQL cases: {exc}")
        return None
    return create_database(server.url, "quote_pipeline_benchmark")


def scratch_database(postgres_url: str, name: str) -> str:
    """A new, empty database ``name`` on the server of ``postgres_url``."""
    from quote_pipeline_tests.support.postgres import create_database

    server = make_url(postgres_url).set(database="postgres")
    return create_database(server.render_as_string(hide_password=False), name)


CELERY_CASE = "celery_cpu_1_vs_2_workers"


def last_run_outputs(env: dict[str, str]) -> tuple[str, dict[str, dict[str, Any]]]:
    """The latest run's status and each step's output metadata (numbers only)."""
    with open_instance(env) as instance:
        run = instance.get_runs(limit=1)[0]
        outputs: dict[str, dict[str, Any]] = {}
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is not None and event.event_type_value == "STEP_OUTPUT":
                metadata = event.step_output_data.metadata
                outputs[entry.step_key or ""] = {k: v.value for k, v in metadata.items()}
        return run.status.value, outputs


def celery_cpu_case(
    postgres_url: str,
    *,
    timeout_seconds: float,
    chunks: int = 12,
    tickers_per_chunk: int = 800,
    trivial_steps: tuple[int, int] = (2, 42),
) -> Measurement:
    """A CPU-bound job (benchmarks/celery_cpu.py: daily_metrics' computation over ``chunks``
    mapped steps of ``tickers_per_chunk`` synthetic five-year histories, ~1 s of CPU each) on
    the celery executor with one `quote-pipeline worker` (one pool process), then two, beside
    the in-process executor; and what a step costs on each executor: ``trivial_steps`` (a few,
    then many) mapped steps that do nothing, the difference divided by the extra steps.

    Every run is `dagster job execute` in a fresh process on an instance on PostgreSQL (the
    production layout), with a private redis-server as broker and result backend."""
    from quote_pipeline_tests.celery.support import WorkerPool, celery_deployment, start_redis

    server_url = make_url(postgres_url).set(database="postgres")
    with tempfile.TemporaryDirectory(prefix="qp-bench-celery-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        redis_server = start_redis(workdir / "redis")
        stack.callback(redis_server.stop)
        deployment = stack.enter_context(
            celery_deployment(
                workdir / "deployment",
                postgres_server_url=server_url.render_as_string(hide_password=False),
                broker_url=redis_server.url(0),
                backend_url=redis_server.url(1),
                # The workers import benchmarks.celery_cpu from the working tree.
                env={"PYTHONPATH": str(ROOT)},
            )
        )
        env = deployment.env
        with open_instance(env):  # the instance's storage exists before the first timing
            pass
        (workdir / "logs").mkdir()
        pool = WorkerPool(env, workdir / "logs", concurrency=1, queues="dagster")
        stack.callback(pool.stop)
        runs: dict[str, dict[str, Any]] = {}

        def timed(label: str, job: str, executor: str, steps: int, tickers: int = 0) -> None:
            config = {
                "execution": {"config": {executor: {}}},
                "ops": {"plan_chunks": {"config": {"chunks": steps, "tickers_per_chunk": tickers}}},
            }
            path = workdir / f"{label}.yaml"
            path.write_text(json.dumps(config))  # JSON is YAML
            command = [
                str(BIN / "dagster"), "job", "execute", "-m", "benchmarks.celery_cpu",
                "-j", job, "-c", str(path),
            ]  # fmt: skip
            print(f"  {label} ...", flush=True)
            run = run_cli(command, env, cwd=ROOT, timeout_seconds=timeout_seconds)
            status, outputs = last_run_outputs(env)
            runs[label] = {
                "wall_seconds": round(run.wall_seconds, 2),
                "exit_code": run.exit_code,
                "timed_out": run.timed_out,
                "status": status,
                "checksum": outputs.get("checksum", {}).get("checksum"),
                "step_cpu_seconds": [
                    o["cpu_seconds"] for k, o in outputs.items() if k.startswith("metrics_chunk[")
                ],
            }
            print(f"    wall {run.wall_seconds:.2f} s, {status}", flush=True)

        small, large = trivial_steps
        timed("cpu_in_process", "cpu_metrics", "in_process", chunks, tickers_per_chunk)
        for steps in (small, large):
            timed(f"trivial_{steps}_in_process", "trivial_steps", "in_process", steps)
        pool.start("bench1")
        timed("cpu_celery_1_worker", "cpu_metrics", "celery", chunks, tickers_per_chunk)
        for steps in (small, large):
            timed(f"trivial_{steps}_celery_1_worker", "trivial_steps", "celery", steps)
        pool.start("bench2")
        timed("cpu_celery_2_workers", "cpu_metrics", "celery", chunks, tickers_per_chunk)
        for steps in (small, large):
            timed(f"trivial_{steps}_celery_2_workers", "trivial_steps", "celery", steps)

    def per_step(executor: str) -> float:
        extra = runs[f"trivial_{large}_{executor}"]["wall_seconds"]
        base = runs[f"trivial_{small}_{executor}"]["wall_seconds"]
        return round((extra - base) / (large - small), 3)

    one, two = runs["cpu_celery_1_worker"], runs["cpu_celery_2_workers"]
    step_cpu = [c for r in runs.values() for c in r["step_cpu_seconds"]]
    ok = all(r["status"] == "SUCCESS" and r["exit_code"] == 0 for r in runs.values())
    checksums = {r["checksum"] for r in runs.values() if r["checksum"] is not None}
    return Measurement(
        case=CELERY_CASE,
        target="(reported)",
        wall_seconds=two["wall_seconds"],
        met=None if ok and len(checksums) == 1 else False,
        api_requests=0,
        mapped_steps=chunks,
        notes={
            "chunks": chunks,
            "tickers_per_chunk": tickers_per_chunk,
            "median_step_cpu_seconds": round(statistics.median(step_cpu), 3) if step_cpu else None,
            "in_process_wall_seconds": runs["cpu_in_process"]["wall_seconds"],
            "one_worker_wall_seconds": one["wall_seconds"],
            "two_workers_wall_seconds": two["wall_seconds"],
            "speedup_two_vs_one_worker": round(one["wall_seconds"] / two["wall_seconds"], 2),
            "per_step_seconds": {
                "in_process": per_step("in_process"),
                "celery_1_worker": per_step("celery_1_worker"),
                "celery_2_workers": per_step("celery_2_workers"),
            },
            "trivial_steps": [small, large],
            "same_checksum_everywhere": len(checksums) == 1,
            "runs": runs,
            "exit_code": 0 if ok else 1,
            "timed_out": any(r["timed_out"] for r in runs.values()),
        },
    )


def celery_summary(m: Measurement) -> str:
    n = m.notes
    step = n["per_step_seconds"]
    return (
        f"{m.case}: {n['chunks']} steps of ~{fmt(n['median_step_cpu_seconds'], '.2f')} s CPU: "
        f"in process {n['in_process_wall_seconds']:.2f} s, celery 1 worker "
        f"{n['one_worker_wall_seconds']:.2f} s, 2 workers {n['two_workers_wall_seconds']:.2f} s "
        f"(speed-up {n['speedup_two_vs_one_worker']:.2f}x); a step costs "
        f"{step['in_process'] * 1000:.0f} ms in process, "
        f"{step['celery_1_worker'] * 1000:.0f} ms on celery (1 worker), "
        f"{step['celery_2_workers'] * 1000:.0f} ms of wall per step with 2 workers; "
        f"checksums {'equal' if n['same_checksum_everywhere'] else 'DIFFER'}"
    )


# --- driver --------------------------------------------------------------------------------

Case = Callable[[CodeTree], Measurement]


def all_cases(options: Options, postgres_url: str | None) -> dict[str, Case]:
    """Each case as one run of the code of a tree (the working tree, or a baseline)."""
    database_url, timeout = options.database_url, options.timeout_seconds

    def refresh(name: str, target: str, tickers: int, **kwargs: Any) -> Case:
        return lambda tree: refresh_case(
            tree, name, target, tickers=options.count(tickers), latency_ms=50,
            timeout_seconds=timeout, database_url=database_url, **kwargs,
        )  # fmt: skip

    cases: dict[str, Case] = {
        "refresh_500": refresh("refresh_500", "(reported)", 500, premium=False),
        "refresh_5000": refresh(
            "refresh_5000", "<= 12 s", 5000, premium=False, target_seconds=12
        ),
        # The same 5,000 tickers from Massive's snapshot (many tickers per request).
        "massive_refresh_5000": refresh(
            "massive_refresh_5000", "<= 12 s, <= 10 requests", 5000, premium=False,
            target_seconds=12, provider="massive",
        ),
        "refresh_50000_batch": refresh(
            "refresh_50000_batch", "<= 20 s, RSS <= 400 MB", 50_000, premium=True,
            target_seconds=20, target_rss_mb=400,
        ),
        "refresh_1000_faults": refresh(
            "refresh_1000_faults", "all rows, retries made", 1000, premium=False,
            sandbox_flags=(
                "--server-error-rate", "0.10", "--rate-limit-rate", "0.05", "--seed", "1",
            ),
            extra_env={"QUOTE_PIPELINE_FETCH_RETRY_DELAY_SECONDS": "5"},
        ),
        "refresh_400_straggler": lambda tree: straggler_case(
            tree, tickers=options.count(400), hang_seconds=options.straggler_hang_seconds,
            timeout_seconds=timeout, database_url=database_url,
        ),
        "rate_cap_600_900": lambda tree: rate_cap_case(
            tree, database_url, timeout_seconds=timeout
        ),
        "rate_cap_600_2x300": lambda tree: rate_cap_case(
            tree, database_url, timeout_seconds=timeout, tickers=300, runs=2
        ),
        "upsert_50k_sqlite": lambda tree: upsert_case(
            "upsert_50k_sqlite", f"sqlite:///{tempfile.mkdtemp(prefix='qp-bench-')}/u.db"
        ),
        "backfill_1y_500": lambda tree: backfill_case(
            tree, database_url, timeout_seconds=timeout
        ),
        # 5,000 tickers x 250 sessions: FMP one request per ticker, Massive one per session.
        "backfill_1y_5000_fmp": lambda tree: backfill_case(
            tree, database_url, timeout_seconds=timeout, tickers=options.count(5000),
            name="backfill_1y_5000_fmp", target="(reported) 5,000 requests",
            target_seconds=timeout,
        ),
        "backfill_1y_5000_massive": lambda tree: backfill_case(
            tree, database_url, timeout_seconds=timeout, tickers=options.count(5000),
            provider="massive", name="backfill_1y_5000_massive",
            target="250 grouped-daily requests, one run", target_seconds=timeout,
        ),
        "news_500_first_30_days": lambda tree: news_case(
            tree, database_url, timeout_seconds=timeout, tickers=options.count(500)
        ),
        "sentiment_20k_articles": lambda tree: sentiment_case(),
        "corporate_actions_500": lambda tree: corporate_actions_case(
            tree, database_url, timeout_seconds=timeout, tickers=options.count(500)
        ),
        "rebase_5y_500_one_split": lambda tree: rebase_case(
            tree, database_url, timeout_seconds=timeout, tickers=options.count(500)
        ),
    }  # fmt: skip
    if postgres_url:
        cases["upsert_50k_postgres"] = lambda tree: upsert_case("upsert_50k_postgres", postgres_url)
        # Production: the project's dagster.yaml (run, event-log and schedule storage on
        # PostgreSQL) and the stocks tables on PostgreSQL too. A new instance database for
        # every run (so for each side of a --baseline comparison).
        cases["refresh_5000_pg_instance"] = lambda tree: refresh_case(
            tree, "refresh_5000_pg_instance", "<= 12 s", tickers=options.count(5000),
            latency_ms=50, premium=False, target_seconds=12, timeout_seconds=timeout,
            database_url=postgres_url,
            instance_url=scratch_database(postgres_url, "quote_pipeline_benchmark_instance"),
        )  # fmt: skip
        # The data on PostgreSQL (the production layout); the instance a local SQLite one.
        cases["daily_metrics_5y_500"] = lambda tree: daily_metrics_case(
            tree, postgres_url, timeout_seconds=timeout, tickers=options.count(500)
        )
        # The celery executor (a private Redis, `quote-pipeline worker` processes, the instance
        # on PostgreSQL): the working tree's code only.
        cases[CELERY_CASE] = lambda tree: celery_cpu_case(postgres_url, timeout_seconds=timeout)
    return cases


def fmt(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def cpu_per_1k(m: Measurement) -> float | None:
    if m.cpu_seconds is None or not m.tickers:
        return None
    return m.cpu_seconds / m.tickers * 1000


def print_table(results: list[Measurement]) -> None:
    header = (
        f"{'case':<26}{'target':<32}{'wall s':>8}{'met':>6}{'CPU s':>8}{'CPU/1k':>8}"
        f"{'RSS MB':>8}{'requests':>9}{'429':>6}{'steps':>6}{'limit s':>9}{'naive s':>10}"
        f"{'vs naive':>9}{'vs limit':>9}"
    )
    print(header)
    print("-" * len(header))
    for m in results:
        vs_naive = m.naive_seconds / m.wall_seconds if m.naive_seconds else None
        vs_limit = m.wall_seconds / m.limit_seconds if m.limit_seconds else None
        met = {True: "yes", False: "NO", None: "-"}[m.met]
        print(
            f"{m.case:<26}{m.target:<32}{m.wall_seconds:>8.2f}{met:>6}"
            f"{fmt(m.cpu_seconds, '.2f'):>8}{fmt(cpu_per_1k(m), '.2f'):>8}"
            f"{fmt(m.peak_rss_mb, '.0f'):>8}"
            f"{fmt(m.api_requests, 'd'):>9}{fmt(m.http_429, 'd'):>6}{fmt(m.mapped_steps, 'd'):>6}"
            f"{fmt(m.limit_seconds, '.2f'):>9}{fmt(m.naive_seconds, '.0f'):>10}"
            f"{fmt(vs_naive, '.0f'):>8}x{fmt(vs_limit, '.1f'):>8}x"
        )
    for m in results:
        if m.notes.get("timed_out") and m.case != "refresh_400_straggler":
            print(f"{m.case}: TIMED OUT, killed at the hard timeout ({m.wall_seconds:.0f} s)")
        if m.case == "refresh_400_straggler":
            print(straggler_summary(m))
        if m.case == "daily_metrics_5y_500":
            print(daily_metrics_summary(m))
        if m.case == CELERY_CASE and "error" not in m.notes:
            print(celery_summary(m))


def straggler_summary(m: Measurement) -> str:
    n = m.notes
    verdict = {True: "met", False: "NOT MET"}
    if n["good_rows_seconds"] is None:
        rows = (
            f"{n['good_rows']} good rows NOT committed "
            f"({n['rows_when_last_polled']} when last polled)"
        )
    else:
        rows = f"{n['good_rows']} good rows committed at {n['good_rows_seconds']:.1f} s"
    if n["timed_out"]:
        end = f"run TIMED OUT, killed after {m.wall_seconds:.1f} s"
    else:
        end = f"run ended at {m.wall_seconds:.1f} s (exit {n['exit_code']})"
    return (
        f"{m.case} ({n['hang_symbol']} hangs {n['hang_seconds']:g} s per request, "
        f"{n['hung_symbol_requests']} requests for it): "
        f"{rows} [target <= {n['good_rows_target_seconds']:g} s: {verdict[n['good_rows_met']]}]; "
        f"{end} [target <= {n['run_end_target_seconds']:g} s: {verdict[n['run_end_met']]}]"
    )


def summarize(runs: list[Measurement]) -> dict[str, Any]:
    """Medians over the runs of one side of a comparison (failed-to-start runs left out)."""
    ok = [m for m in runs if "error" not in m.notes]

    def median(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    rows_at = [m.notes.get("good_rows_seconds") for m in ok]
    return {
        "runs": len(ok),
        "errors": len(runs) - len(ok),
        "met": sum(1 for m in ok if m.met),
        "timeouts": sum(1 for m in ok if m.notes.get("timed_out")),
        "nonzero_exits": sum(
            1 for m in ok if m.notes.get("exit_code") and not m.notes.get("timed_out")
        ),
        "wall_seconds": median([m.wall_seconds for m in ok]),
        "wall_seconds_each": [round(m.wall_seconds, 3) for m in ok],
        "cpu_seconds": median([m.cpu_seconds for m in ok]),
        "cpu_seconds_each": [fmt(m.cpu_seconds, ".3f") for m in ok],
        "cpu_seconds_per_1k_tickers": median([cpu_per_1k(m) for m in ok]),
        "peak_rss_mb": median([m.peak_rss_mb for m in ok]),
        "api_requests": median([m.api_requests for m in ok]),
        "limit_seconds": median([m.limit_seconds for m in ok]),
        # The straggler case: None where the good rows never came (timed out).
        "good_rows_seconds": median(rows_at) if None not in rows_at else None,
        "tickers": ok[0].tickers if ok else None,
    }


def ratio(current: float | None, baseline: float | None) -> float | None:
    return current / baseline if current is not None and baseline else None


def compare(results: list[Measurement]) -> list[dict[str, Any]]:
    comparison = []
    for case in dict.fromkeys(m.case for m in results):
        sides = {
            label: summarize([m for m in results if m.case == case and m.notes["code"] == label])
            for label in ("baseline", "current")
        }
        base, cur = sides["baseline"], sides["current"]
        keys = ("wall_seconds", "cpu_seconds", "cpu_seconds_per_1k_tickers", "good_rows_seconds")
        comparison.append(
            {
                "case": case,
                **sides,
                "ratio_current_to_baseline": {k: ratio(cur[k], base[k]) for k in keys},
            }
        )
    return comparison


def print_comparison(comparison: list[dict[str, Any]], baseline: CodeTree) -> None:
    header = (
        f"{'case':<26}{'code':<18}{'runs':>5}{'met':>5}{'wall s':>9}{'CPU s':>9}"
        f"{'CPU s/1k':>10}{'RSS MB':>8}{'requests':>9}{'limit s':>9}{'rows at s':>10}"
        f"  wall s, each"
    )
    print(header)
    print("-" * len(header))
    label = {"baseline": f"baseline {baseline.commit[:9] if baseline.commit else ''}",
             "current": "current"}  # fmt: skip
    for entry in comparison:
        for side in ("baseline", "current"):
            s = entry[side]
            timeouts = f" ({s['timeouts']} timed out)" if s["timeouts"] else ""
            errors = f" ({s['errors']} failed to run)" if s["errors"] else ""
            if s["nonzero_exits"]:
                errors += f" ({s['nonzero_exits']} exited non-zero)"
            rows_at = s["good_rows_seconds"]
            rows_text = "-" if "straggler" not in entry["case"] else fmt(rows_at, ".1f")
            if "straggler" in entry["case"] and rows_at is None:
                rows_text = "never"
            print(
                f"{entry['case']:<26}{label[side]:<18}{s['runs']:>5}{s['met']:>5}"
                f"{fmt(s['wall_seconds'], '.2f'):>9}{fmt(s['cpu_seconds'], '.2f'):>9}"
                f"{fmt(s['cpu_seconds_per_1k_tickers'], '.2f'):>10}"
                f"{fmt(s['peak_rss_mb'], '.0f'):>8}{fmt(s['api_requests'], '.0f'):>9}"
                f"{fmt(s['limit_seconds'], '.2f'):>9}{rows_text:>10}  "
                f"{', '.join(f'{w:.2f}' for w in s['wall_seconds_each'])}{timeouts}{errors}"
            )
        r = entry["ratio_current_to_baseline"]
        print(
            f"{'':<26}{'current/baseline':<18}{'':>10}"
            f"{fmt(r['wall_seconds'], '.3f'):>8}x{fmt(r['cpu_seconds'], '.3f'):>8}x"
            f"{fmt(r['cpu_seconds_per_1k_tickers'], '.3f'):>9}x{'':>26}"
            f"{fmt(r['good_rows_seconds'], '.3f') + 'x' if r['good_rows_seconds'] else '-':>10}"
        )
        if entry["current"]["timeouts"] or entry["baseline"]["timeouts"]:
            print(f"{'':<26}(a timed-out run counts at its kill time: a ratio is a bound)")


def progress_line(m: Measurement) -> str:
    if "error" in m.notes:
        return f"FAILED TO RUN: {m.notes['error']}"
    met = {True: "met", False: "NOT met", None: "-"}[m.met]
    extra = ""
    if m.case == "refresh_400_straggler":
        at = m.notes["good_rows_seconds"]
        extra = f", good rows at {fmt(at, '.1f')} s" if at is not None else ", good rows never"
    if m.case == "daily_metrics_5y_500":
        extra = (
            f", compute {fmt(m.notes['scratch_compute_seconds'], '.2f')} s, next day compute "
            f"{fmt(m.notes['next_day_compute_seconds'], '.2f')} s"
        )
    if m.notes.get("timed_out"):
        extra += ", TIMED OUT"
    return (
        f"wall {m.wall_seconds:.2f} s, CPU {fmt(m.cpu_seconds, '.2f')} s, "
        f"{fmt(m.api_requests, 'd')} requests, rows {fmt(m.rows, 'd')}{extra}, "
        f"exit {m.notes.get('exit_code', '-')}, target {met}"
    )


def run_comparison(
    cases: dict[str, Case], chosen: list[str], baseline: CodeTree, repeats: int
) -> list[Measurement]:
    """Each case ``repeats`` times on each side, alternating baseline and current."""
    results = []
    for name in chosen:
        for repeat in range(1, repeats + 1):
            for tree in (baseline, CURRENT):
                print(f"running {name} [{tree.label} {repeat}/{repeats}] ...", flush=True)
                try:
                    measurement = cases[name](tree)
                except Exception as exc:  # one broken run must not lose the others
                    traceback.print_exc()
                    measurement = Measurement(
                        name, "", 0.0, met=False, notes={"error": repr(exc)[:500]}
                    )
                measurement.notes |= {"code": tree.label, "commit": tree.commit, "repeat": repeat}
                print(f"  {progress_line(measurement)}", flush=True)
                results.append(measurement)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", help="comma-separated case names (default: all; with "
                        "--baseline, the refresh_* cases)")  # fmt: skip
    parser.add_argument("--database-url", help="for the refresh cases (default: a SQLite file)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("QUOTE_PIPELINE_BENCH_POSTGRES_URL"),
        help="a PostgreSQL database the upsert case may drop and create tables in (default: "
        "a database made for the run on the server the tests use)",
    )
    parser.add_argument("--json", default="benchmarks/results/latest.json")
    parser.add_argument("--naive-tickers", type=int, default=12)
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="compare with the code of this commit (HEAD~1, a hash ...), run side by side "
        "with the working tree; no naive reference, no upsert cases",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="with --baseline: runs of each side (default 3)"
    )
    parser.add_argument(
        "--tickers",
        type=int,
        help="override the ticker count of the refresh_* cases (for trying the harness out; "
        "their targets are for the named sizes)",
    )
    parser.add_argument(
        "--timeout-seconds",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="kill a CLI run after this long and report it timed out (default 900)",
    )
    parser.add_argument(
        "--straggler-hang-seconds",
        type=float,
        default=45.0,
        help="how long refresh_400_straggler's symbol hangs per request (default 45)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    options = Options(
        database_url=args.database_url,
        tickers=args.tickers,
        timeout_seconds=args.timeout_seconds,
        straggler_hang_seconds=args.straggler_hang_seconds,
    )
    requested = args.cases.split(",") if args.cases else None
    postgres_url = args.postgres_url
    if not postgres_url and (
        (requested is None and not args.baseline) or set(requested or ()) & set(POSTGRES_CASES)
    ):
        postgres_url = benchmark_postgres_database()
    cases = all_cases(options, postgres_url)
    if requested is None:
        requested = [c for c in cases if c.startswith("refresh")] if args.baseline else list(cases)
    unknown = set(requested) - set(cases)
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; known: {sorted(cases)}")
    if args.tickers:
        print(f"refresh cases with {args.tickers} tickers (--tickers): targets not comparable")

    machine: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if args.baseline:
        in_process = [c for c in requested if c.startswith("upsert") or c == CELERY_CASE]
        if in_process:
            parser.error(f"{in_process} run in this process (the working tree's code only)")
        baseline = baseline_tree(args.baseline)
        for tree in (baseline, CURRENT):
            print(f"{tree.label}: {tree.commit or 'working tree'}; imports {tree.imported_from()}")
        results = run_comparison(cases, requested, baseline, args.repeats)
        comparison = compare(results)
        print()
        print_comparison(comparison, baseline)
        for m in results:
            if m.case == "refresh_400_straggler" and "error" not in m.notes:
                print(f"[{m.notes['code']} {m.notes['repeat']}] {straggler_summary(m)}")
        dirty = git("status", "--porcelain", "-uno", "--", "quote_pipeline")
        document = {
            "machine": machine,
            "baseline": {
                "rev": args.baseline,
                "commit": baseline.commit,
                "worktree": str(baseline.root),
            },
            "current": {"head": git("rev-parse", "HEAD"), "uncommitted_changes": bool(dirty)},
            "repeats": args.repeats,
            "comparison": comparison,
            "results": [asdict(m) for m in results],
        }
    else:
        naive: tuple[float, float] | None = None
        if any(c.startswith(("refresh", "rate", "backfill")) for c in requested):
            n = args.naive_tickers
            print(f"naive design: {n} and {2 * n} tickers, one multiprocess step each ...")
            naive = naive_reference(n)
            print(f"  {naive[0]:.1f} s fixed + {naive[1]:.2f} s per ticker (extrapolated linearly)")
        results = []
        for name in requested:
            print(f"running {name} ...", flush=True)
            measurement = cases[name](CURRENT)
            if naive and measurement.tickers:
                # One multiprocess step per ticker, one request each; for the backfill this is
                # a lower bound (a default backfill would also launch one run per partition).
                measurement.naive_seconds = naive[0] + naive[1] * measurement.tickers
            results.append(measurement)
        machine |= {
            "naive_fixed_seconds": round(naive[0], 2) if naive else None,
            "naive_seconds_per_ticker": round(naive[1], 3) if naive else None,
        }
        print()
        print_table(results)
        document = {"machine": machine, "results": [asdict(m) for m in results]}
    print(f"\nmachine: {machine}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, default=str))
    print(f"figures written to {out}")
    current = [m for m in results if m.notes.get("code", "current") == "current"]
    return 0 if all(m.met is not False for m in current) else 1


if __name__ == "__main__":
    sys.exit(main())
