"""What every dataset's asset does around the fetch engine: pick the tracked tickers, run
the engine with the run's client, and fail the run in words once the good rows are written.

Quotes, price history and news all fetch through :class:`~quote_pipeline.fetch_engine.FetchEngine`;
these are the Dagster-side steps they share, so that a refused key, an exhausted quota or a
straggler reads the same on every asset.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import dagster as dg

from quote_pipeline.api_errors import ApiError
from quote_pipeline.defs.metadata import OWNERS, counts_text
from quote_pipeline.defs.resources import DatabaseResource, FMPResource
from quote_pipeline.fetch_engine import FetchReport, GroupHandler, RequestFunction
from quote_pipeline.market_calendar import NEW_YORK_TZ
from quote_pipeline.providers.base import MarketDataProvider
from quote_pipeline.run_policy import code_version_tags
from quote_pipeline.storage import list_tickers
from quote_pipeline.storage.fetch_state import held_providers

T = TypeVar("T")


def tracked_symbols(database: DatabaseResource, only: list[str] | None = None) -> list[str]:
    """The tracked tickers (or those of ``only`` that are tracked); fails the run if none."""
    symbols = list_tickers(database.get_engine())
    if only is not None:
        wanted = {s.upper() for s in only}
        symbols = [s for s in symbols if s in wanted]
    if not symbols:
        raise dg.Failure(
            "No tickers to fetch: add some with `quote-pipeline tickers add SYM…`."
            if only is None
            else "None of only_symbols is tracked any more: nothing to fetch.",
            allow_retries=False,
        )
    return symbols


def api_refusal(
    exc: ApiError, reason: str = "The FMP API refused the run", *, api_requests: int | None = None
) -> dg.Failure:
    """The run's failure for what no symbol survives (a refused key, an endpoint outside the
    plan, a spent quota): the reason in words, no retries (the same answer would come)."""
    metadata: dict[str, Any] = {"kind": exc.kind.value}
    if api_requests is not None:
        metadata["api_requests"] = api_requests
    return dg.Failure(f"{reason}: {exc}", metadata=metadata, allow_retries=False)


def fetch_through_engine(
    fmp: FMPResource | MarketDataProvider,
    symbols: Sequence[str],
    request: RequestFunction[T],
    *,
    on_group: GroupHandler[T],
    group_size: int,
    log: Callable[[str], None],
    symbols_per_request: int = 1,
) -> FetchReport[T]:
    """Fetch ``symbols`` through the run's fetch engine, handing each group to ``on_group``
    (one transaction each) while the next is fetched. A refused key or an endpoint outside
    the plan fails the run in words; groups already written stay written."""
    engine = fmp.engine
    requests_before = engine.client.requests_made
    try:
        return engine.fetch(
            symbols,
            request,
            symbols_per_request=symbols_per_request,
            group_size=group_size,
            on_group=on_group,
            log=log,
        )
    except ApiError as exc:  # invalid key, endpoint not in the plan
        who = getattr(fmp, "name", "fmp")
        raise api_refusal(
            exc,
            "The FMP API refused the run" if who == "fmp" else f"The {who} API refused the run",
            api_requests=engine.client.requests_made - requests_before,
        ) from None


def fail_unless_complete(
    report: FetchReport[Any],
    metadata: dict[str, Any],
    retry_note: str = "Re-materialize: it replaces rows exactly.",
) -> None:
    """After the good rows are written: fail the run, naming the tickers, when some still
    failed transiently after the retry budget, or the quota ran out."""
    if report.quota_exhausted:
        raise dg.Failure(
            "The API quota ran out during the run (of every provider asked): the tickers "
            "fetched before it were written; the others keep their stored rows. Runs resume "
            "once the quota is back.",
            metadata=metadata,
            allow_retries=False,
        )
    if transient := report.transient:
        names = ", ".join(sorted({f.symbol for f in transient})[:20])
        raise dg.Failure(
            f"{len(transient)} tickers still failed after {report.passes} pass(es) "
            f"({counts_text(Counter(f.kind.value for f in transient))}: {names}); every "
            f"other ticker was written. {retry_note}",
            metadata=metadata,
            allow_retries=False,
        )


def providers_or_fmp(read: Callable[[], Sequence[str]]) -> Sequence[str]:
    """The providers a job asks (``read``: a ProviderChoice order), for a tick's quota
    check; FMP alone when the configured order is unreadable: the run then fails in one
    line, the tick never crashes."""
    try:
        return read()
    except ValueError:
        return ("fmp",)


def quota_skip_reason(
    database: DatabaseResource, providers: Sequence[str] = ("fmp",)
) -> str | None:
    """Why a tick should start no run: every provider the job may ask has an exhausted quota
    remembered (a run would only fail). None while one of them can still be asked."""
    held = held_providers(database.get_engine(), providers, datetime.now(UTC))
    if not held or len(held) < len(providers):
        return None
    return "; ".join(
        hold.message() if len(held) == 1 else f"{name}: {hold.message()}" for name, hold in held
    )


def unless_quota_held(
    database: DatabaseResource,
    request: dg.RunRequest | dg.SkipReason,
    providers: Sequence[str] = ("fmp",),
) -> dg.RunRequest | dg.SkipReason:
    """A schedule's request, unless every provider the job asks (FMP alone by default) has
    an exhausted quota remembered: then the tick says why, and until when, and no run
    starts only to fail."""
    if isinstance(request, dg.RunRequest) and (reason := quota_skip_reason(database, providers)):
        return dg.SkipReason(f"Skipped: {reason}")
    return request


def build_fetch_schedule(
    name: str,
    *,
    cron_schedule: str,
    job_name: str,
    description: str,
    default_status: dg.DefaultScheduleStatus,
) -> dg.ScheduleDefinition:
    """A New York-time schedule of a job that fetches from the API: one run per tick (its
    run key the tick's date), skipped in words while an exhausted quota is remembered."""

    @dg.schedule(
        name=name,
        cron_schedule=cron_schedule,
        execution_timezone=NEW_YORK_TZ,
        job_name=job_name,
        default_status=default_status,
        owners=OWNERS,
        tags=code_version_tags(),
        description=description,
    )
    def fetch_schedule(
        context: dg.ScheduleEvaluationContext, database: DatabaseResource
    ) -> dg.RunRequest | dg.SkipReason:
        tick = context.scheduled_execution_time
        key = f"{name}:{tick:%Y-%m-%d}" if tick else None
        return unless_quota_held(database, dg.RunRequest(run_key=key))

    return fetch_schedule
