"""What the fetches remember between runs: symbols to ask again, and an exhausted API quota.

Both live in the data database, beside the call ledger, so every run and process (the hourly
refresh, a backfill, a retry run, on any machine) sees the same state. No Dagster, no HTTP.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from quote_pipeline.compat import batched
from quote_pipeline.models import SymbolFailure
from quote_pipeline.storage.repository import IN_LIST_LIMIT, dialect_insert, transaction
from quote_pipeline.storage.schema import api_quota_state, symbol_retries

PENDING = "pending"
GIVEN_UP = "given_up"
_MESSAGE_LIMIT = 500

# --- symbols to ask again ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryBackoff:
    """When a symbol that failed transiently is asked again: ``first_delay`` after its first
    failing run, doubling with each further one up to ``max_delay``; given up ``give_up_after``
    its first failure (it stays in the table, and in the coverage check's report)."""

    first_delay: timedelta = timedelta(minutes=1)
    max_delay: timedelta = timedelta(minutes=30)
    give_up_after: timedelta = timedelta(hours=6)

    def next_attempt(self, runs: int, first_failed_at: datetime, now: datetime) -> datetime | None:
        """After ``runs`` failing runs: when to try again, or None to give up."""
        if now - first_failed_at >= self.give_up_after:
            return None
        delay = min(self.first_delay * 2 ** max(runs - 1, 0), self.max_delay)
        return now + delay


@dataclass(frozen=True, slots=True)
class PendingSymbol:
    """A row of ``symbol_retries``."""

    dataset: str
    ticker: str
    failure_kind: str
    last_error: str
    attempts: int
    runs: int
    first_failed_at: datetime
    last_failed_at: datetime
    next_attempt_at: datetime | None
    status: str

    def is_due(self, now: datetime) -> bool:
        """Pending, and its next try has come."""
        return (
            self.status == PENDING
            and self.next_attempt_at is not None
            and (self.next_attempt_at <= now)
        )

    def as_row(self) -> dict[str, Any]:
        """For a table in the UI."""
        return {
            "ticker": self.ticker,
            "status": self.status,
            "kind": self.failure_kind,
            "attempts": self.attempts,
            "runs": self.runs,
            "failing_since": f"{self.first_failed_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
            "next_try": (
                f"{self.next_attempt_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
                if self.next_attempt_at
                else "given up"
            ),
            "last_error": self.last_error[:120],
        }


def record_failed_symbols(
    bind: Engine | Connection,
    dataset: str,
    failures: Sequence[SymbolFailure],
    attempts: Mapping[str, int],
    *,
    now: datetime,
    backoff: RetryBackoff | None = None,
) -> list[PendingSymbol]:
    """Record that ``failures`` (transient ones) outlived a run's retry budget: each symbol's
    kind, message, attempts, and when it is asked again. One transaction (``bind``'s own,
    if it is a connection)."""
    backoff = backoff or RetryBackoff()
    by_symbol = {f.symbol: f for f in failures}
    if not by_symbol:
        return []
    recorded: list[PendingSymbol] = []
    with transaction(bind) as conn:
        known = {
            row.ticker: row
            for chunk in batched(sorted(by_symbol), IN_LIST_LIMIT)
            for row in conn.execute(
                sa.select(symbol_retries).where(
                    symbol_retries.c.dataset == dataset, symbol_retries.c.ticker.in_(chunk)
                )
            )
        }
        for symbol, failure in sorted(by_symbol.items()):
            before = known.get(symbol)
            first = before.first_failed_at if before is not None else now
            runs = (before.runs if before is not None else 0) + 1
            next_at = backoff.next_attempt(runs, first, now)
            recorded.append(
                PendingSymbol(
                    dataset=dataset,
                    ticker=symbol,
                    failure_kind=failure.kind.value,
                    last_error=failure.message[:_MESSAGE_LIMIT],
                    attempts=(before.attempts if before is not None else 0)
                    + attempts.get(symbol, 1),
                    runs=runs,
                    first_failed_at=first,
                    last_failed_at=now,
                    next_attempt_at=next_at,
                    status=PENDING if next_at is not None else GIVEN_UP,
                )
            )
        insert = dialect_insert(conn, symbol_retries)
        columns = [c.name for c in symbol_retries.columns if not c.primary_key]
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=["dataset", "ticker"],
                set_={c: insert.excluded[c] for c in columns},
            ),
            [_row(p) for p in recorded],
        )
    return recorded


def clear_symbols(bind: Engine | Connection, dataset: str, tickers: Iterable[str]) -> int:
    """Forget the listed symbols of ``dataset`` (they got their data). Returns how many."""
    cleared = 0
    with transaction(bind) as conn:
        for chunk in batched(sorted(set(tickers)), IN_LIST_LIMIT):
            cleared += conn.execute(
                sa.delete(symbol_retries).where(
                    symbol_retries.c.dataset == dataset, symbol_retries.c.ticker.in_(chunk)
                )
            ).rowcount
    return cleared


