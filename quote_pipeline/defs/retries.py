"""Retry sensors: symbols a run could not get are asked again alone, with back-off.

A run never waits for a straggler beyond its retry budget; it writes the good rows and
records each symbol still failing transiently in `symbol_retries` with when to ask it next
(1, 2, 4 … minutes after, capped; given up after a configurable time). A retry sensor
launches a run for just the symbols that are due, so their rows arrive as soon as the API
answers, without re-fetching anyone else. Its ticks in the UI say what is pending and when
it is next tried. Each dataset brings its run request; the rest is here, once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import dagster as dg

from quote_pipeline.defs.resources import DatabaseResource
from quote_pipeline.run_policy import code_version_tags
from quote_pipeline.storage.fetch_state import (
    PENDING,
    PendingSymbol,
    held_providers,
    pending_symbols,
)

RETRY_TAG = "quote_pipeline/retry_of_symbols"
MINIMUM_INTERVAL_SECONDS = 30

RunRequestsFor = Callable[[list[PendingSymbol]], list[dg.RunRequest]]
"""The runs that ask for the due symbols of a dataset again."""


def retry_run_key(sensor_name: str, due: Sequence[PendingSymbol]) -> str:
    """Names the symbols and their due time: a tick evaluated twice launches one run, and the
    next failure (a new due time) another."""
    symbols = sorted(p.ticker for p in due)
    due_at = max(p.next_attempt_at for p in due if p.next_attempt_at is not None)
    key = f"{due[0].dataset}|{','.join(symbols)}|{due_at.isoformat()}"
    return f"{sensor_name}:{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def retry_tags(symbols: Sequence[str]) -> dict[str, str]:
    """The tags of a retry run: which symbols it asks for, and the code version."""
    shown = ", ".join(symbols[:10]) + (
        f" and {len(symbols) - 10} more" if len(symbols) > 10 else ""
    )
    return {RETRY_TAG: shown, **code_version_tags()}


def pending_summary(pending: Sequence[PendingSymbol], now: datetime) -> str:
    """What is waiting and when it is next tried, for a tick that launches nothing."""
    waiting = [p for p in pending if p.status == PENDING and p.next_attempt_at is not None]
    given_up = [p for p in pending if p.status != PENDING]
    if not waiting and not given_up:
        return "No symbol is waiting for a retry."
    parts = []
    if waiting:
        nxt = min(p.next_attempt_at for p in waiting if p.next_attempt_at is not None)
        names = ", ".join(f"{p.ticker} ({p.failure_kind}, {p.runs} run(s))" for p in waiting[:10])
        parts.append(
            f"{len(waiting)} symbol(s) pending, next try at {nxt:%H:%M:%S} UTC "
            f"(in {max((nxt - now).total_seconds(), 0):.0f} s): {names}"
        )
    if given_up:
        names = ", ".join(p.ticker for p in given_up[:10])
        parts.append(
            f"{len(given_up)} given up (still asked by every scheduled run, and reported "
            f"by the coverage check): {names}"
        )
    return "; ".join(parts) + "."


def build_retry_sensor(
    *,
    name: str,
    job_name: str,
    datasets: Callable[[str], bool],
    run_requests: RunRequestsFor,
    description: str,
    providers: Callable[[], Sequence[str]] = lambda: ("fmp",),
) -> dg.SensorDefinition:
    """A sensor that asks the due symbols of the ``datasets`` it owns again, alone, unless
    every provider its job asks (``providers``, read at each tick) has its quota spent."""

    @dg.sensor(
        name=name,
        job_name=job_name,
        minimum_interval_seconds=MINIMUM_INTERVAL_SECONDS,
        # Running by default: it launches nothing until a run has left symbols pending, so
        # it never spends API calls on its own.
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=description,
    )
    def retry_sensor(
        context: dg.SensorEvaluationContext, database: DatabaseResource
    ) -> dg.SensorResult | dg.SkipReason:
        now = datetime.now(UTC)
        engine = database.get_engine()
        pending = [p for p in pending_symbols(engine) if datasets(p.dataset)]
        due = [p for p in pending if p.is_due(now)]
        if not due:
            return dg.SkipReason(pending_summary(pending, now))
        # Read from the database, not asked of the API: the daemon needs no key for this.
        held = held_providers(engine, asked := providers(), now)
        if held and len(held) == len(asked):
            reason = "; ".join(hold.message() for _, hold in held)
            return dg.SkipReason(f"{len(due)} symbol(s) due, but {reason}")
        return dg.SensorResult(run_requests=run_requests(due))

    return retry_sensor


__all__ = [
    "RETRY_TAG",
    "build_retry_sensor",
    "pending_summary",
    "retry_run_key",
    "retry_tags",
]
