"""The retry sensor: symbols a refresh could not get are asked again alone, with back-off.

A refresh never waits for a straggler beyond its retry budget; it writes the good rows and
records each symbol still failing transiently in `symbol_retries` with when to ask it next
(1, 2, 4 … minutes after, capped; given up after a configurable time). This sensor launches
a `refresh_quotes` run for just the symbols that are due, so their rows arrive as soon as the
API answers, without re-fetching anyone else. Its ticks in the UI say what is pending and
when it is next tried.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import dagster as dg

from quote_pipeline.defs.metadata import code_version_tags
from quote_pipeline.defs.quotes.assets import DATASET
from quote_pipeline.defs.quotes.jobs import REFRESH_QUOTES
from quote_pipeline.defs.resources import DatabaseResource
from quote_pipeline.storage.fetch_state import PENDING, PendingSymbol, pending_symbols, quota_hold

RETRY_SENSOR_NAME = "retry_pending_quotes"
RETRY_TAG = "quote_pipeline/retry_of_symbols"
MINIMUM_INTERVAL_SECONDS = 30


def retry_run_request(due: list[PendingSymbol]) -> dg.RunRequest:
    """A refresh of just the ``due`` symbols. The run key names them and their due time, so
    a tick evaluated twice launches one run, and the next failure (a new due time) another."""
    symbols = sorted(p.ticker for p in due)
    due_at = max(p.next_attempt_at for p in due if p.next_attempt_at is not None)
    digest = hashlib.sha256(f"{','.join(symbols)}|{due_at.isoformat()}".encode()).hexdigest()
    shown = ", ".join(symbols[:10]) + (
        f" and {len(symbols) - 10} more" if len(symbols) > 10 else ""
    )
    return dg.RunRequest(
        run_key=f"{RETRY_SENSOR_NAME}:{digest[:16]}",
        run_config={
            "ops": {
                "raw_quotes": {"ops": {"plan_quote_batches": {"config": {"only_symbols": symbols}}}}
            }
        },
        tags={RETRY_TAG: shown, **code_version_tags()},
    )


def pending_summary(pending: list[PendingSymbol], now: datetime) -> str:
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
            f"{len(given_up)} given up (still asked by every scheduled refresh, and "
            f"reported by the coverage check): {names}"
        )
    return "; ".join(parts) + "."


def build_retry_sensor() -> dg.SensorDefinition:
    """The ``retry_pending_quotes`` sensor."""

    @dg.sensor(
        name=RETRY_SENSOR_NAME,
        job_name=REFRESH_QUOTES,
        minimum_interval_seconds=MINIMUM_INTERVAL_SECONDS,
        # Running by default: it launches nothing until a refresh has left symbols pending,
        # so it never spends API calls on its own.
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Ask the API again, alone, for the symbols a quote refresh could not get "
            "(still failing transiently after the run's retry budget), with back-off "
            "(1, 2, 4 … minutes, capped at 30; given up after 6 h — fmp resource config). "
            "A skipped tick lists what is pending and when it is next tried."
        ),
    )
    def retry_pending_quotes(
        context: dg.SensorEvaluationContext, database: DatabaseResource
    ) -> dg.RunRequest | dg.SkipReason:
        now = datetime.now(UTC)
        engine = database.get_engine()
        pending = pending_symbols(engine, DATASET)
        due = [
            p
            for p in pending
            if p.status == PENDING and p.next_attempt_at is not None and p.next_attempt_at <= now
        ]
        if not due:
            return dg.SkipReason(pending_summary(pending, now))
        if hold := quota_hold(engine, None, now):
            return dg.SkipReason(f"{len(due)} symbol(s) due, but {hold.message()}")
        return retry_run_request(due)

    return retry_pending_quotes
