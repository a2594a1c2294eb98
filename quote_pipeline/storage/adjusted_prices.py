"""``daily_prices_adjusted``: derived from ``daily_prices``, ``stock_splits`` and ``dividends``
in the database, with no API call (the arithmetic is :mod:`quote_pipeline.adjustments`).

One refresh brings the whole table up to date in one transaction, doing only the work the
changes need:

- a ticker whose applicable corporate actions changed (a new split or dividend, a corrected
  one, an ex-date that has now passed) has its whole adjusted history rewritten — every
  earlier day's factors changed;
- a ticker whose actions did not change gets only its new or re-fetched rows (a raw row
  whose ``fetched_at`` differs from the one the adjusted row was computed from); if one of
  them lies before the ticker's latest ex-date (a backfill of older history, whose closes a
  dividend factor may use) the ticker is rewritten instead;
- adjusted rows whose raw row is gone are deleted.

So the daily close adds one row per ticker, and a split announced today re-bases that one
ticker's history, without fetching anything again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from quote_pipeline.adjustments import (
    AdjustedDay,
    CorporateActions,
    RawDay,
    adjust_history,
    as_traded,
    dividend_factor_of,
    effective_actions,
    split_ratio,
)
from quote_pipeline.compat import batched
from quote_pipeline.market_calendar import NEW_YORK
from quote_pipeline.price_bars import SPLIT_ADJUSTED
from quote_pipeline.storage.corporate_actions import read_dividends, read_splits
from quote_pipeline.storage.repository import (
    IN_LIST_LIMIT,
    as_date,
    count_rows,
    dialect_insert,
    one_writer_at_a_time,
    stale_rows,
    transaction,
)
from quote_pipeline.storage.schema import (
    daily_prices,
    daily_prices_adjusted,
    price_adjustment_state,
)

DEFAULT_CHUNK_ROWS = 5_000
_ADJUSTED_COLUMNS = (
    "adj_open",
    "adj_high",
    "adj_low",
    "adj_close",
    "adj_volume",
    "split_factor",
    "dividend_factor",
    "raw_fetched_at",
)


@dataclass
class AdjustmentSummary:
    """What one refresh of ``daily_prices_adjusted`` did."""

    tickers: int = 0  # tickers with stored daily rows
    rebased: list[str] = field(default_factory=list)  # whole history rewritten
    extended: list[str] = field(default_factory=list)  # only new or re-fetched rows
    rows_written: int = 0
    rows_deleted: int = 0
    statements: int = 0
    why_rebased: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Stale:
    ticker: str
    day: date


def _raw_query() -> sa.Select[Any]:
    c = daily_prices.c
    return sa.select(
        c.ticker, c.date, c.open, c.high, c.low, c.close, c.volume, c.price_basis, c.fetched_at
    )


def _raw_day(row: Any) -> RawDay:
    return RawDay(
        day=row.date,
        open=row.open,
        high=row.high,
        low=row.low,
        close=row.close,
        volume=row.volume,
        price_basis=row.price_basis,
        # Only a legacy row needs its fetch day (and the time-zone conversion costs).
        fetched_on=row.fetched_at.astimezone(NEW_YORK).date()
        if row.price_basis == SPLIT_ADJUSTED
        else None,
    )


def _adjusted_row(day: AdjustedDay, raw_fetched_at: datetime) -> dict[str, Any]:
    return {
        "ticker": day.symbol,
        "date": day.day,
        "adj_open": day.adj_open,
        "adj_high": day.adj_high,
        "adj_low": day.adj_low,
        "adj_close": day.adj_close,
        "adj_volume": day.adj_volume,
        "split_factor": day.split_factor,
        "dividend_factor": day.dividend_factor,
        "raw_fetched_at": raw_fetched_at,
    }


def _stale_query() -> sa.Select[Any]:
    """Raw rows without an adjusted row (``missing``), or re-fetched since theirs was
    computed: what a refresh writes and what the coverage check counts."""
    d, a = daily_prices.c, daily_prices_adjusted.c
    return (
        sa.select(d.ticker, d.date, a.ticker.is_(None).label("missing"))
        .select_from(
            daily_prices.outerjoin(
                daily_prices_adjusted, sa.and_(a.ticker == d.ticker, a.date == d.date)
            )
        )
        .where(sa.or_(a.ticker.is_(None), a.raw_fetched_at != d.fetched_at))
    )


def _stale_rows(conn: Connection) -> list[_Stale]:
    return [_Stale(ticker, day) for ticker, day, _ in conn.execute(_stale_query())]


def _orphans(conn: Connection) -> list[_Stale]:
    """Adjusted rows whose raw row is gone."""
    d, a = daily_prices.c, daily_prices_adjusted.c
    query = (
        sa.select(a.ticker, a.date)
        .select_from(
            daily_prices_adjusted.outerjoin(
                daily_prices, sa.and_(a.ticker == d.ticker, a.date == d.date)
            )
        )
        .where(d.ticker.is_(None))
    )
    return [_Stale(ticker, day) for ticker, day in conn.execute(query)]


def _tickers_with_rows(conn: Connection) -> list[str]:
    return list(conn.scalars(sa.select(daily_prices.c.ticker).distinct()))


def _upsert(conn: Connection, rows: list[dict[str, Any]], chunk_rows: int) -> int:
    if not rows:
        return 0
    insert = dialect_insert(conn, daily_prices_adjusted)
    # RETURNING makes SQLAlchemy send multi-row VALUES pages ("insertmanyvalues"); without
    # it psycopg2's executemany costs a round trip per row.
    statement = insert.on_conflict_do_update(
        index_elements=["ticker", "date"],
        set_={c: insert.excluded[c] for c in _ADJUSTED_COLUMNS},
    ).returning(daily_prices_adjusted.c.ticker)
    sent = 0
    for chunk in batched(rows, chunk_rows):
        conn.execute(statement, list(chunk)).all()
        sent += 1
    return sent


def _read_raw(conn: Connection, ticker: str, days: Iterable[date] | None = None) -> Iterator[Any]:
    query = _raw_query().where(daily_prices.c.ticker == ticker).order_by(daily_prices.c.date)
    if days is not None:
        query = query.where(daily_prices.c.date.in_(list(days)))
    return iter(conn.execute(query))


def refresh_adjusted_prices(
    engine: Engine,
    *,
    as_of: date,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    now: datetime | None = None,
) -> AdjustmentSummary:
    """Bring ``daily_prices_adjusted`` up to date with the stored rows and the corporate
    actions that have happened by ``as_of`` (a New York date, normally today). One
    transaction: a reader sees the old adjusted history or the new one, never a mix.
    Concurrent refreshes take turns (the second finds the work done)."""
    computed_at = now or datetime.now(UTC)
    summary = AdjustmentSummary()
    with engine.begin() as conn:
        one_writer_at_a_time(conn, daily_prices_adjusted.name)
        splits = read_splits(conn)
        dividends = read_dividends(conn)
        tickers = _tickers_with_rows(conn)
        summary.tickers = len(tickers)
        state = {
            row.ticker: row.actions_fingerprint
            for row in conn.execute(sa.select(price_adjustment_state))
        }
        stale: defaultdict[str, list[date]] = defaultdict(list)
        for row in _stale_rows(conn):
            stale[row.ticker].append(row.day)
        orphans: defaultdict[str, list[date]] = defaultdict(list)
        for row in _orphans(conn):
            orphans[row.ticker].append(row.day)
        # On PostgreSQL each statement sees what committed before it: a ticker whose first
        # rows landed after the query above is among the stale ones. It is done next time
        # if not now, never a KeyError.
        tickers = sorted(set(tickers) | set(stale))
        summary.tickers = len(tickers)
        actions: dict[str, CorporateActions] = {
            t: effective_actions(splits.get(t, []), dividends.get(t, []), as_of) for t in tickers
        }

        rebase: dict[str, str] = {}
        for ticker in tickers:
            latest_ex = actions[ticker].latest_ex_date
            if ticker not in state:
                rebase[ticker] = "first computation"
            elif state[ticker] != actions[ticker].fingerprint():
                rebase[ticker] = "corporate actions changed"
            elif latest_ex is not None and any(
                day < latest_ex for day in stale.get(ticker, []) + orphans.get(ticker, [])
            ):
                rebase[ticker] = "rows before the latest ex-date changed"

        # Tickers that have no raw row any more lose their adjusted rows and state.
        gone = sorted(set(state) - set(tickers))
        for chunk in batched(gone, IN_LIST_LIMIT):
            summary.rows_deleted += conn.execute(
                sa.delete(daily_prices_adjusted).where(daily_prices_adjusted.c.ticker.in_(chunk))
            ).rowcount
            conn.execute(
                sa.delete(price_adjustment_state).where(price_adjustment_state.c.ticker.in_(chunk))
            )

        pending: list[dict[str, Any]] = []
        for ticker in sorted(rebase):
            raw_rows = list(_read_raw(conn, ticker))
            summary.rows_deleted += conn.execute(
                sa.delete(daily_prices_adjusted).where(daily_prices_adjusted.c.ticker == ticker)
            ).rowcount
            adjusted = adjust_history(ticker, [_raw_day(r) for r in raw_rows], actions[ticker])
            pending += [
                _adjusted_row(day, raw.fetched_at)
                for day, raw in zip(adjusted, raw_rows, strict=True)
            ]
            summary.rebased.append(ticker)
            summary.why_rebased[ticker] = rebase[ticker]
            if len(pending) >= chunk_rows:
                summary.statements += _upsert(conn, pending, chunk_rows)
                summary.rows_written += len(pending)
                pending = []
        insert = dialect_insert(conn, price_adjustment_state)
        if rebase:
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["ticker"],
                    set_={
                        "actions_fingerprint": insert.excluded.actions_fingerprint,
                        "computed_at": insert.excluded.computed_at,
                    },
                ),
                [
                    {
                        "ticker": t,
                        "actions_fingerprint": actions[t].fingerprint(),
                        "computed_at": computed_at,
                    }
                    for t in sorted(rebase)
                ],
            )

        for ticker in sorted(set(stale) - set(rebase)):
            # Every stale day is on or after the latest ex-date: both factors are 1 there,
            # so each row is computed alone.
            for days in batched(sorted(stale[ticker]), IN_LIST_LIMIT):
                raw_rows = list(_read_raw(conn, ticker, days))
                adjusted = adjust_history(ticker, [_raw_day(r) for r in raw_rows], actions[ticker])
                pending += [
                    _adjusted_row(day, raw.fetched_at)
                    for day, raw in zip(adjusted, raw_rows, strict=True)
                ]
            summary.extended.append(ticker)
            if len(pending) >= chunk_rows:
                summary.statements += _upsert(conn, pending, chunk_rows)
                summary.rows_written += len(pending)
                pending = []
        summary.statements += _upsert(conn, pending, chunk_rows)
        summary.rows_written += len(pending)

        for ticker in sorted(set(orphans) - set(rebase) - set(gone)):
            for days in batched(sorted(orphans[ticker]), IN_LIST_LIMIT):
                summary.rows_deleted += conn.execute(
                    sa.delete(daily_prices_adjusted).where(
                        daily_prices_adjusted.c.ticker == ticker,
                        daily_prices_adjusted.c.date.in_(list(days)),
                    )
                ).rowcount
    return summary


# --- reads and checks ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdjustedRow:
    ticker: str
    day: date
    adj_open: Decimal
    adj_high: Decimal
    adj_low: Decimal
    adj_close: Decimal
    adj_volume: int
    split_factor: Decimal
    dividend_factor: Decimal


def read_adjusted_prices(
    bind: Engine | Connection,
    symbols: Iterable[str] | None = None,
    start: date | None = None,
    end: date | None = None,
) -> list[AdjustedRow]:
    """Stored adjusted rows (all, or of ``symbols``, dated ``start`` to ``end``), in order."""
    a = daily_prices_adjusted.c
    query = sa.select(daily_prices_adjusted).order_by(a.ticker, a.date)
    if symbols is not None:
        query = query.where(a.ticker.in_(list(symbols)))
    if start is not None:
        query = query.where(a.date >= start)
    if end is not None:
        query = query.where(a.date <= end)
    with transaction(bind) as conn:
        return [
            AdjustedRow(
                r.ticker,
                r.date,
                r.adj_open,
                r.adj_high,
                r.adj_low,
                r.adj_close,
                r.adj_volume,
                r.split_factor,
                r.dividend_factor,
            )
            for r in conn.execute(query)
        ]


@dataclass(frozen=True, slots=True)
class Coverage:
    """How well ``daily_prices_adjusted`` covers ``daily_prices``."""

    raw_rows: int
    missing: int  # raw rows without an adjusted row
    outdated: int  # adjusted rows computed from an older fetch of their raw row
    examples: list[str]


def adjusted_coverage(bind: Engine | Connection, *, example_limit: int = 10) -> Coverage:
    d = daily_prices.c
    with transaction(bind) as conn:
        raw_rows = count_rows(conn, daily_prices)
        stale = stale_rows(
            conn, _stale_query().order_by(d.ticker, d.date), example_limit=example_limit
        )
    return Coverage(raw_rows, stale.missing, stale.outdated, stale.examples)


def tickers_behind_actions(bind: Engine | Connection, *, as_of: date) -> list[str]:
    """Tickers whose adjusted history was computed with other corporate actions than those
    stored now (a split stored but not yet applied, or one since withdrawn)."""
    with transaction(bind) as conn:
        splits, dividends = read_splits(conn), read_dividends(conn)
        state = dict(
            conn.execute(
                sa.select(
                    price_adjustment_state.c.ticker, price_adjustment_state.c.actions_fingerprint
                )
            ).all()
        )
    return sorted(
        ticker
        for ticker, fingerprint in state.items()
        if effective_actions(splits.get(ticker, []), dividends.get(ticker, []), as_of).fingerprint()
        != fingerprint
    )


@dataclass(frozen=True, slots=True)
class SplitJump:
    """The adjusted move across one split's ex-date against what the raw move explains."""

    ticker: str
    ex_date: date
    previous_day: date
    adjusted_move: Decimal  # adj_close(ex) / adj_close(previous)
    explained_move: Decimal  # raw close move x split ratio / (1 - same-day dividend yield)
    raw_move: Decimal  # close(ex) / close(previous), as traded

    @property
    def split_seen_in_raw_prices(self) -> bool:
        """Whether the as-traded closes moved by about the split's ratio: the day's move
        net of the split within a halving or doubling. A split the prices do not show is
        likely wrong (or dated wrong), and its adjustment would invent a jump."""
        return Decimal("0.5") <= self.explained_move <= Decimal(2)

    @property
    def relative_gap(self) -> Decimal:
        return abs(self.adjusted_move / self.explained_move - 1)


