"""Benchmarks: the quote refresh (and history backfill) measured as a user runs them.

Each case starts the FMP sandbox in its own process (latency and plan as the case says), seeds
N tickers in a fresh database, and times the Dagster CLI in a fresh process from its start to
its exit (the rows are committed by then). It records wall time, the run process's peak RSS,
API requests, 429s, and mapped steps, and compares each case with two references: the naive
design (one mapped step per ticker, multiprocess executor; run at a small N, extrapolated)
and the theoretical limit (requests x latency / concurrency, or the rate cap). The bulk upsert
is timed alone, against row-by-row writes (the replaced design) and against moving the same
rows into an unindexed table (its floor).

The refresh cases run on a local SQLite instance, as README's "Running it with Dagster" sets
one up; `refresh_5000_pg_instance` repeats the 5,000-ticker case on the production instance
(the project's dagster.yaml, storage on PostgreSQL), with the stocks tables on PostgreSQL.

    .venv/bin/python -m benchmarks.run                   # every case, a table and JSON
    .venv/bin/python -m benchmarks.run --cases refresh_5000,upsert_50k_postgres
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import requests
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from quote_pipeline.fmp import ClientSettings
from quote_pipeline.models import Quote
from quote_pipeline.storage import add_tickers, create_db_engine, write_quotes
from quote_pipeline.storage.schema import metadata, stocks

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
API_KEY = "benchmark-key"
CLIENT_CONCURRENCY = ClientSettings().max_concurrency  # what a run uses by default
REFRESH = ["job", "execute", "-m", "quote_pipeline.definitions", "-j", "refresh_quotes"]


@dataclass
class Measurement:
    case: str
    target: str
    wall_seconds: float
    met: bool | None = None
    peak_rss_mb: float | None = None
    api_requests: int | None = None
    http_429: int | None = None
    mapped_steps: int | None = None
    rows: int | None = None
    tickers: int | None = None  # what the naive design's line is extrapolated over
    limit_seconds: float | None = None
    naive_seconds: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)


# --- infrastructure ------------------------------------------------------------------------


@contextmanager
def sandbox_process(*flags: str) -> Iterator[str]:
    """`quote-pipeline sandbox` in its own process, so it does not share the run's CPU time."""
    process = subprocess.Popen(
        [str(BIN / "quote-pipeline"), "sandbox", "--port", "0", "--api-key", API_KEY, *flags],
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


def fresh_database(workdir: Path, database_url: str | None, tickers: int) -> str:
    url = database_url or f"sqlite:///{workdir / 'bench.db'}"
    engine = create_db_engine(url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    add_tickers(engine, symbols(tickers), now=datetime.now(UTC))
    engine.dispose()
    return url


def run_measured(
    command: list[str], env: dict[str, str], *, copies: int = 1
) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) of the largest process, and the worst exit code of
    ``copies`` instances of ``command`` started together (as two runs of two users)."""
    # Dagster logs every event to stderr: a file, never a pipe nobody reads while it runs.
    with ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(copies)]
        started = time.perf_counter()
        processes = [subprocess.Popen(command, env=env, stdout=log, stderr=log) for log in logs]
        peak_rss, codes = 0.0, []
        for process, log in zip(processes, logs, strict=True):
            _, status, usage = os.wait4(process.pid, 0)  # the rusage of this child alone
            process.returncode = os.waitstatus_to_exitcode(status)
            peak_rss = max(peak_rss, usage.ru_maxrss / 1024)
            codes.append(process.returncode)
            if process.returncode != 0:
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace")[-3000:])
        wall = time.perf_counter() - started
    return wall, peak_rss, max(codes, key=abs)


def dagster_env(
    workdir: Path,
    base_url: str,
    database_url: str,
    *,
    instance_url: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment of a user's run: a local SQLite instance (what README's "Running it
    with Dagster" sets up), or with ``instance_url`` the production instance (the project's
    dagster.yaml, its storage on that PostgreSQL database)."""
    home = workdir / "dagster_home"
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "FMP_BASE_URL": base_url,
        "FMP_API_KEY": API_KEY,
        "QUOTE_PIPELINE_DATABASE_URL": database_url,
        **extra,
    }
    if instance_url:
        shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
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
        (run,) = instance.get_runs(limit=1)
        return sum(
            1
            for entry in instance.all_logs(run.run_id)
            if entry.dagster_event
            and entry.dagster_event.event_type_value == "STEP_SUCCESS"
            and (entry.step_key or "").startswith(step_prefix)
        )