def pending_symbols(engine: Engine, dataset: str | None = None) -> list[PendingSymbol]:
    """Every recorded symbol (pending or given up), of ``dataset`` or of all datasets."""
    query = sa.select(symbol_retries).order_by(
        symbol_retries.c.dataset, symbol_retries.c.next_attempt_at, symbol_retries.c.ticker
    )
    if dataset is not None:
        query = query.where(symbol_retries.c.dataset == dataset)
    with engine.connect() as conn:
        return [PendingSymbol(**row._mapping) for row in conn.execute(query)]


def due_symbols(engine: Engine, dataset: str, now: datetime) -> list[PendingSymbol]:
    """The pending symbols of ``dataset`` whose next attempt is due by ``now``."""
    return [p for p in pending_symbols(engine, dataset) if p.is_due(now)]


def _row(pending: PendingSymbol) -> dict[str, Any]:
    return {
        "dataset": pending.dataset,
        "ticker": pending.ticker,
        "failure_kind": pending.failure_kind,
        "last_error": pending.last_error,
        "attempts": pending.attempts,
        "runs": pending.runs,
        "first_failed_at": pending.first_failed_at,
        "last_failed_at": pending.last_failed_at,
        "next_attempt_at": pending.next_attempt_at,
        "status": pending.status,
    }


# --- an exhausted quota ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuotaHold:
    """An account whose quota ran out: no request before ``hold_until``."""

    exhausted_at: datetime
    hold_until: datetime
    reason: str

    def message(self, provider: str = "FMP") -> str:
        return (
            f"The {provider} API quota ran out at {self.exhausted_at:%Y-%m-%d %H:%M} UTC "
            f"({self.reason}); no request is made before "
            f"{self.hold_until:%Y-%m-%d %H:%M} UTC, when a run will ask again."
        )


def quota_hold(
    engine: Engine, account: str | None, now: datetime, *, provider: str | None = None
) -> QuotaHold | None:
    """The account's hold (any account's, with None: the one ending last; with ``provider``,
    any of that provider's accounts), if one is still in force at ``now``.

    Schedules and sensors ask by provider: they run in the daemon, which needs no API key
    to tell that a provider's quota is spent. An account is named ``<provider>:<hash>``,
    except FMP's, a bare hash (as before there were other providers).
    """
    query = sa.select(api_quota_state).order_by(api_quota_state.c.hold_until.desc())
    if account is not None:
        query = query.where(api_quota_state.c.account == account)
    elif provider == DEFAULT_ACCOUNT_PROVIDER:
        query = query.where(~api_quota_state.c.account.contains(":"))
    elif provider is not None:
        query = query.where(api_quota_state.c.account.startswith(f"{provider}:"))
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None or row.hold_until <= now:
        return None
    return QuotaHold(row.exhausted_at, row.hold_until, row.reason)


DEFAULT_ACCOUNT_PROVIDER = "fmp"
"""The provider whose accounts are bare hashes (the only one before there were others)."""


def account_name(provider: str, base_url: str, api_key: str) -> str:
    """An API account as stored in ``api_calls`` and ``api_quota_state``: a hash of the base
    URL and key (never the key), prefixed by the provider except for FMP's; 64 characters."""
    digest = hashlib.sha256(f"{base_url}|{api_key}".encode()).hexdigest()
    if provider == DEFAULT_ACCOUNT_PROVIDER:
        return digest
    prefix = f"{provider}:"
    return prefix + digest[: 64 - len(prefix)]


def held_providers(
    engine: Engine, providers: Sequence[str], now: datetime
) -> list[tuple[str, QuotaHold]]:
    """The holds in force for each of ``providers`` that has one, in their order."""
    return [
        (name, hold)
        for name in providers
        if (hold := quota_hold(engine, None, now, provider=name)) is not None
    ]


class SqlQuotaMemory:
    """Remembers an account's exhausted quota in ``api_quota_state`` for ``hold`` (the pacer's
    :class:`~quote_pipeline.fmp.pacing.QuotaMemory`)."""

    def __init__(
        self,
        engine: Engine,
        account: str,
        *,
        hold: timedelta = timedelta(minutes=30),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self.account = account
        self.hold = hold
        self._clock = clock

    def remember_exhausted(self, reason: str) -> None:
        now = self._clock()
        row = {
            "account": self.account,
            "exhausted_at": now,
            "hold_until": now + self.hold,
            "reason": reason[:_MESSAGE_LIMIT],
        }
        with self._engine.begin() as conn:
            insert = dialect_insert(conn, api_quota_state)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["account"],
                    set_={c: insert.excluded[c] for c in ("exhausted_at", "hold_until", "reason")},
                ),
                [row],
            )

    def forget_exhausted(self) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                sa.delete(api_quota_state).where(api_quota_state.c.account == self.account)
            )

    def current_hold(self) -> QuotaHold | None:
        return quota_hold(self._engine, self.account, self._clock())


__all__ = [
    "GIVEN_UP",
    "PENDING",
    "PendingSymbol",
    "QuotaHold",
    "RetryBackoff",
    "SqlQuotaMemory",
    "clear_symbols",
    "due_symbols",
    "pending_symbols",
    "quota_hold",
    "record_failed_symbols",
]
