"""A crash point for tests: the writing process dies between two statements of one write.

Every write of the storage layer is one transaction, so a process killed half-way through
it must leave the tables as they were. Tests prove that by setting ``QUOTE_PIPELINE_TEST_FAULT``
to the name of a point (one of :data:`CRASH_POINTS`) for a writer run in a subprocess: when
the writer reaches that point, the process SIGKILLs itself, with the first statement sent
and the transaction still open (nothing is flushed, no ``finally`` runs, as with the OOM
killer or a lost pod).

Inert in production: the variable is unset there, and each point costs one dictionary
lookup per write (per chunk of rows for the intraday bars), never one per row.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "QUOTE_PIPELINE_TEST_FAULT"

CRASH_POINTS = frozenset(
    {
        "after_stocks_upsert",  # write_quotes: stocks upserted, quote_snapshots not yet
        "after_daily_delete",  # replace_daily_prices: the range deleted, nothing inserted
        "after_intraday_chunk",  # upsert_intraday_bars: the first chunk sent, not the rest
    }
)


def crash_point(name: str) -> None:
    """Kill this process here if ``QUOTE_PIPELINE_TEST_FAULT`` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["CRASH_ENV", "CRASH_POINTS", "crash_point"]
