"""Benchmark: a one-year single-run backfill of `daily_prices` for 500 tickers, as a user runs it.

Starts the FMP sandbox on a loopback port (with a configurable per-request latency), seeds
the tickers in a temporary SQLite database (or ``--database-url``), runs

    dagster asset materialize -m quote_pipeline.definitions --select daily_prices \\
        --partition-range FIRST...LAST

in a subprocess with its own DAGSTER_HOME, and prints the wall time, the API requests the
sandbox saw, the rows stored and the subprocess's peak memory.

    .venv/bin/python -m benchmarks.history_backfill [--tickers 500] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa

from quote_pipeline.history_calendar import sessions_between
from quote_pipeline.sandbox import SandboxConfig, SandboxServer
from quote_pipeline.storage import add_tickers, create_db_engine, display_url
from quote_pipeline.storage.schema import daily_prices

API_KEY = "benchmark-key"
EOD_PATH = "/stable/historical-price-eod/full"


def _symbols(count: int) -> list[str]:
    # Letters only, like real tickers; deterministic so runs compare.
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [
        letters[i // 676 % 26] + letters[i // 26 % 26] + letters[i % 26] + "X" for i in range(count)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="sandbox delay per call")
    parser.add_argument("--first-day", default="2025-01-01", help="first partition")
    parser.add_argument("--last-day", default="2025-12-31", help="last partition")
    parser.add_argument(
        "--database-url",
        help="default: a SQLite file in a temporary directory; another database should "
        "track no other tickers",
    )
    parser.add_argument("--verbose", action="store_true", help="print the run's INFO log lines")
    args = parser.parse_args(argv)
    # Its own prefix: other tools sweep theirs while this runs.
    with tempfile.TemporaryDirectory(prefix="qp-history-backfill-") as tmp:
        return _run(args, Path(tmp))


def _run(args: argparse.Namespace, workdir: Path) -> int:
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    dagster_home = workdir / "dagster_home"
    dagster_home.mkdir()
    engine = create_db_engine(database_url)
    symbols = _symbols(args.tickers)
    add_tickers(engine, symbols, now=datetime.now(UTC))
    first, last = date.fromisoformat(args.first_day), date.fromisoformat(args.last_day)
    sessions = len(sessions_between(first, last))

    config = SandboxConfig(api_key=API_KEY, latency_ms=args.latency_ms)
    with SandboxServer(config) as sandbox:
        env = {
            **os.environ,
            "FMP_BASE_URL": sandbox.url,
            "FMP_API_KEY": API_KEY,
            "QUOTE_PIPELINE_DATABASE_URL": database_url,
            "DAGSTER_HOME": str(dagster_home),
        }
        command = [
            str(Path(sys.executable).with_name("dagster")),
            "asset",
            "materialize",
            "-m",
            "quote_pipeline.definitions",
            "--select",
            "daily_prices",
            "--partition-range",
            f"{first}...{last}",
        ]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True)
        wall = time.perf_counter() - started
        stats = sandbox.stats()
    if args.verbose:
        sys.stderr.write(
            "\n".join(line for line in done.stderr.splitlines() if " - INFO - " in line)
        )
        sys.stderr.write("\n")
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-5000:] + done.stderr[-5000:])
        print(f"backfill FAILED (exit {done.returncode}) after {wall:.1f} s")
        return 1
    with engine.connect() as conn:
        rows = conn.scalar(
            sa.select(sa.func.count())
            .select_from(daily_prices)
            .where(daily_prices.c.date.between(first, last))
        )
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    history_requests = stats["by_endpoint"].get(EOD_PATH, 0)
    print(f"database          {display_url(database_url)}")
    print(f"range             {first} ... {last} ({sessions} NYSE sessions), one run")
    print(f"tickers           {len(symbols)}")
    print(f"sandbox latency   {args.latency_ms:g} ms per request")
    print(f"wall time         {wall:.1f} s (dagster CLI subprocess, start to exit)")
    print(f"API requests      {stats['requests_total']} in all, {history_requests} to {EOD_PATH}")
    print(f"rows stored       {rows} (expected {len(symbols) * sessions})")
    print(f"peak RSS          {peak_mb:.0f} MB (the subprocess)")
    return 0 if rows == len(symbols) * sessions else 1


if __name__ == "__main__":
    raise SystemExit(main())
