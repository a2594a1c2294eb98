"""Price history: `daily_prices` (one partition per NYSE session, single-run backfills) and
`intraday_bars`.

Both fetch through the fetch engine, one request per ticker for the run's whole range, and
write each group of tickers in its own transaction while the next group is fetched: a slow
ticker costs at most one read timeout per pass and never holds the others' rows.
"""

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
from pydantic import Field
from sqlalchemy.engine import Engine

from quote_pipeline.api_errors import ApiError
from quote_pipeline.celery_config import fmp_queue_tags
from quote_pipeline.defs.fetching import (
    api_refusal,
    fail_unless_complete,
    fetch_through_engine,
    tracked_symbols,
)
from quote_pipeline.defs.history.checks import (
    daily_check_specs,
    daily_consistency_result,
    intraday_check_specs,
    intraday_consistency_result,
    missing_sessions_result,
)
from quote_pipeline.defs.metadata import (
    OWNERS,
    counts_text,
    failures_value,
    pending_value,
    table_metadata,
    table_value,
)
from quote_pipeline.defs.providers import PROVIDER_NAMES, history_provider_chain, refused_by
from quote_pipeline.defs.resources import (
    DatabaseResource,
    FMPResource,
    MassiveResource,
    ProviderChoice,
)
from quote_pipeline.fetch_engine import FetchReport
from quote_pipeline.fmp.history import (
    HistoryRequest,
    SymbolHistory,
    intraday_bars_request,
)
from quote_pipeline.market_calendar import (
    NEW_YORK,
    NEW_YORK_TZ,
    last_opened_session,
    market_day,
    session_hours,
    sessions_between,
    weekday_closures,
)
from quote_pipeline.models import FailureKind, SymbolFailure
from quote_pipeline.price_bars import DailyBar
from quote_pipeline.providers.history import (
    GroupWrite,
    HistoryTally,
    WriteGroup,
    fetch_daily_in_order,
    preview_row,
    writer_of,
)
from quote_pipeline.storage import schema as tables
from quote_pipeline.storage.fetch_state import (
    PendingSymbol,
    clear_symbols,
    pending_symbols,
    record_failed_symbols,
)
from quote_pipeline.storage.history import (
    daily_rows_by_day_and_source,
    replace_daily_prices,
    upsert_intraday_bars,
)

GROUP = "price_history"
BARS_PER_SESSION = 78  # 09:30 to 16:00 in 5-minute bars
# A partition opens at New York midnight of each weekday; the exchange's weekday closures
# are excluded, so the partitions are exactly the NYSE sessions.
SESSION_CRON = "0 0 * * 1-5"
SESSION_PREVIEW_ROWS = 5


class HistoryFetchConfig(dg.Config):
    """How a history run spreads its work; the defaults suit 500 tickers."""

    max_rows_in_memory: int = Field(
        default=50_000,
        ge=1,
        description="Bars held in memory at once: tickers are fetched in groups of half this "
        "many rows over the range; each group is written in its own transaction while the "
        "next is fetched.",
    )
    chunk_rows: int = Field(default=5_000, ge=1, description="Rows per bulk insert statement.")
    only_symbols: list[str] | None = Field(
        default=None,
        description="Fetch only these of the tracked tickers (the retry sensor sets it to the "
        "symbols still pending); unset: every tracked ticker.",
    )


class IntradayBarsConfig(HistoryFetchConfig):
    """Which New York dates to refresh; unset means the session trading now, or the last."""

    from_date: str | None = Field(default=None, description="First date, YYYY-MM-DD.")
    to_date: str | None = Field(default=None, description="Last date, YYYY-MM-DD.")


# --- fetching and writing through the engine ------------------------------------------------------


