"""Price history: `daily_prices` (daily partitions, single-run backfills) and `intraday_bars`."""

import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field

from quote_pipeline.defs.history.checks import (
    daily_check_specs,
    daily_consistency_result,
    intraday_check_specs,
    intraday_consistency_result,
    missing_sessions_result,
)
from quote_pipeline.defs.metadata import failures_table, markdown_table
from quote_pipeline.defs.resources import DatabaseResource, FMPResource
from quote_pipeline.fmp import FMPClient, FMPError
from quote_pipeline.fmp.history import SymbolHistory, fetch_daily_history, fetch_intraday_bars
from quote_pipeline.market_calendar import (
    NEW_YORK,
    NEW_YORK_TZ,
    last_opened_session,
    session_hours,
    sessions_between,
)
from quote_pipeline.models import TRANSIENT_FAILURE_KINDS, FailureKind, SymbolFailure
from quote_pipeline.price_bars import DailyBar, IntradayBar
from quote_pipeline.storage import list_tickers
from quote_pipeline.storage.history import replace_daily_prices, upsert_intraday_bars

GROUP = "price_history"
OWNERS = ["team:market-data"]
HISTORY_START_ENV = "QUOTE_PIPELINE_HISTORY_START"
DEFAULT_HISTORY_START = "2020-01-01"
BARS_PER_SESSION = 78  # 09:30 to 16:00 in 5-minute bars

_BarT = TypeVar("_BarT", DailyBar, IntradayBar)

# BackfillPolicy is beta in Dagster 1.13 and is what makes a backfill one run; the warning
# would otherwise print at every code-location load, so only it is silenced.
warnings.filterwarnings(
    "ignore", message="Parameter `backfill_policy` of ", category=dg.BetaWarning
)


def history_start() -> str:
    """The first daily partition: ``$QUOTE_PIPELINE_HISTORY_START`` (YYYY-MM-DD) or 2020-01-01."""
    raw = os.environ.get(HISTORY_START_ENV) or DEFAULT_HISTORY_START
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise ValueError(
            f"{HISTORY_START_ENV} must be a date like 2020-01-01, not {raw!r}"
        ) from None


# A partition is one New York calendar day; days without an NYSE session have no rows.
# end_offset=1: today's partition exists, so the after-close schedule can ask for it the
# same evening (the asset refuses a session that has not closed yet).
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=history_start(), timezone=NEW_YORK_TZ, end_offset=1
)

DAILY_COLUMNS = dg.TableSchema(
    columns=[
        dg.TableColumn("ticker", "varchar(15)", description="Exchange symbol, upper case."),
        dg.TableColumn("date", "date", description="NYSE session (New York date)."),
        dg.TableColumn("open", "numeric", description="Exact decimal, as the API sent it."),
        dg.TableColumn("high", "numeric"),
        dg.TableColumn("low", "numeric"),
        dg.TableColumn("close", "numeric"),
        dg.TableColumn("volume", "bigint", description="Shares (64-bit)."),
        dg.TableColumn("change", "numeric", description="Where the API gives it."),
        dg.TableColumn("change_percent", "numeric", description="Where the API gives it."),
        dg.TableColumn("vwap", "numeric", description="Where the API gives it."),
        dg.TableColumn("fetched_at", "timestamptz", description="When the API answered."),
    ]
)

INTRADAY_COLUMNS = dg.TableSchema(
    columns=[
        dg.TableColumn("ticker", "varchar(15)", description="Exchange symbol, upper case."),
        dg.TableColumn("bar_start", "timestamptz", description="Bar start in UTC."),
        dg.TableColumn("open", "numeric"),
        dg.TableColumn("high", "numeric"),
        dg.TableColumn("low", "numeric"),
        dg.TableColumn("close", "numeric"),
        dg.TableColumn("volume", "bigint"),
        dg.TableColumn(
            "fetched_at", "timestamptz", description="Last fetch (a forming bar is updated)."
        ),
    ]
)


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
    retry_delay_seconds: float = Field(
        default=30.0,
        ge=0,
        description="After every ticker was tried, those that failed transiently (5xx, "
        "timeouts, 429 after the client's own retries) are asked once more after this pause.",
    )


class IntradayBarsConfig(HistoryFetchConfig):
    """Which New York dates to refresh; unset means the session trading now, or the last."""

    from_date: str | None = Field(default=None, description="First date, YYYY-MM-DD.")
    to_date: str | None = Field(default=None, description="Last date, YYYY-MM-DD.")


# --- the fetch-and-write loop ------------------------------------------------------------------