def split_jumps(bind: Engine | Connection, *, as_of: date) -> list[SplitJump]:
    """For every applicable split with stored sessions on both sides of its ex-date: the
    adjusted day-over-day move there and the move the raw closes and the split explain.

    They differ only by rounding when the adjusted history reflects the split; a stale
    adjusted history shows the split's whole ratio as a jump (a fake 75 % crash for 4:1).
    """
    with transaction(bind) as conn:
        splits = read_splits(conn)
        dividends = read_dividends(conn)
        jumps: list[SplitJump] = []
        for ticker, ticker_splits in sorted(splits.items()):
            actions = effective_actions(ticker_splits, dividends.get(ticker, []), as_of)
            by_date: dict[date, Decimal] = {}
            for split in actions.splits:
                by_date[split.ex_date] = by_date.get(split.ex_date, Decimal(1)) * split_ratio(split)
            for ex_date, ratio in sorted(by_date.items()):
                jump = _jump(conn, ticker, ex_date, ratio, actions)
                if jump is not None:
                    jumps.append(jump)
    return jumps


def _jump(
    conn: Connection,
    ticker: str,
    ex_date: date,
    ratio: Decimal,
    actions: CorporateActions,
) -> SplitJump | None:
    d, a = daily_prices.c, daily_prices_adjusted.c
    previous = conn.scalar(
        sa.select(sa.func.max(d.date)).where(d.ticker == ticker, d.date < ex_date)
    )
    if previous is None:
        return None
    previous = as_date(previous)
    raw = {
        r.date: as_traded(_raw_day(r), actions.splits)
        for r in conn.execute(
            _raw_query().where(d.ticker == ticker, d.date.in_([previous, ex_date]))
        )
    }
    adjusted = dict(
        conn.execute(
            sa.select(a.date, a.adj_close).where(
                a.ticker == ticker, a.date.in_([previous, ex_date])
            )
        ).all()
    )
    if len(raw) < 2 or len(adjusted) < 2 or ex_date not in raw:
        return None
    explained = raw[ex_date].close * ratio / raw[previous].close
    for event in actions.dividends:
        if event.ex_date == ex_date:
            factor = dividend_factor_of(event, raw[previous], actions.splits)
            if factor > 0:  # one the adjustment left out, too
                explained /= factor
    return SplitJump(
        ticker=ticker,
        ex_date=ex_date,
        previous_day=previous,
        adjusted_move=adjusted[ex_date] / adjusted[previous],
        explained_move=explained,
        raw_move=raw[ex_date].close / raw[previous].close,
    )


__all__ = [
    "AdjustedRow",
    "AdjustmentSummary",
    "Coverage",
    "SplitJump",
    "adjusted_coverage",
    "read_adjusted_prices",
    "refresh_adjusted_prices",
    "split_jumps",
    "tickers_behind_actions",
]