def fetch_history(
    fmp: FMPResource,
    symbols: Sequence[str],
    request: HistoryRequest,
    write: WriteGroup,
    *,
    group_size: int,
    log: Callable[[str], None],
) -> tuple[FetchReport[SymbolHistory[Any]], HistoryTally]:
    """Fetch ``symbols`` with ``request`` through the run's fetch engine, handing each group's
    answered histories to ``write`` (one transaction each) while the next group is fetched.

    A ticker whose request failed keeps its stored rows; its failure is in the report. An
    invalid key or an endpoint outside the plan stops the run (groups already written stay).
    """
    tally = HistoryTally()
    report = fetch_through_engine(
        fmp, symbols, request, on_group=writer_of(write, tally), group_size=group_size, log=log
    )
    return report, tally


def _run_figures(
    report: FetchReport[Any], tally: HistoryTally, symbols: int, seconds: float
) -> dict[str, Any]:
    """Everything a history run did, as figure -> value (shown as one table)."""
    failures = report.failures
    return {
        "rows_written": tally.rows_written,
        "rows_replaced": tally.rows_deleted,
        "rows_dropped": tally.rows_dropped,
        "tickers_requested": symbols,
        "tickers_answered": report.succeeded,
        "tickers_without_data": len(tally.without_data),
        "tickers_failed": len({f.symbol for f in failures}),
        **{
            f"failed: {kind}": count
            for kind, count in Counter(f.kind.value for f in failures).items()
        },
        "api_requests": report.requests_made,
        "fetch_passes": report.passes,
        "write_transactions": tally.transactions,
        "insert_statements": tally.statements,
        "seconds": round(seconds, 3),
    }


def _figures_table(figures: Mapping[str, Any]) -> dg.TableMetadataValue:
    return table_value([{"figure": name, "value": value} for name, value in figures.items()])


def _run_metadata(
    report: FetchReport[Any], tally: HistoryTally, symbols: int, seconds: float
) -> dict[str, Any]:
    """A run's own figures, for an intraday refresh and for a failed run's event: the two
    that vary from run to run as numbers (they plot), the rest in one table. Not
    ``dagster/row_count``: what a run wrote is not how many rows the table holds."""
    failures = report.failures
    return {
        **({"failures": failures_value(failures)} if failures else {}),
        "rows_written": tally.rows_written,
        "tickers_failed": len({f.symbol for f in failures}),
        "run_figures": _figures_table(_run_figures(report, tally, symbols, seconds)),
        **({"preview": table_value(tally.preview)} if tally.preview else {}),
    }


# --- stragglers of a daily range, for the retry sensor -----------------------------------------

DAILY_DATASET_PREFIX = "daily:"


def daily_dataset(start: date, end: date) -> str:
    """How a daily range's stragglers are named in `symbol_retries`: ``daily:<start>/<end>``."""
    return f"{DAILY_DATASET_PREFIX}{start.isoformat()}/{end.isoformat()}"


def daily_range(dataset: str) -> tuple[str, str] | None:
    """The first and last partition key (NYSE session) of a :func:`daily_dataset` name, or
    None if it holds no session.

    A name recorded while the partitions were calendar days can start or end on a closed
    day, which is no partition key any more: it is narrowed to the sessions inside it.
    """
    first, _, last = dataset.removeprefix(DAILY_DATASET_PREFIX).partition("/")
    sessions = sessions_between(date.fromisoformat(first), date.fromisoformat(last))
    if not sessions:
        return None
    return sessions[0].isoformat(), sessions[-1].isoformat()


def settle_daily_stragglers(
    fmp: FMPResource,
    engine: Engine,
    start: date,
    end: date,
    symbols: Sequence[str],
    report: FetchReport[Any],
) -> list[PendingSymbol]:
    """Record the range's symbols still failing transiently for the retry sensor; forget
    the ones that answered (or failed for good) this time."""
    dataset = daily_dataset(start, end)
    transient = report.transient
    still = {f.symbol for f in transient}
    # The same sessions under a name from the calendar-day partitions (the retry sensor
    # narrowed it to this range): this run answers for those symbols too.
    older = {
        p.dataset
        for p in pending_symbols(engine)
        if p.dataset.startswith(DAILY_DATASET_PREFIX)
        and p.dataset != dataset
        and daily_range(p.dataset) == (start.isoformat(), end.isoformat())
    }
    with engine.begin() as conn:  # settled and pending, in one transaction
        for name in older:
            clear_symbols(conn, name, symbols)
        clear_symbols(conn, dataset, [s for s in symbols if s not in still])
        return record_failed_symbols(
            conn,
            dataset,
            transient,
            report.attempts,
            now=datetime.now(UTC),
            backoff=fmp.retry_backoff(),
        )