def count_rows(database_url: str, table: str) -> int:
    engine = create_db_engine(database_url)
    with engine.connect() as conn:
        count = conn.scalar(sa.text(f"select count(*) from {table}")) or 0
    engine.dispose()
    return count


# --- cases ---------------------------------------------------------------------------------


def refresh_case(
    name: str,
    target: str,
    *,
    tickers: int,
    latency_ms: float,
    premium: bool,
    target_seconds: float | None = None,
    target_rss_mb: float | None = None,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    sandbox_flags: tuple[str, ...] = (),
    instance_url: str | None = None,
) -> Measurement:
    with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(workdir, database_url, tickers)
        flags = ("--latency-ms", str(latency_ms), *(("--premium",) if premium else ()))
        with sandbox_process(*flags, *sandbox_flags) as base_url:
            env = dagster_env(
                workdir, base_url, url, instance_url=instance_url, **(extra_env or {})
            )
            wall, rss, code = run_measured([str(BIN / "dagster"), *REFRESH], env)
            stats = sandbox_stats(base_url)
        rows = count_rows(url, "stocks")
        steps = mapped_steps(env, "raw_quotes.fetch_quote_batch[")
    requests_made = stats["requests_total"]
    limit = requests_made * latency_ms / 1000 / CLIENT_CONCURRENCY
    met = code == 0 and rows == tickers
    if target_seconds is not None:
        met = met and wall <= target_seconds
    if target_rss_mb is not None:
        met = met and rss <= target_rss_mb
    return Measurement(
        case=name,
        target=target,
        wall_seconds=wall,
        met=met,
        peak_rss_mb=rss,
        api_requests=requests_made,
        http_429=stats["by_status"].get("429", 0),
        mapped_steps=steps,
        rows=rows,
        tickers=tickers,
        limit_seconds=limit,
        notes={"exit_code": code},
    )