@dataclass
class HistoryTally:
    """What a history run did, summed over its groups (no bars are kept here)."""

    tickers: int = 0
    answered: int = 0
    without_data: list[str] = field(default_factory=list)
    failures: list[SymbolFailure] = field(default_factory=list)
    rows_written: int = 0
    rows_deleted: int = 0
    rows_dropped: int = 0  # outside the range, or on a day without an NYSE session
    transactions: int = 0
    statements: int = 0
    preview: list[dict[str, Any]] = field(default_factory=list)

    @property
    def transient(self) -> list[SymbolFailure]:
        return [f for f in self.failures if f.kind in TRANSIENT_FAILURE_KINDS]


@dataclass(frozen=True)
class GroupWrite:
    rows_written: int
    rows_deleted: int = 0
    statements: int = 1


def fetch_and_write(
    client: FMPClient,
    symbols: Sequence[str],
    *,
    group_size: int,
    fetch: Callable[[FMPClient, str], SymbolHistory[_BarT]],
    write: Callable[[list[SymbolHistory[_BarT]]], GroupWrite],
    tally: HistoryTally,
    log: Callable[[str], None],
) -> None:
    """Fetch ``symbols`` concurrently, ``group_size`` at a time, writing each group as the
    next one is fetched.

    At most two groups' bars are in memory: the one being written and the one being
    fetched. A symbol whose request failed keeps its stored rows; its failure is recorded
    in ``tally``.
    """

    def account(done: GroupWrite) -> None:
        tally.rows_written += done.rows_written
        tally.rows_deleted += done.rows_deleted
        tally.statements += done.statements
        tally.transactions += 1

    requests_at_start = client.requests_made
    # One writer thread: the database sees one transaction at a time, while the API is
    # already answering the next group's requests.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-writer") as writer:
        pending: Future[GroupWrite] | None = None
        try:
            for offset in range(0, len(symbols), group_size):
                group = symbols[offset : offset + group_size]
                histories = client.map_concurrently(lambda symbol: fetch(client, symbol), group)
                for history in histories:
                    if history.failure is not None:
                        tally.failures.append(history.failure)
                    if history.answered:
                        tally.answered += 1
                        if not history.bars and history.failure is None:
                            tally.without_data.append(history.symbol)
                    tally.rows_dropped += history.rows_outside_range
                answered = [h for h in histories if h.answered]
                if len(tally.preview) < 10:
                    tally.preview.extend(_preview_rows(answered, 10 - len(tally.preview)))
                if pending is not None:
                    account(pending.result())
                pending = writer.submit(write, answered) if answered else None
                log(
                    f"tickers {offset + 1}-{offset + len(group)} of {len(symbols)} fetched: "
                    f"{sum(len(h.bars) for h in answered)} bars, "
                    f"{client.requests_made - requests_at_start} requests so far"
                )
        finally:
            # Also when a fetch failed (a refused key, a spent quota): the write under way
            # finishes, and its rows, or its error, are accounted for.
            if pending is not None:
                account(pending.result())


def fetch_with_second_pass(
    client: FMPClient,
    symbols: Sequence[str],
    *,
    config: HistoryFetchConfig,
    group_size: int,
    fetch: Callable[[FMPClient, str], SymbolHistory[_BarT]],
    write: Callable[[list[SymbolHistory[_BarT]]], GroupWrite],
    log: Callable[[str], None],
) -> HistoryTally:
    """:func:`fetch_and_write` over every symbol, then once more over the transient failures."""
    tally = HistoryTally(tickers=len(symbols))
    fetch_and_write(
        client, symbols, group_size=group_size, fetch=fetch, write=write, tally=tally, log=log
    )
    retry = sorted({f.symbol for f in tally.transient})
    if retry:
        log(
            f"{len(retry)} tickers failed transiently; asking once more in "
            f"{config.retry_delay_seconds:g} s"
        )
        time.sleep(config.retry_delay_seconds)
        retrying = set(retry)
        tally.failures = [f for f in tally.failures if f.symbol not in retrying]
        fetch_and_write(
            client, retry, group_size=group_size, fetch=fetch, write=write, tally=tally, log=log
        )
    return tally