# --- daily_prices --------------------------------------------------------------------------------


def partition_dates(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """The first and last session of the run's partition (range): its first and last key.

    Not the time window: a session's window runs to the next weekday's midnight (a Friday's
    through Sunday), and a holiday lies in no window at all, so the window's last day can be
    a closed one.
    """
    keys = context.partition_key_range
    return date.fromisoformat(keys.start), date.fromisoformat(keys.end)


def unfinished_session(sessions: Sequence[date], now: datetime) -> tuple[date, datetime] | None:
    """The last of ``sessions`` and its close, if it has not closed by ``now``."""
    if not sessions:
        return None
    closes_at = session_hours(sessions[-1])[1]
    return (sessions[-1], closes_at) if closes_at > now else None


def daily_partitions_from(
    history_start: str, *, today: date | None = None
) -> dg.TimeWindowPartitionsDefinition:
    """One partition per NYSE session from ``history_start``, keyed by its New York date
    (``2026-11-27``): weekdays, less the exchange's holidays and one-off closures (the XNYS
    calendar's, through the end of next year). Early closes are sessions.

    end_offset=1 counts one partition past the last window that has ended, and a window runs
    from its session's midnight to the next weekday's: on a session day, that session's
    partition exists from midnight on, so the after-close schedule can ask for it the same
    evening (the asset refuses a session that has not closed yet). On a weekday closure the
    next session's partition already exists (Thanksgiving shows the Friday), and it is
    refused the same way until that session closes.
    """
    start = date.fromisoformat(history_start)
    horizon = date((today or date.today()).year + 1, 12, 31)
    closures = weekday_closures(start, horizon)
    return dg.TimeWindowPartitionsDefinition(
        start=history_start,
        fmt="%Y-%m-%d",
        cron_schedule=SESSION_CRON,
        timezone=NEW_YORK_TZ,
        end_offset=1,
        exclusions=[datetime.combine(day, datetime.min.time(), NEW_YORK) for day in closures],
    )


def _session_text(day: date) -> str:
    found = market_day(day)
    if found.opens_at is None or found.closes_at is None:
        return f"{day:%A} {day}: no NYSE session ({found.closed_reason})"
    hours = f"{found.opens_at:%H:%M} to {found.closes_at:%H:%M} New York"
    return f"{day:%A} {day}, {hours}" + (" (early close)" if found.is_early_close else "")


def _run_context(
    report: FetchReport[Any],
    tally: HistoryTally,
    symbols: int,
    seconds: float,
    first: date,
    last: date,
    sessions: Sequence[date],
    pending: Sequence[PendingSymbol],
) -> dict[str, Any]:
    """What the run did, attached to each partition it materialized and labelled as the
    run's: every ``run_*`` entry is the same on each of them. A table and text, never plain
    numbers, so that none plots as a flat line across the range's partitions."""
    if first == last:
        scope = f"One run for the session of {first} alone: the run_* figures are this session's."
    else:
        scope = (
            f"One run for the whole range {first} … {last} ({len(sessions)} sessions): the "
            "run_* figures are the range's, not this session's."
        )
    failures = report.failures
    figures = {**_run_figures(report, tally, symbols, seconds), "pending_retry": len(pending)}
    return {
        "run_scope": scope,
        "run_figures": _figures_table(figures),
        # Tables only when there is something to list: each partition of the range
        # carries them.
        **({"run_failures": failures_value(failures)} if failures else {}),
        **({"run_pending_retry": pending_value(pending)} if pending else {}),
    }


def _session_metadata(
    day: date,
    *,
    stored: Mapping[str, int],
    written: int,
    preview: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """One session's own figures: what its partition's materialization says about it."""
    return {
        # Rows the table holds for the day, every ticker's: the partition's row count (a
        # run for some tickers only, as the retry sensor's, writes fewer).
        "dagster/row_count": sum(stored.values()),
        "rows_written": written,
        # Which provider served the day's stored rows (the `source` column).
        "rows_by_source": counts_text(stored),
        **{f"rows_from_{name}": stored.get(name, 0) for name in PROVIDER_NAMES},
        "session": _session_text(day),
        "preview": table_value(preview),
    }


# Each session's bars by 18:00 New York (the schedule runs at 17:00): a materialization since
# 16:00 that weekday. Dagster evaluates it per asset, not per partition (a backfill of an old
# range counts), and a cron cannot name NYSE holidays: the no_missing_trading_days check, on the
# NYSE calendar, is what proves every session is stored.
DAILY_PRICES_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 18 * * 1-5", lower_bound_delta=timedelta(hours=2), timezone=NEW_YORK_TZ
)


def build_daily_prices(partitions: dg.TimeWindowPartitionsDefinition) -> dg.AssetsDefinition:
    """The ``daily_prices`` asset over ``partitions``."""

    @dg.asset(
        name="daily_prices",
        partitions_def=partitions,
        # A backfill of any range is one run: one request per ticker for the whole range.
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool="fmp_api",
        op_tags=fmp_queue_tags(),
        deps=["tickers"],
        group_name=GROUP,
        owners=OWNERS,
        kinds={"api", "sql", "table"},
        check_specs=daily_check_specs,
        metadata=table_metadata(tables.daily_prices),
        freshness_policy=DAILY_PRICES_FRESHNESS,
    )
    def daily_prices(
        context: dg.AssetExecutionContext,
        config: HistoryFetchConfig,
        fmp: FMPResource,
        massive: MassiveResource,
        providers: ProviderChoice,
        database: DatabaseResource,
    ) -> dg.MaterializeResult:
        """Daily open, high, low, close and volume of every tracked ticker **as traded**
        (FMP's non-split-adjusted endpoint: a stored row never changes meaning when a split
        happens later; the split- and dividend-adjusted series is `daily_prices_adjusted`),
        one partition per NYSE session (weekends, holidays and one-off closures are no
        partitions; early closes are).

        A run over a partition range asks the API once per ticker for the whole range,
        through the fetch engine: tickers are fetched concurrently in groups, and each group
        is written in one transaction that deletes the range's rows of those tickers and
        bulk-upserts the new ones, so re-materializing replaces rows exactly. A ticker whose
        request failed keeps its stored rows; one still failing after the retry budget
        fails the run, after every other ticker was written, and is asked again for the same
        range, alone, by the `retry_pending_daily_prices` sensor.

        Each session's materialization carries that session's figures: its row count (rows
        stored for the day), the rows the run wrote for it, and a preview of them. The
        `run_*` entries describe the whole run and say so (`run_scope`).
        """
        started = time.monotonic()
        start, end = partition_dates(context)
        sessions = sessions_between(start, end)
        engine = database.get_engine()
        if unfinished := unfinished_session(sessions, datetime.now(UTC)):
            day, closes_at = unfinished
            raise dg.Failure(
                f"The NYSE session of {day} closes at {closes_at.astimezone(NEW_YORK):%H:%M} "
                "New York time: its daily bar is not final yet. Materialize it after the close "
                "(the daily_prices_after_close schedule does).",
                allow_retries=False,
            )
        symbols = tracked_symbols(database, config.only_symbols)
        written: Counter[date] = Counter()
        previews: defaultdict[date, list[dict[str, Any]]] = defaultdict(list)

        def materialized(
            report: FetchReport[Any], tally: HistoryTally, pending: Sequence[PendingSymbol]
        ) -> dg.MaterializeResult:
            # Dagster records one materialization per partition key from this one output;
            # each gets its session's own figures, then the run's, labelled as such.
            stored = daily_rows_by_day_and_source(engine, start, end)
            seconds = time.monotonic() - started
            run = _run_context(report, tally, len(symbols), seconds, start, end, sessions, pending)
            for key in context.partition_keys:
                day = date.fromisoformat(key)
                own = _session_metadata(
                    day,
                    stored=stored.get(day, {}),
                    written=written[day],
                    preview=previews[day],
                )
                context.add_asset_metadata({**own, **run}, partition_key=key)
            return dg.MaterializeResult(
                check_results=[
                    daily_consistency_result(engine, symbols, start, end),
                    missing_sessions_result(engine, symbols, sessions),
                ],
            )

        if not sessions:
            # Only if the calendar closed a day after the definitions were loaded (a one-off
            # closure): the partition exists, and says there is nothing to fetch.
            context.log.info(f"No NYSE session from {start} to {end}: nothing to fetch or write.")
            return materialized(FetchReport(symbols=len(symbols)), HistoryTally(), [])

        chain = history_provider_chain(providers, fmp, massive)
        if len(chain) == 1 and (held := chain[0].held_reason()):
            raise dg.Failure(held, allow_retries=False)

        session_days = set(sessions)
        context.log.info(
            f"{len(symbols)} tickers x {len(sessions)} sessions ({start} to {end}) from "
            f"{', then '.join(p.name for p in chain)}"
        )

        def book(bars: Sequence[DailyBar]) -> None:
            # Committed: each session's rows, counted and previewed for its own partition.
            for bar in bars:
                written[bar.day] += 1
                if len(previews[bar.day]) < SESSION_PREVIEW_ROWS:
                    previews[bar.day].append(preview_row(bar))

        def write_range(first: date, last: date) -> WriteGroup:
            def write(histories: list[SymbolHistory[DailyBar]]) -> GroupWrite:
                # Only a clean answer replaces stored rows: an empty answer (a plan's
                # history horizon, a delisting) or one with rejected rows keeps what is
                # stored, and is reported.
                clean = [h for h in histories if h.bars and h.failure is None]
                for history in histories:
                    history.rows_outside_range += sum(
                        1 for b in history.bars if b.day not in session_days
                    )
                bars = [b for h in clean for b in h.bars if b.day in session_days]
                summary = replace_daily_prices(
                    engine,
                    [h.symbol for h in clean],
                    first,
                    last,
                    bars,
                    chunk_rows=config.chunk_rows,
                    starts={h.symbol: min(b.day for b in h.bars) for h in clean},
                )
                book(bars)
                return GroupWrite(summary.rows_written, summary.rows_deleted, summary.statements)

            return write

        def write_session(day: date, bars: list[DailyBar]) -> GroupWrite:
            # A whole-market answer replaces the session's rows of the tickers it has;
            # a ticker it lacks keeps its stored row.
            summary = replace_daily_prices(
                engine, [b.symbol for b in bars], day, day, bars, chunk_rows=config.chunk_rows
            )
            book(bars)
            return GroupWrite(summary.rows_written, summary.rows_deleted, summary.statements)

        try:
            report, tally, fallbacks = fetch_daily_in_order(
                chain,
                symbols,
                sessions,
                write_range=write_range,
                write_session=write_session,
                max_rows_in_memory=config.max_rows_in_memory,
                log=context.log.info,
            )
        except ApiError as exc:  # every provider refused the key or the endpoint
            raise api_refusal(exc, f"{refused_by(chain)} refused the run") from None
        for note in fallbacks:
            context.log.warning(note)
        no_data = [
            SymbolFailure(
                s, FailureKind.NO_QUOTE, "the API has no daily bars in this range; stored rows kept"
            )
            for s in tally.without_data
        ]
        report.failures.extend(no_data)
        pending = settle_daily_stragglers(fmp, engine, start, end, symbols, report)
        # A failed run records no materialization: its event carries the run's figures.
        failure_metadata = {
            **_run_metadata(report, tally, len(symbols), time.monotonic() - started),
            "first_day": start.isoformat(),
            "last_day": end.isoformat(),
            "sessions": len(sessions),
            "pending_retry": len(pending),
            "pending_retry_detail": pending_value(pending),
        }
        fail_unless_complete(
            report,
            failure_metadata,
            "They are asked again, alone, by the retry_pending_daily_prices sensor (the same "
            "range, just those tickers); re-materializing the range replaces rows exactly.",
        )
        context.log.info(
            f"{tally.rows_written} rows written ({tally.rows_deleted} replaced) for "
            f"{report.succeeded} of {len(symbols)} tickers with {report.requests_made} requests"
        )
        return materialized(report, tally, pending)

    return daily_prices


# --- intraday_bars -------------------------------------------------------------------------------


def intraday_dates(config: IntradayBarsConfig, now: datetime) -> tuple[date, date]:
    """The New York dates to refresh: as configured, else the session trading now (or the
    latest one, outside market hours)."""
    if config.from_date or config.to_date:
        first = date.fromisoformat(config.from_date or config.to_date or "")
        last = date.fromisoformat(config.to_date or config.from_date or "")
        if last < first:
            raise dg.Failure(f"to_date {last} is before from_date {first}", allow_retries=False)
        return first, last
    session = last_opened_session(now)
    if session is None:  # pragma: no cover - only before the calendar's first session
        raise dg.Failure("no NYSE session has opened yet", allow_retries=False)
    return session, session


@dg.asset(
    pool="fmp_api",
    op_tags=fmp_queue_tags(),
    deps=["tickers"],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"api", "sql", "table"},
    check_specs=intraday_check_specs,
    metadata=table_metadata(tables.intraday_bars),
)
def intraday_bars(
    context: dg.AssetExecutionContext,
    config: IntradayBarsConfig,
    fmp: FMPResource,
    database: DatabaseResource,
) -> dg.MaterializeResult:
    """5-minute OHLCV bars of every tracked ticker, keyed (ticker, bar start in UTC).

    FMP gives each bar's start as naive New York time; it is converted with the time zone
    rules of its own date, so bars on both sides of a daylight-saving change land at the
    right UTC instant. Each run re-fetches its dates whole (one request per ticker, through
    the fetch engine) and upserts: the bar still forming at the last run is completed by the
    next.
    """
    started = time.monotonic()
    start, end = intraday_dates(config, datetime.now(UTC))
    sessions = sessions_between(start, end)
    engine = database.get_engine()
    symbols = tracked_symbols(database, config.only_symbols)
    # The check covers the refreshed New York dates, midnight to midnight, in UTC.
    check_from = datetime.combine(start, datetime.min.time(), NEW_YORK).astimezone(UTC)
    check_to = datetime.combine(end + timedelta(days=1), datetime.min.time(), NEW_YORK)
    check_to = check_to.astimezone(UTC) - timedelta(microseconds=1)
    range_metadata = {"first_day": start.isoformat(), "last_day": end.isoformat()}
    if not sessions:
        context.log.info(f"No NYSE session from {start} to {end}: nothing to fetch.")
        metadata = _run_metadata(FetchReport(symbols=len(symbols)), HistoryTally(), 0, 0.0)
        return dg.MaterializeResult(
            metadata={**metadata, **range_metadata},
            check_results=[intraday_consistency_result(engine, symbols, check_from, check_to)],
        )
    fmp.refuse_if_quota_held()
    group_size = max(1, config.max_rows_in_memory // (2 * BARS_PER_SESSION * len(sessions)))

    def write(histories: list[SymbolHistory[Any]]) -> GroupWrite:
        bars = (b for h in histories for b in h.bars)
        return GroupWrite(upsert_intraday_bars(engine, bars, chunk_rows=config.chunk_rows))

    report, tally = fetch_history(
        fmp,
        symbols,
        intraday_bars_request(fmp.client, start, end),
        write,
        group_size=group_size,
        log=context.log.info,
    )
    metadata = {
        **_run_metadata(report, tally, len(symbols), time.monotonic() - started),
        **range_metadata,
    }
    fail_unless_complete(report, metadata)
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[intraday_consistency_result(engine, symbols, check_from, check_to)],
    )