def rate_cap_case(database_url: str | None, *, tickers: int = 900, runs: int = 1) -> Measurement:
    """``runs`` refreshes of ``tickers`` started together against a 600/min plan. With two,
    each run has its own process, and only the call count in the database keeps them under
    the cap together."""
    cap = 600
    with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(workdir, database_url, tickers)
        # The sandbox enforces the cap like FMP (429 past it); the client paces to the same cap.
        with sandbox_process("--latency-ms", "50", "--calls-per-minute", str(cap)) as base_url:
            env = dagster_env(workdir, base_url, url, FMP_CALLS_PER_MINUTE=str(cap))
            wall, rss, code = run_measured([str(BIN / "dagster"), *REFRESH], env, copies=runs)
            stats = sandbox_stats(base_url)
        rows = count_rows(url, "stocks")
    times = sorted(r["t"] for r in stats["requests"])
    busiest = max(sum(1 for t in times[i:] if t < s + 60) for i, s in enumerate(times))
    achieved = busiest / cap
    http_429 = stats["by_status"].get("429", 0)
    # The limit: the first `cap` calls at once, the rest one window later.
    limit = 60.0 * ((len(times) - 1) // cap)
    return Measurement(
        case=f"rate_cap_600_{tickers}" if runs == 1 else f"rate_cap_600_{runs}x{tickers}",
        target=">= 95% of 600/min, zero 429",
        wall_seconds=wall,
        met=code == 0 and rows == tickers and achieved >= 0.95 and http_429 == 0,
        peak_rss_mb=rss,
        api_requests=len(times),
        http_429=http_429,
        rows=rows,
        tickers=tickers * runs,
        limit_seconds=limit,
        notes={
            "busiest_minute_calls": busiest,
            "cap_achieved": round(achieved, 3),
            "runs_at_once": runs,
        },
    )


def upsert_case(name: str, database_url: str, rows: int = 50_000) -> Measurement:
    """The bulk write alone, against two references: the replaced design's row-by-row writes
    (one transaction per row, timed on a sample) and the floor of moving the same rows into
    an unindexed table (COPY on PostgreSQL, a plain multi-row INSERT on SQLite)."""
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


def row_by_row_seconds(engine: sa.Engine, quotes: list[Quote]) -> float:
    """Seconds to write ``quotes`` the way the Celery design did: a statement and a
    transaction per row (here a one-row upsert, as Django's update_or_create would be)."""
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


def bulk_load_floor_seconds(engine: sa.Engine, quotes: list[Quote]) -> float:
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


def backfill_case(database_url: str | None, tickers: int = 500) -> Measurement:
    first, last = "2025-01-01", "2025-12-31"
    with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(workdir, database_url, tickers)
        with sandbox_process("--latency-ms", "50") as base_url:
            env = dagster_env(workdir, base_url, url)
            command = [
                str(BIN / "dagster"), "asset", "materialize", "-m", "quote_pipeline.definitions",
                "--select", "daily_prices", "--partition-range", f"{first}...{last}",
            ]  # fmt: skip
            wall, rss, code = run_measured(command, env)
            stats = sandbox_stats(base_url)
        rows = count_rows(url, "daily_prices")
        with open_instance(env) as instance:
            runs = len(instance.get_runs())
    eod = stats["by_endpoint"].get("/stable/historical-price-eod/full", 0)
    return Measurement(
        case="backfill_1y_500",
        target="<= 60 s, one run, 500 requests",
        wall_seconds=wall,
        met=code == 0 and wall <= 60 and runs == 1 and eod == tickers,
        peak_rss_mb=rss,
        api_requests=stats["requests_total"],
        rows=rows,
        tickers=tickers,
        limit_seconds=tickers * 0.05 / CLIENT_CONCURRENCY,
        notes={"runs": runs, "eod_requests": eod},
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
            wall, _, code = run_measured(command, env)
    if code != 0:
        raise RuntimeError("the naive design's run failed")
    return wall


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
        print(f"no PostgreSQL, so no PostgreSQL upsert case: {exc}")
        return None
    return create_database(server.url, "quote_pipeline_benchmark")


def scratch_database(postgres_url: str, name: str) -> str:
    """A new, empty database ``name`` on the server of ``postgres_url``."""
    from quote_pipeline_tests.support.postgres import create_database

    server = make_url(postgres_url).set(database="postgres")
    return create_database(server.render_as_string(hide_password=False), name)


# --- driver --------------------------------------------------------------------------------


def all_cases(
    database_url: str | None, postgres_url: str | None
) -> dict[str, Callable[[], Measurement]]:
    cases: dict[str, Callable[[], Measurement]] = {
        "refresh_500": lambda: refresh_case(
            "refresh_500", "(reported)", tickers=500, latency_ms=50, premium=False,
            database_url=database_url,
        ),
        "refresh_5000": lambda: refresh_case(
            "refresh_5000", "<= 12 s", tickers=5000, latency_ms=50, premium=False,
            target_seconds=12, database_url=database_url,
        ),
        "refresh_50000_batch": lambda: refresh_case(
            "refresh_50000_batch", "<= 20 s, RSS <= 400 MB", tickers=50_000, latency_ms=50,
            premium=True, target_seconds=20, target_rss_mb=400, database_url=database_url,
        ),
        "refresh_1000_faults": lambda: refresh_case(
            "refresh_1000_faults", "all rows, retries made", tickers=1000, latency_ms=50,
            premium=False, database_url=database_url,
            sandbox_flags=(
                "--server-error-rate", "0.10", "--rate-limit-rate", "0.05", "--seed", "1",
            ),
            extra_env={"QUOTE_PIPELINE_FETCH_RETRY_DELAY_SECONDS": "5"},
        ),
        "rate_cap_600_900": lambda: rate_cap_case(database_url),
        "rate_cap_600_2x300": lambda: rate_cap_case(database_url, tickers=300, runs=2),
        "upsert_50k_sqlite": lambda: upsert_case(
            "upsert_50k_sqlite", f"sqlite:///{tempfile.mkdtemp(prefix='qp-bench-')}/u.db"
        ),
        "backfill_1y_500": lambda: backfill_case(database_url),
    }  # fmt: skip
    if postgres_url:
        cases["upsert_50k_postgres"] = lambda: upsert_case("upsert_50k_postgres", postgres_url)
        # Production: the project's dagster.yaml (run, event-log and schedule storage on
        # PostgreSQL) and the stocks tables on PostgreSQL too.
        cases["refresh_5000_pg_instance"] = lambda: refresh_case(
            "refresh_5000_pg_instance", "<= 12 s", tickers=5000, latency_ms=50, premium=False,
            target_seconds=12, database_url=postgres_url,
            instance_url=scratch_database(postgres_url, "quote_pipeline_benchmark_instance"),
        )  # fmt: skip
    return cases


def print_table(results: list[Measurement]) -> None:
    header = (
        f"{'case':<26}{'target':<32}{'wall s':>8}{'met':>6}{'RSS MB':>8}{'requests':>9}"
        f"{'429':>6}{'steps':>6}{'limit s':>9}{'naive s':>10}{'vs naive':>9}{'vs limit':>9}"
    )
    print(header)
    print("-" * len(header))
    for m in results:

        def fmt(value: float | int | None, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        vs_naive = m.naive_seconds / m.wall_seconds if m.naive_seconds else None
        vs_limit = m.wall_seconds / m.limit_seconds if m.limit_seconds else None
        met = {True: "yes", False: "NO", None: "-"}[m.met]
        print(
            f"{m.case:<26}{m.target:<32}{m.wall_seconds:>8.2f}{met:>6}"
            f"{fmt(m.peak_rss_mb, '.0f'):>8}"
            f"{fmt(m.api_requests, 'd'):>9}{fmt(m.http_429, 'd'):>6}{fmt(m.mapped_steps, 'd'):>6}"
            f"{fmt(m.limit_seconds, '.2f'):>9}{fmt(m.naive_seconds, '.0f'):>10}"
            f"{fmt(vs_naive, '.0f'):>8}x{fmt(vs_limit, '.1f'):>8}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--database-url", help="for the refresh cases (default: a SQLite file)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("QUOTE_PIPELINE_BENCH_POSTGRES_URL"),
        help="a PostgreSQL database the upsert case may drop and create tables in (default: "
        "a database made for the run on the server the tests use)",
    )
    parser.add_argument("--json", default="benchmarks/results/latest.json")
    parser.add_argument("--naive-tickers", type=int, default=12)
    args = parser.parse_args(argv)

    postgres_url = args.postgres_url or benchmark_postgres_database()
    cases = all_cases(args.database_url, postgres_url)
    chosen = args.cases.split(",") if args.cases else list(cases)
    unknown = set(chosen) - set(cases)
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; known: {sorted(cases)}")

    naive: tuple[float, float] | None = None
    if any(c.startswith(("refresh", "rate", "backfill")) for c in chosen):
        n = args.naive_tickers
        print(f"naive design: {n} and {2 * n} tickers, one multiprocess step each ...")
        naive = naive_reference(n)
        print(f"  {naive[0]:.1f} s fixed + {naive[1]:.2f} s per ticker (extrapolated linearly)")
    results = []
    for name in chosen:
        print(f"running {name} ...", flush=True)
        measurement = cases[name]()
        if naive and measurement.tickers:
            # One multiprocess step per ticker, one request each; for the backfill this is a
            # lower bound (a default backfill would also launch one run per partition).
            measurement.naive_seconds = naive[0] + naive[1] * measurement.tickers
        results.append(measurement)

    machine = {
        "naive_fixed_seconds": round(naive[0], 2) if naive else None,
        "naive_seconds_per_ticker": round(naive[1], 3) if naive else None,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print()
    print_table(results)
    print(f"\nmachine: {machine}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"machine": machine, "results": [asdict(m) for m in results]}, indent=2)
    )
    print(f"figures written to {out}")
    return 0 if all(m.met is not False for m in results) else 1


if __name__ == "__main__":
    sys.exit(main())