def _preview_rows(histories: Iterable[SymbolHistory[Any]], limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for history in histories:
        for bar in history.bars[:limit]:
            when = bar.day if isinstance(bar, DailyBar) else bar.bar_start
            rows.append(
                {
                    "ticker": bar.symbol,
                    "when": when.isoformat(),
                    "open": str(bar.open),
                    "high": str(bar.high),
                    "low": str(bar.low),
                    "close": str(bar.close),
                    "volume": bar.volume,
                }
            )
        if rows:
            break
    return rows[:limit]


def _tally_metadata(tally: HistoryTally, requests: int, seconds: float) -> dict[str, Any]:
    return {
        "dagster/row_count": tally.rows_written,
        "rows_written": tally.rows_written,
        "rows_replaced": tally.rows_deleted,
        "rows_dropped": tally.rows_dropped,
        "tickers_requested": tally.tickers,
        "tickers_answered": tally.answered,
        "tickers_without_data": len(tally.without_data),
        "tickers_failed": len({f.symbol for f in tally.failures}),
        "failures_by_kind": dict(Counter(f.kind.value for f in tally.failures)),
        "failures": dg.MetadataValue.md(
            failures_table(tally.failures, empty="_every ticker answered_")
        ),
        "api_requests": requests,
        "write_transactions": tally.transactions,
        "insert_statements": tally.statements,
        "seconds": round(seconds, 3),
        "preview": dg.MetadataValue.md(markdown_table(tally.preview)),
    }


def _refused(exc: FMPError, requests: int) -> dg.Failure:
    # Groups written before the refusal stay written: a re-run replaces them exactly.
    return dg.Failure(
        f"The FMP API refused the run: {exc}",
        metadata={"kind": exc.kind.value, "api_requests": requests},
        allow_retries=False,
    )


def _fail_on_transient(tally: HistoryTally, metadata: dict[str, Any]) -> None:
    transient = tally.transient
    if transient:
        raise dg.Failure(
            f"{len(transient)} tickers still failed after a second try "
            f"({dict(Counter(f.kind.value for f in transient))}); the other tickers were "
            "written. Re-materialize the same range: it replaces rows exactly.",
            metadata=metadata,
        )


def _tracked(database: DatabaseResource) -> list[str]:
    symbols = list_tickers(database.get_engine())
    if not symbols:
        raise dg.Failure(
            "No tickers to fetch: add some with `quote-pipeline tickers add SYM…`.",
            allow_retries=False,
        )
    return symbols


# --- daily_prices --------------------------------------------------------------------------------


def partition_dates(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """The first and last New York date of the run's partition (range)."""
    window = context.partition_time_window
    return window.start.date(), window.end.date() - timedelta(days=1)


def unfinished_session(sessions: Sequence[date], now: datetime) -> tuple[date, datetime] | None:
    """The last of ``sessions`` and its close, if it has not closed by ``now``."""
    if not sessions:
        return None
    closes_at = session_hours(sessions[-1])[1]
    return (sessions[-1], closes_at) if closes_at > now else None


@dg.asset(
    partitions_def=daily_partitions,
    # A backfill of any range is one run: one request per ticker for the whole range.
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="fmp_api",
    group_name=GROUP,
    owners=OWNERS,
    kinds={"api", "sql", "table"},
    check_specs=daily_check_specs,
    metadata={"dagster/column_schema": DAILY_COLUMNS, "dagster/table_name": "daily_prices"},
)
def daily_prices(
    context: dg.AssetExecutionContext,
    config: HistoryFetchConfig,
    fmp: FMPResource,
    database: DatabaseResource,
) -> dg.MaterializeResult:
    """Daily open, high, low, close and volume (change and vwap where given) of every
    tracked ticker, one partition per New York day (NYSE sessions only).

    A run over a partition range asks the API once per ticker for the whole range, fetching
    tickers concurrently in groups and writing each group in one transaction that deletes
    the range's rows of those tickers and bulk-upserts the new ones: re-materializing
    replaces rows exactly. A ticker whose request failed keeps its stored rows.
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
    symbols = _tracked(database)
    if not sessions:
        context.log.info(f"No NYSE session from {start} to {end}: nothing to fetch or write.")
        tally = HistoryTally(tickers=len(symbols))
        metadata = _tally_metadata(tally, 0, time.monotonic() - started)
        return dg.MaterializeResult(
            metadata={**metadata, "first_day": start.isoformat(), "last_day": end.isoformat()},
            check_results=[
                daily_consistency_result(engine, symbols, start, end),
                missing_sessions_result(engine, symbols, sessions),
            ],
        )

    session_days = set(sessions)
    group_size = max(1, config.max_rows_in_memory // (2 * len(sessions)))
    context.log.info(
        f"{len(symbols)} tickers x {len(sessions)} sessions ({start} to {end}): one request "
        f"per ticker, {min(group_size, len(symbols))} tickers per write"
    )

    def write(histories: list[SymbolHistory[DailyBar]]) -> GroupWrite:
        # Only a clean answer replaces stored rows: an empty answer (a plan's history horizon,
        # a delisting) or one with rejected rows keeps what is stored, and is reported.
        clean = [h for h in histories if h.bars and h.failure is None]
        bars = [b for h in clean for b in h.bars if b.day in session_days]
        summary = replace_daily_prices(
            engine,
            [h.symbol for h in clean],
            start,
            end,
            bars,
            chunk_rows=config.chunk_rows,
            starts={h.symbol: min(b.day for b in h.bars) for h in clean},
        )
        return GroupWrite(summary.rows_written, summary.rows_deleted, summary.statements)

    def fetch(client: FMPClient, symbol: str) -> SymbolHistory[DailyBar]:
        history = fetch_daily_history(client, symbol, start, end)
        off_session = sum(1 for b in history.bars if b.day not in session_days)
        history.rows_outside_range += off_session
        return history

    client = fmp.get_client()
    requests_before = client.requests_made
    try:
        tally = fetch_with_second_pass(
            client,
            symbols,
            config=config,
            group_size=group_size,
            fetch=fetch,
            write=write,
            log=context.log.info,
        )
    except FMPError as exc:  # invalid key, quota gone, endpoint not in the plan
        raise _refused(exc, client.requests_made - requests_before) from None
    requests = client.requests_made - requests_before
    no_data = [
        SymbolFailure(
            s, FailureKind.NO_QUOTE, "the API has no daily bars in this range; stored rows kept"
        )
        for s in tally.without_data
    ]
    tally.failures.extend(no_data)
    metadata = {
        **_tally_metadata(tally, requests, time.monotonic() - started),
        "first_day": start.isoformat(),
        "last_day": end.isoformat(),
        "sessions": len(sessions),
    }
    if start != end:
        # Every partition of a range gets this metadata: the run's total is not its row count.
        del metadata["dagster/row_count"]
    _fail_on_transient(tally, metadata)
    context.log.info(
        f"{tally.rows_written} rows written ({tally.rows_deleted} replaced) for "
        f"{tally.answered} of {len(symbols)} tickers with {requests} requests"
    )
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            daily_consistency_result(engine, symbols, start, end),
            missing_sessions_result(engine, symbols, sessions),
        ],
    )


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
    group_name=GROUP,
    owners=OWNERS,
    kinds={"api", "sql", "table"},
    check_specs=intraday_check_specs,
    metadata={"dagster/column_schema": INTRADAY_COLUMNS, "dagster/table_name": "intraday_bars"},
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
    right UTC instant. Each run re-fetches its dates whole (one request per ticker) and
    upserts: the bar still forming at the last run is completed by the next.
    """
    started = time.monotonic()
    start, end = intraday_dates(config, datetime.now(UTC))
    sessions = sessions_between(start, end)
    engine = database.get_engine()
    symbols = _tracked(database)
    # The check covers the refreshed New York dates, midnight to midnight, in UTC.
    check_from = datetime.combine(start, datetime.min.time(), NEW_YORK).astimezone(UTC)
    check_to = datetime.combine(end + timedelta(days=1), datetime.min.time(), NEW_YORK)
    check_to = check_to.astimezone(UTC) - timedelta(microseconds=1)
    if not sessions:
        context.log.info(f"No NYSE session from {start} to {end}: nothing to fetch.")
        metadata = _tally_metadata(HistoryTally(tickers=len(symbols)), 0, 0.0)
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[intraday_consistency_result(engine, symbols, check_from, check_to)],
        )
    group_size = max(1, config.max_rows_in_memory // (2 * BARS_PER_SESSION * len(sessions)))

    def write(histories: list[SymbolHistory[IntradayBar]]) -> GroupWrite:
        bars = (b for h in histories for b in h.bars)
        return GroupWrite(upsert_intraday_bars(engine, bars, chunk_rows=config.chunk_rows))

    def fetch(client: FMPClient, symbol: str) -> SymbolHistory[IntradayBar]:
        return fetch_intraday_bars(client, symbol, start, end)

    client = fmp.get_client()
    requests_before = client.requests_made
    try:
        tally = fetch_with_second_pass(
            client,
            symbols,
            config=config,
            group_size=group_size,
            fetch=fetch,
            write=write,
            log=context.log.info,
        )
    except FMPError as exc:
        raise _refused(exc, client.requests_made - requests_before) from None
    requests = client.requests_made - requests_before
    metadata = {
        **_tally_metadata(tally, requests, time.monotonic() - started),
        "first_day": start.isoformat(),
        "last_day": end.isoformat(),
    }
    _fail_on_transient(tally, metadata)
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[intraday_consistency_result(engine, symbols, check_from, check_to)],
    )
