"""Daily history from the providers in order, written group by group. No Dagster.

The bookkeeping of a history run (:class:`HistoryTally`), the engine's hand-over that writes
each group in one transaction (:func:`writer_of`), and :func:`fetch_daily_in_order`, which
asks each configured provider the cheapest way it offers and passes on only what it could
not serve. The asset (`defs/history/assets.py`) gives it the write functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from quote_pipeline.api_errors import ApiError
from quote_pipeline.fetch_engine import FetchReport, SymbolResult
from quote_pipeline.fmp.history import SymbolHistory
from quote_pipeline.market_calendar import NEW_YORK
from quote_pipeline.models import FailureKind, SymbolFailure
from quote_pipeline.price_bars import DailyBar
from quote_pipeline.providers.base import GroupedDay, MarketDataProvider, ProviderRefusal
from quote_pipeline.providers.fallback import (
    ProvidersRefused,
    Said,
    combined_failure,
    combined_kind,
    record_failure,
)


@dataclass
class HistoryTally:
    """What a history run wrote, summed over its groups (no bars are kept here)."""

    rows_written: int = 0
    rows_deleted: int = 0
    rows_dropped: int = 0  # outside the range, or on a day without an NYSE session
    transactions: int = 0
    statements: int = 0
    without_data: list[str] = field(default_factory=list)
    preview: list[dict[str, Any]] = field(default_factory=list)

    def book(self, done: GroupWrite) -> None:
        self.rows_written += done.rows_written
        self.rows_deleted += done.rows_deleted
        self.statements += done.statements
        self.transactions += 1

    def account(self, histories: Sequence[SymbolHistory[Any]]) -> None:
        for history in histories:
            self.rows_dropped += history.rows_outside_range
            if not history.bars and history.failure is None:
                self.without_data.append(history.symbol)
        if len(self.preview) < 10:
            self.preview.extend(_preview_rows(histories, 10 - len(self.preview)))


@dataclass(frozen=True)
class GroupWrite:
    rows_written: int
    rows_deleted: int = 0
    statements: int = 1


WriteGroup = Callable[[list[SymbolHistory[Any]]], GroupWrite]
"""Writes one group of answered histories in one transaction."""


def writer_of(
    write: WriteGroup, tally: HistoryTally
) -> Callable[[list[SymbolResult[SymbolHistory[Any]]]], None]:
    """The engine's hand-over: each group's answered histories written in one transaction,
    and booked in ``tally``."""

    def on_group(results: list[SymbolResult[SymbolHistory[Any]]]) -> None:
        answered = [r.value for r in results if r.value is not None]
        if answered:
            tally.book(write(answered))
        tally.account(answered)  # after the write, which counts the bars it drops

    return on_group


@dataclass(frozen=True)
class DailyWork:
    """Tickers still to be asked for their bars over one date range."""

    symbols: tuple[str, ...]
    start: date
    end: date


# What a provider's empty answer for a ticker says, so that a later provider is asked and,
# if none has bars either, the ticker is reported as without data (its rows kept).
_NO_BARS = "no daily bars in this range"


def fetch_daily_in_order(
    chain: Sequence[MarketDataProvider],
    symbols: Sequence[str],
    sessions: Sequence[date],
    *,
    write_range: Callable[[date, date], WriteGroup],
    write_session: Callable[[date, list[DailyBar]], GroupWrite],
    max_rows_in_memory: int,
    log: Callable[[str], None],
) -> tuple[FetchReport[Any], HistoryTally, list[str]]:
    """Daily bars of ``symbols`` over ``sessions`` from the history providers in order.

    Each provider is asked the cheapest way it offers: a provider with grouped daily bars
    (every US stock for one session per request) is asked once per session when there are
    fewer sessions than tickers, else one request per ticker for the whole range. What a
    provider could not serve — tickers it refused or had no bars for, sessions it failed
    — is asked of the next, and only that. Returns the run's report (a ticker fails only
    when every provider failed it; its record lists each one's reason), the tally, and the
    fallbacks in words.
    """
    tally = HistoryTally()
    report: FetchReport[Any] = FetchReport(symbols=len(symbols))
    said: Said = {}
    notes: list[str] = []
    work = [DailyWork(tuple(symbols), sessions[0], sessions[-1])]
    refusals: list[ProviderRefusal] = []
    refused_kinds: list[FailureKind] = []
    for index, provider in enumerate(chain):
        if not work:
            break
        following = chain[index + 1].name if index + 1 < len(chain) else None
        if held := provider.held_reason():
            for item in work:
                record_failure(said, item.symbols, provider.name, FailureKind.QUOTA_EXHAUSTED, held)
            refusals.append(ProviderRefusal(provider.name, held))
            refused_kinds.append(FailureKind.QUOTA_EXHAUSTED)
            if following:
                notes.append(f"{provider.name} skipped ({held}): asking {following}")
            continue
        requests_before = provider.requests_made
        leftover: list[DailyWork] = []
        for item in work:
            item_sessions = [d for d in sessions if item.start <= d <= item.end]
            try:
                if provider.has_grouped_daily and len(item_sessions) < len(item.symbols):
                    log(
                        f"{provider.name}: {len(item_sessions)} grouped-daily request(s) for "
                        f"{len(item.symbols)} tickers ({item.start} to {item.end})"
                    )
                    part, left = _grouped(
                        provider, item, item_sessions, write_session, tally, max_rows_in_memory,
                        said, log,
                    )  # fmt: skip
                else:
                    part, left = _per_ticker(
                        provider, item, len(item_sessions), write_range, tally,
                        max_rows_in_memory, said, log,
                    )  # fmt: skip
            except ApiError as exc:  # the key or the endpoint: nothing more from this one
                if len(chain) == 1:
                    raise
                refusals.append(ProviderRefusal(provider.name, f"{exc.kind.value}: {exc}"))
                refused_kinds.append(exc.kind)
                record_failure(said, item.symbols, provider.name, exc.kind, str(exc))
                leftover.extend(work[work.index(item) :])
                notes.append(f"{provider.name} refused the run ({exc.kind.value}: {exc})")
                break
            report.passes = max(report.passes, part.passes)
            for symbol, attempts in part.attempts.items():
                report.attempts[symbol] = report.attempts.get(symbol, 0) + attempts
            leftover.extend(left)
        report.requests_made += provider.requests_made - requests_before
        work = leftover
        if work and following:
            count = len({s for item in work for s in item.symbols})
            notes.append(f"{count} ticker(s) {provider.name} could not serve asked of {following}")
    if len(refusals) == len(chain):
        raise ProvidersRefused(refusals, combined_kind(refused_kinds))
    failed = {s for item in work for s in item.symbols}
    order = {s: i for i, s in enumerate(symbols)}
    for symbol in sorted(failed, key=order.__getitem__):
        reasons = said.get(symbol, [])
        if reasons and all(f.message == _NO_BARS for _, f in reasons):
            tally.without_data.append(symbol)
        else:
            report.failures.append(combined_failure(symbol, reasons))
    # Answered, as before providers: a ticker with no bars anywhere was still answered.
    report.succeeded = len(symbols) - len({f.symbol for f in report.failures})
    report.quota_exhausted = any(f.kind == FailureKind.QUOTA_EXHAUSTED for f in report.failures)
    return report, tally, notes


def _per_ticker(
    provider: MarketDataProvider,
    item: DailyWork,
    session_count: int,
    write_range: Callable[[date, date], WriteGroup],
    tally: HistoryTally,
    max_rows_in_memory: int,
    said: Said,
    log: Callable[[str], None],
) -> tuple[FetchReport[Any], list[DailyWork]]:
    """One request per ticker for the item's range; the tickers left over, for the next."""
    on_group = writer_of(write_range(item.start, item.end), tally)
    empty: list[str] = []

    def booked(results: list[SymbolResult[SymbolHistory[Any]]]) -> None:
        on_group(results)
        empty.extend(
            r.value.symbol
            for r in results
            if r.value is not None and not r.value.bars and r.value.failure is None
        )

    without_before = len(tally.without_data)
    part = provider.engine.fetch(
        item.symbols,
        provider.daily_bars_request(item.start, item.end),
        group_size=max(1, max_rows_in_memory // (2 * max(session_count, 1))),
        on_group=booked,
        log=log,
    )
    # An empty answer is passed on (another provider may have bars), not yet reported.
    del tally.without_data[without_before:]
    for failure in part.failures:
        said.setdefault(failure.symbol, []).append((provider.name, failure))
    record_failure(said, empty, provider.name, FailureKind.NO_QUOTE, _NO_BARS)
    left = {f.symbol for f in part.failures} | set(empty)
    kept = tuple(s for s in item.symbols if s in left)
    return part, [DailyWork(kept, item.start, item.end)] if kept else []


def _grouped(
    provider: MarketDataProvider,
    item: DailyWork,
    sessions: Sequence[date],
    write_session: Callable[[date, list[DailyBar]], GroupWrite],
    tally: HistoryTally,
    max_rows_in_memory: int,
    said: Said,
    log: Callable[[str], None],
) -> tuple[FetchReport[Any], list[DailyWork]]:
    """One whole-market request per session; each session's rows of the item's tickers
    replaced in one transaction. Left over for the next provider: every ticker for the span
    of sessions that failed, and, for the whole range, tickers with a rejected row or in no
    session's answer (with every session answered, a ticker none had has no bars here)."""
    wanted = set(item.symbols)
    covered: set[str] = set()
    spoiled: dict[str, str] = {}

    def request(unit: Sequence[str]) -> list[SymbolResult[GroupedDay]]:
        grouped = provider.grouped_daily(date.fromisoformat(unit[0]), wanted)
        # Only the tracked tickers are kept: a whole-market answer is ~11,000 rows, and
        # two groups of sessions are held at once.
        grouped.bars = {t: b for t, b in grouped.bars.items() if t in wanted}
        grouped.rejected = {t: r for t, r in grouped.rejected.items() if t in wanted}
        return [SymbolResult(unit[0], grouped)]

    def on_group(results: list[SymbolResult[GroupedDay]]) -> None:
        for result in results:
            if result.value is None:
                continue
            grouped = result.value
            for ticker, reason in grouped.rejected.items():
                spoiled.setdefault(ticker, f"{grouped.day}: {reason}")
            bars = [b for t, b in grouped.bars.items() if t not in spoiled]
            if bars:
                tally.book(write_session(grouped.day, bars))
                covered.update(b.symbol for b in bars)

    part = provider.engine.fetch(
        [d.isoformat() for d in sessions],
        request,
        group_size=max(1, max_rows_in_memory // max(len(item.symbols), 1)),
        on_group=on_group,
        log=log,
    )
    for ticker, reason in spoiled.items():
        said.setdefault(ticker, []).append(
            (provider.name, SymbolFailure(ticker, FailureKind.BAD_RESPONSE, reason))
        )
    absent = [s for s in item.symbols if s not in covered and s not in spoiled]
    left = [
        DailyWork(
            tuple(s for s in item.symbols if s in spoiled or s not in covered), item.start, item.end
        )
    ]
    if part.failures:
        # Sessions that failed: the other tickers are asked again for their span alone. A
        # ticker absent from the sessions that answered may have bars in the failed ones:
        # not "no data", a failure (asked of the next provider for the whole range).
        days = sorted(date.fromisoformat(f.symbol) for f in part.failures)
        kind = combined_kind([f.kind for f in part.failures])
        reason = "; ".join(f"{f.symbol}: {f.message}" for f in part.failures[:3])
        record_failure(said, absent, provider.name, kind, f"grouped daily failed for {reason}")
        rest = tuple(s for s in item.symbols if s in covered and s not in spoiled)
        record_failure(said, rest, provider.name, kind, f"grouped daily failed for {reason}")
        left.append(DailyWork(rest, days[0], days[-1]))
    else:
        record_failure(said, absent, provider.name, FailureKind.NO_QUOTE, _NO_BARS)
    # The engine's failures are sessions, not tickers: the report keeps only their cost.
    report: FetchReport[Any] = FetchReport(
        symbols=len(item.symbols), requests_made=part.requests_made, passes=part.passes
    )
    return report, [w for w in left if w.symbols]


def _preview_rows(histories: Sequence[SymbolHistory[Any]], limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for history in histories:
        rows.extend(preview_row(bar) for bar in history.bars[:limit])
        if rows:
            break
    return rows[:limit]


def preview_row(bar: Any) -> dict[str, Any]:
    """A bar as a row of a materialization's preview table (prices as exact text)."""
    return {
        "ticker": bar.symbol,
        "when": _when(bar),
        "open": str(bar.open),
        "high": str(bar.high),
        "low": str(bar.low),
        "close": str(bar.close),
        "volume": bar.volume,
    }


def _when(bar: Any) -> str:
    """A bar's date, or its start as New York wall time to the minute (no seconds or
    microseconds: bars start on 5-minute marks)."""
    if isinstance(bar, DailyBar):
        return bar.day.isoformat()
    return f"{bar.bar_start.astimezone(NEW_YORK):%Y-%m-%d %H:%M} New York"
