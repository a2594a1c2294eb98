"""The API calls of the last minute, counted in the database so that every process shares them.

A plan's cap (300, 750, 3,000 calls a minute) belongs to the account, not to a process: a
scheduled refresh, a backfill and intraday bars run in separate processes, maybe on separate
machines, and only a store they all reach can count their calls together.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from quote_pipeline.storage.schema import api_calls


class SqlCallLedger:
    """Calls to one account in a rolling window, in the ``api_calls`` table.

    Each reservation is one short transaction, serialised per account (a transaction-scoped
    advisory lock on PostgreSQL; SQLite's single writer, taken by the first statement, a
    DELETE). Fine for a plan's tens of calls a second; it is only used when a cap is set.
    """

    def __init__(
        self, engine: Engine, account: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._engine = engine
        self.account = account
        self._clock = clock  # wall clock: the one every process (and machine) agrees on
        digest = hashlib.sha256(f"quote_pipeline.api_calls|{account}".encode()).digest()
        self._lock_key = int.from_bytes(digest[:8], "big", signed=True)

    def reserve(self, calls_per_window: int, window_seconds: float) -> float:
        """Record one call now and return 0 when it fits in the window; otherwise record
        nothing and return the seconds until the oldest call leaves the window."""
        with self._engine.begin() as conn:
            self._serialise(conn)
            now = self._clock()
            mine = api_calls.c.account == self.account
            conn.execute(
                sa.delete(api_calls).where(mine, api_calls.c.sent_at <= now - window_seconds)
            )
            count, oldest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(api_calls.c.sent_at)).where(mine)
            ).one()
            if count >= calls_per_window:
                return max(oldest + window_seconds - now, 0.001)
            conn.execute(sa.insert(api_calls).values(account=self.account, sent_at=now))
            return 0.0

    def _serialise(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(self._lock_key)))
        # SQLite: the DELETE that follows opens the write transaction, and SQLite has one
        # writer at a time; a second process waits (busy timeout) until this one commits.


__all__ = ["SqlCallLedger"]
