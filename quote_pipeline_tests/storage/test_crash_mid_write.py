"""A writer killed between the statements of one write leaves every table as it was.

Each write runs in a subprocess whose crash point (storage/faults.py) SIGKILLs it after its
first statement, inside the open transaction; then the tables are compared with what they
held before, and the same write is run again to completion. On SQLite and PostgreSQL: a
write split into two transactions fails here on both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from quote_pipeline.storage.faults import CRASH_ENV, CRASH_POINTS
from quote_pipeline.storage.schema import daily_prices, intraday_bars, quote_snapshots, stocks
from quote_pipeline_tests.storage import crash_writes

TABLES = (stocks, quote_snapshots, daily_prices, intraday_bars)


def table_contents(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the written tables, in a fixed order."""
    with engine.connect() as conn:
        return {t.name: sorted(tuple(row) for row in conn.execute(sa.select(t))) for t in TABLES}


def run_killed(write: str, point: str, database_url: str) -> None:
    """Run ``write`` in a subprocess that dies at ``point``; fail unless it died there."""
    assert point in CRASH_POINTS
    result = subprocess.run(
        [sys.executable, "-m", "quote_pipeline_tests.storage.crash_writes", write, database_url],
        env={**os.environ, CRASH_ENV: point},
        capture_output=True,
        timeout=120,
        check=False,
    )
    # Exit 0 would mean the point was never reached: the test would prove nothing.
    assert result.returncode == -signal.SIGKILL, result.stderr.decode(errors="replace")


@pytest.mark.parametrize(
    ("write", "point", "changed"),
    [
        ("quotes", "after_stocks_upsert", {"stocks", "quote_snapshots"}),
        ("daily", "after_daily_delete", {"daily_prices"}),
        ("intraday", "after_intraday_chunk", {"intraday_bars"}),
    ],
)
def test_a_writer_killed_between_statements_changes_nothing_and_a_rerun_completes(
    engine: Engine, database_url: str, write: str, point: str, changed: set[str]
) -> None:
    crash_writes.seed(engine)
    before = table_contents(engine)
    assert all(before.values())

    run_killed(write, point, database_url)
    assert table_contents(engine) == before

    crash_writes.WRITES[write](engine)  # the same write, run to the end
    after = table_contents(engine)
    assert {name for name in after if after[name] != before[name]} == changed
