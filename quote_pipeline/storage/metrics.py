"""``daily_metrics``: research statistics of ``daily_prices_adjusted``, kept up to date
incrementally (the arithmetic is :mod:`quote_pipeline.analytics`).

One refresh brings the whole table up to date in one transaction, doing only the work the
changes need:

- a ticker whose adjusted history was re-based since its metrics were computed (a new split
  or dividend: ``price_adjustment_state.computed_at`` moved), or whose metrics were never
  computed, is recomputed in full;
- any other ticker resumes at its earliest adjusted row without a current metrics row (new,
  re-fetched, or removed), reading only the ``LOOKBACK_SESSIONS`` sessions before it and the
  stored metrics of the session before it — so the daily close costs a window per ticker;
- metrics of tickers without adjusted rows any more are deleted.

Rows are deleted and bulk-written (COPY on PostgreSQL), never updated row by row.
"""

from __future__ import annotations

import bisect
import io
import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from quote_pipeline.analytics import (
    LOOKBACK_SESSIONS,
    METRIC_COLUMNS,
    METRICS_VERSION,
    STATE_COLUMNS,
    MetricsSeed,
    metrics_arrays,
)
from quote_pipeline.compat import batched
from quote_pipeline.storage.repository import (
    IN_LIST_LIMIT,
    Bind,
    as_date,
    copy_csv,
    count_rows,
    dialect_insert,
    one_writer_at_a_time,
    stale_rows,
    transaction,
)
from quote_pipeline.storage.schema import (
    daily_metrics,
    daily_metrics_state,
    daily_prices_adjusted,
    price_adjustment_state,
)

# Tickers whose sessions are read and computed together: bounds memory on a full
# recomputation (~1,260 sessions each over five years).
DEFAULT_TICKERS_PER_BATCH = 100
_STORED_COLUMNS = ("ticker", "date", *METRIC_COLUMNS, *STATE_COLUMNS, "adjusted_fetched_at")

# The calendar days a resumed computation reads back: LOOKBACK_SESSIONS (a year of sessions)
# and a margin for holidays. A ticker whose window reaches further (a gap of months in its
# history) is recomputed in full.
LOOKBACK_DAYS = timedelta(days=400)
ANALYZE_AFTER_ROWS = 50_000

FIRST_COMPUTATION = "first computation"
REBASED = "adjusted history re-based"
DEFINITIONS_CHANGED = "metric definitions changed"


@dataclass
class MetricsSummary:
    """What one refresh of ``daily_metrics`` did."""

    tickers: int = 0  # tickers with adjusted rows
    recomputed: list[str] = field(default_factory=list)  # whole history
    why_recomputed: dict[str, str] = field(default_factory=dict)
    extended: list[str] = field(default_factory=list)  # resumed at a later session
    rows_written: int = 0  # new and rewritten rows
    rows_removed: int = 0  # rows whose adjusted row or ticker is gone


def _float(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """An exact-decimal column read as float64, correctly rounded on both backends: cast by
    PostgreSQL; on SQLite (where it is text) parsed by Python, not by SQLite's own atof."""
    if dialect == "postgresql":
        return sa.cast(column, sa.Double()).label(column.name)
    return sa.type_coerce(column, sa.String()).label(column.name)


def _adjusted_columns(conn: Connection) -> list[sa.ColumnElement[Any]]:
    a = daily_prices_adjusted.c
    dialect = conn.dialect.name
    return [
        a.ticker,
        a.date,
        _float(a.adj_high, dialect),
        _float(a.adj_low, dialect),
        _float(a.adj_close, dialect),
        a.raw_fetched_at,
    ]


@dataclass
class _Sessions:
    """Adjusted sessions of some tickers, in (ticker, date) order, as columns: plain arrays,
    not a DataFrame, since they are sliced per ticker (hundreds of small computations)."""

    ticker: list[str]
    day: list[date]
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    fetched_at: list[datetime]

    @classmethod
    def of(cls, rows: Sequence[Any]) -> _Sessions:
        columns = list(zip(*rows, strict=True)) if rows else [[]] * 6
        ticker, day, high, low, close, fetched_at = columns
        # float() of the text (SQLite) or the driver's double (PostgreSQL): correctly rounded.
        return cls(
            list(ticker),
            list(day),
            np.array(high, dtype="float64"),
            np.array(low, dtype="float64"),
            np.array(close, dtype="float64"),
            list(fetched_at),
        )

    def by_ticker(self) -> Iterator[tuple[str, slice]]:
        """Each ticker's rows (a slice of every column)."""
        first = 0
        for ticker, rows in itertools.groupby(self.ticker):
            count = sum(1 for _ in rows)
            yield ticker, slice(first, first + count)
            first += count


def _read_full(conn: Connection, tickers: Sequence[str]) -> _Sessions:
    a = daily_prices_adjusted.c
    query = (
        sa.select(*_adjusted_columns(conn)).where(a.ticker.in_(tickers)).order_by(a.ticker, a.date)
    )
    return _Sessions.of(conn.execute(query).all())


def _read_resumed(
    conn: Connection, tickers: Sequence[str], start: date, *, bounded: bool = True
) -> _Sessions:
    """Every adjusted row from ``start`` on, and the ``LOOKBACK_SESSIONS`` before it; with
    ``bounded``, only those within ``LOOKBACK_DAYS`` (an index range per ticker instead of
    its whole history)."""
    a = daily_prices_adjusted.c
    columns = _adjusted_columns(conn)
    ranked = (
        sa.select(
            *columns,
            sa.func.row_number()
            .over(partition_by=a.ticker, order_by=a.date.desc())
            .label("sessions_back"),
        )
        .where(
            a.ticker.in_(tickers),
            a.date < start,
            a.date >= (start - LOOKBACK_DAYS if bounded else date.min),
        )
        .subquery()
    )
    context = sa.select(*(ranked.c[c.name] for c in columns)).where(
        ranked.c.sessions_back <= LOOKBACK_SESSIONS
    )
    later = sa.select(*columns).where(a.ticker.in_(tickers), a.date >= start)
    union = sa.union_all(context, later).subquery()
    query = sa.select(union).order_by(union.c.ticker, union.c.date)
    return _Sessions.of(conn.execute(query).all())


def _seeds(
    conn: Connection, tickers: Sequence[str], start: date, *, bounded: bool = True
) -> dict[str, tuple[date, Any]]:
    """Each ticker's stored metrics row of its last session before ``start`` (with
    ``bounded``, within ``LOOKBACK_DAYS``)."""
    m = daily_metrics.c
    latest = (
        sa.select(m.ticker, sa.func.max(m.date).label("date"))
        .where(
            m.ticker.in_(tickers),
            m.date < start,
            m.date >= (start - LOOKBACK_DAYS if bounded else date.min),
        )
        .group_by(m.ticker)
        .subquery()
    )
    query = sa.select(daily_metrics).join(
        latest, sa.and_(m.ticker == latest.c.ticker, m.date == latest.c.date)
    )
    return {row.ticker: (as_date(row.date), row) for row in conn.execute(query)}


def _with_rows_before(conn: Connection, tickers: Sequence[str], day: date) -> set[str]:
    """Those of ``tickers`` with adjusted rows dated before ``day``."""
    a = daily_prices_adjusted.c
    found: set[str] = set()
    for chunk in batched(tickers, IN_LIST_LIMIT):
        found.update(
            conn.scalars(
                sa.select(a.ticker).where(a.ticker.in_(chunk), a.date < day).group_by(a.ticker)
            )
        )
    return found


def _resume_points(conn: Connection) -> tuple[dict[str, date], dict[str, int]]:
    """Per ticker, the earliest session whose metrics are missing, computed from another fetch
    of its adjusted row, or left over from a removed adjusted row; and how many such
    left-over rows (orphans) each ticker has."""
    a, m = daily_prices_adjusted.c, daily_metrics.c
    stale = (
        sa.select(a.ticker, sa.func.min(a.date))
        .select_from(
            daily_prices_adjusted.outerjoin(
                daily_metrics, sa.and_(m.ticker == a.ticker, m.date == a.date)
            )
        )
        .where(sa.or_(m.ticker.is_(None), m.adjusted_fetched_at != a.raw_fetched_at))
        .group_by(a.ticker)
    )
    orphaned = (
        sa.select(m.ticker, sa.func.min(m.date), sa.func.count())
        .select_from(
            daily_metrics.outerjoin(
                daily_prices_adjusted, sa.and_(m.ticker == a.ticker, m.date == a.date)
            )
        )
        .where(a.ticker.is_(None))
        .group_by(m.ticker)
    )
    points: dict[str, date] = {}
    orphans: dict[str, int] = {}
    for ticker, day in conn.execute(stale):
        points[ticker] = as_date(day)
    for ticker, day, count in conn.execute(orphaned):
        day = as_date(day)
        points[ticker] = min(day, points.get(ticker, day))
        orphans[ticker] = int(count)
    return points, orphans


def _metrics_rows(
    sessions: _Sessions, rows: slice, *, start: int = 0, seed: MetricsSeed | None = None
) -> dict[str, Any]:
    """The metrics of one ticker's sessions ``rows`` from ``start`` on, as stored columns."""
    metrics = metrics_arrays(
        sessions.close[rows], sessions.high[rows], sessions.low[rows], start=start, seed=seed
    )
    written = slice(rows.start + start, rows.stop)
    return {
        "ticker": sessions.ticker[written],
        "date": sessions.day[written],
        **metrics,
        "adjusted_fetched_at": sessions.fetched_at[written],
    }


def _frame_of(computed: list[dict[str, Any]]) -> pd.DataFrame:
    """One DataFrame of the stored columns from the tickers' computed columns."""
    return pd.DataFrame(
        {
            column: [v for part in computed for v in part[column]]
            if column in ("ticker", "date", "adjusted_fetched_at")
            else np.concatenate([part[column] for part in computed])
            for column in _STORED_COLUMNS
        }
    )


def _write(conn: Connection, rows: pd.DataFrame) -> int:
    """Bulk-insert metrics rows (their keys were deleted first, in this transaction)."""
    if rows.empty:
        return 0
    if conn.dialect.name == "postgresql":
        buffer = io.StringIO()
        # Floats as repr (shortest round-trip text: PostgreSQL reads back the same double);
        # NaN as an empty unquoted field: NULL.
        rows.to_csv(buffer, header=False, index=False, na_rep="")
        copy_csv(conn, daily_metrics.name, buffer, _STORED_COLUMNS)
    else:
        records = rows.astype(object).where(rows.notna(), None).to_dict("records")
        conn.execute(sa.insert(daily_metrics), records)
    return len(rows)


def _delete_from(conn: Connection, tickers: Sequence[str], start: date | None = None) -> int:
    deleted = 0
    for chunk in batched(tickers, IN_LIST_LIMIT):
        statement = sa.delete(daily_metrics).where(daily_metrics.c.ticker.in_(chunk))
        if start is not None:
            statement = statement.where(daily_metrics.c.date >= start)
        deleted += conn.execute(statement).rowcount
    return deleted


def refresh_daily_metrics(
    engine: Engine,
    *,
    tickers_per_batch: int = DEFAULT_TICKERS_PER_BATCH,
    now: datetime | None = None,
) -> MetricsSummary:
    """Bring ``daily_metrics`` up to date with ``daily_prices_adjusted``, in one transaction:
    a reader sees the old metrics or the new ones, never a mix. Concurrent refreshes take
    turns (the second finds the work done)."""
    computed_at = now or datetime.now(UTC)
    summary = MetricsSummary()
    with engine.begin() as conn:
        one_writer_at_a_time(conn, daily_metrics.name)
        adjusted_state = dict(
            conn.execute(
                sa.select(price_adjustment_state.c.ticker, price_adjustment_state.c.computed_at)
            ).all()
        )
        s = daily_metrics_state.c
        metrics_state = {
            row.ticker: row
            for row in conn.execute(
                sa.select(s.ticker, s.adjustment_computed_at, s.metrics_version)
            )
        }
        resume, orphans = _resume_points(conn)
        with_rows = set(conn.scalars(sa.select(daily_prices_adjusted.c.ticker).distinct()))
        # A ticker with adjusted rows but no adjustment state is mid-way through its first
        # adjustment: the next refresh of daily_prices_adjusted completes it.
        tickers = sorted(with_rows & set(adjusted_state))
        summary.tickers = len(tickers)

        gone = sorted((set(metrics_state) | set(resume)) - set(tickers))
        summary.rows_removed += _delete_from(conn, gone)
        summary.rows_removed += sum(n for t, n in orphans.items() if t not in gone)
        for chunk in batched(gone, IN_LIST_LIMIT):
            conn.execute(sa.delete(daily_metrics_state).where(s.ticker.in_(chunk)))

        full: dict[str, str] = {}
        for ticker in tickers:
            state = metrics_state.get(ticker)
            if state is None:
                full[ticker] = FIRST_COMPUTATION
            elif state.metrics_version != METRICS_VERSION:
                full[ticker] = DEFINITIONS_CHANGED
            elif state.adjustment_computed_at != adjusted_state[ticker]:
                full[ticker] = REBASED
        by_start: defaultdict[date, list[str]] = defaultdict(list)
        for ticker in tickers:
            if ticker not in full and ticker in resume:
                by_start[resume[ticker]].append(ticker)

        for start, group in sorted(by_start.items()):
            for chunk in batched(sorted(group), tickers_per_batch):
                computed, cannot_resume = _resume(conn, chunk, start)
                full.update(cannot_resume)
                resumed = [t for t in chunk if t not in cannot_resume]
                summary.extended += resumed
                _delete_from(conn, resumed, start)  # rewritten, or orphans counted above
                if computed:
                    summary.rows_written += _write(conn, _frame_of(computed))

        for chunk in batched(sorted(full), tickers_per_batch):
            _delete_from(conn, chunk)  # rewritten, or orphans counted above
            sessions = _read_full(conn, chunk)
            computed = [_metrics_rows(sessions, rows) for _, rows in sessions.by_ticker()]
            if computed:
                summary.rows_written += _write(conn, _frame_of(computed))
        if summary.rows_written >= ANALYZE_AFTER_ROWS and conn.dialect.name == "postgresql":
            # Fresh statistics for the next refresh's anti-joins (autovacuum may be off, or
            # not have run yet): a sample, cheap.
            conn.execute(sa.text(f"ANALYZE {daily_metrics.name}"))
        summary.recomputed = sorted(full)
        summary.why_recomputed = full
        summary.extended.sort()

        done = sorted({*full, *summary.extended})
        if done:
            insert = dialect_insert(conn, daily_metrics_state)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["ticker"],
                    set_={
                        "adjustment_computed_at": insert.excluded.adjustment_computed_at,
                        "metrics_version": insert.excluded.metrics_version,
                        "computed_at": insert.excluded.computed_at,
                    },
                ),
                [
                    {
                        "ticker": t,
                        "adjustment_computed_at": adjusted_state[t],
                        "metrics_version": METRICS_VERSION,
                        "computed_at": computed_at,
                    }
                    for t in done
                ],
            )
    return summary


def _resume(
    conn: Connection, tickers: Sequence[str], start: date
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Metrics of ``tickers`` from ``start`` on, continued from their stored metrics; and
    the tickers that cannot be resumed, with why (they are recomputed in full)."""
    computed: list[dict[str, Any]] = []
    cannot: dict[str, str] = {}
    seeds = _seeds(conn, tickers, start)
    sessions = _read_resumed(conn, tickers, start)
    contexts = _contexts(sessions, start)
    # A short context is the whole history, unless older rows lie beyond the 400 days read (a
    # trading halt, a gap of months): those tickers' windows are read without the bound.
    gapped = _with_rows_before(
        conn, [t for t, n in contexts.items() if n < LOOKBACK_SESSIONS], start - LOOKBACK_DAYS
    )
    if gapped:
        seeds.update(_seeds(conn, sorted(gapped), start, bounded=False))
        unbounded = _read_resumed(conn, sorted(gapped), start, bounded=False)
        parts = [(sessions, t, rows) for t, rows in sessions.by_ticker() if t not in gapped]
        parts += [(unbounded, t, rows) for t, rows in unbounded.by_ticker()]
        contexts.update(_contexts(unbounded, start))
    else:
        parts = [(sessions, t, rows) for t, rows in sessions.by_ticker()]
    for source, ticker, rows in sorted(parts, key=lambda part: part[1]):
        context = contexts[ticker]
        if context == 0:  # nothing stored before the start: the ticker's first sessions
            computed.append(_metrics_rows(source, rows))
        elif ticker in seeds and seeds[ticker][0] == source.day[rows.start + context - 1]:
            seed = MetricsSeed.from_row(seeds[ticker][1])
            computed.append(_metrics_rows(source, rows, start=context, seed=seed))
        else:
            # No stored metrics for the session before (written concurrently, or lost):
            # resuming could not equal a full computation.
            cannot[ticker] = "no stored metrics to resume from"
    return computed, cannot


def _contexts(sessions: _Sessions, start: date) -> dict[str, int]:
    """Per ticker, how many of its rows in ``sessions`` lie before ``start``."""
    return {
        ticker: bisect.bisect_left(sessions.day, start, rows.start, rows.stop) - rows.start
        for ticker, rows in sessions.by_ticker()
    }


# --- reads and checks ----------------------------------------------------------------------------


def read_daily_metrics(
    bind: Bind,
    symbols: Iterable[str] | None = None,
    start: date | None = None,
    end: date | None = None,
) -> pd.DataFrame:
    """Stored metrics (all, or of ``symbols``, dated ``start`` to ``end``) as a DataFrame in
    (ticker, date) order: ``ticker``, ``date`` (datetime.date), ``METRIC_COLUMNS`` as float64
    (NaN where NULL)."""
    m = daily_metrics.c
    query = sa.select(m.ticker, m.date, *(m[c] for c in METRIC_COLUMNS)).order_by(m.ticker, m.date)
    if symbols is not None:
        query = query.where(m.ticker.in_(list(symbols)))
    if start is not None:
        query = query.where(m.date >= start)
    if end is not None:
        query = query.where(m.date <= end)
    with transaction(bind) as conn:
        return _metrics_frame(conn.execute(query).all())


def _metrics_frame(rows: Sequence[Any]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=["ticker", "date", *METRIC_COLUMNS])
    for column in METRIC_COLUMNS:
        frame[column] = frame[column].astype("float64")
    frame["date"] = frame["date"].map(as_date)
    return frame


def read_latest_metrics(bind: Bind, symbols: Iterable[str]) -> pd.DataFrame:
    """Each of ``symbols``' latest stored metrics row, as :func:`read_daily_metrics` shapes
    it (one query: the latest date per ticker, joined back)."""
    m = daily_metrics.c
    wanted = list(symbols)
    latest = (
        sa.select(m.ticker, sa.func.max(m.date).label("date"))
        .where(m.ticker.in_(wanted))
        .group_by(m.ticker)
        .subquery()
    )
    query = (
        sa.select(m.ticker, m.date, *(m[c] for c in METRIC_COLUMNS))
        .join(latest, sa.and_(m.ticker == latest.c.ticker, m.date == latest.c.date))
        .order_by(m.ticker)
    )
    with transaction(bind) as conn:
        return _metrics_frame(conn.execute(query).all())


@dataclass(frozen=True, slots=True)
class MetricsCoverage:
    """How well ``daily_metrics`` covers ``daily_prices_adjusted``."""

    adjusted_rows: int
    missing: int  # adjusted rows without a metrics row
    outdated: int  # metrics computed from another fetch of their adjusted row
    behind: list[str]  # tickers whose adjusted history was re-based since
    examples: list[str]


def metrics_coverage(bind: Bind, *, example_limit: int = 10) -> MetricsCoverage:
    a, m = daily_prices_adjusted.c, daily_metrics.c
    query = (
        sa.select(a.ticker, a.date, m.ticker.is_(None).label("missing"))
        .select_from(
            daily_prices_adjusted.outerjoin(
                daily_metrics, sa.and_(m.ticker == a.ticker, m.date == a.date)
            )
        )
        .where(sa.or_(m.ticker.is_(None), m.adjusted_fetched_at != a.raw_fetched_at))
        .order_by(a.ticker, a.date)
    )
    s, p = daily_metrics_state.c, price_adjustment_state.c
    behind_query = (
        sa.select(s.ticker)
        .join(price_adjustment_state, p.ticker == s.ticker)
        .where(s.adjustment_computed_at != p.computed_at)
        .order_by(s.ticker)
    )
    with transaction(bind) as conn:
        adjusted_rows = count_rows(conn, daily_prices_adjusted)
        stale = stale_rows(conn, query, example_limit=example_limit)
        behind = list(conn.scalars(behind_query))
    return MetricsCoverage(adjusted_rows, stale.missing, stale.outdated, behind, stale.examples)


@dataclass(frozen=True, slots=True)
class OutOfRange:
    """Rows whose statistic lies outside the range its definition allows."""

    metric: str
    rule: str
    rows: int
    examples: list[str]


# Each statistic's allowed range, as SQL over daily_metrics (NULLs are not violations).
_RANGE_RULES: dict[str, tuple[str, sa.ColumnElement[bool]]] = {
    "volatility_20": ("volatility_20 >= 0", daily_metrics.c.volatility_20 < 0),
    "rsi_14": (
        "0 <= rsi_14 <= 100",
        sa.or_(daily_metrics.c.rsi_14 < 0, daily_metrics.c.rsi_14 > 100),
    ),
    "drawdown": ("drawdown <= 0", daily_metrics.c.drawdown > 0),
}


def metrics_out_of_range(bind: Bind, metric: str, *, example_limit: int = 10) -> OutOfRange:
    rule, violated = _RANGE_RULES[metric]
    m = daily_metrics.c
    with transaction(bind) as conn:
        rows = int(
            conn.scalar(sa.select(sa.func.count()).select_from(daily_metrics).where(violated)) or 0
        )
        examples = [
            f"{ticker} {as_date(day)}: {value:.6g}"
            for ticker, day, value in conn.execute(
                sa.select(m.ticker, m.date, m[metric])
                .where(violated)
                .order_by(m.ticker, m.date)
                .limit(example_limit)
            )
        ]
    return OutOfRange(metric, rule, rows, examples)


RANGE_CHECKED_METRICS = tuple(_RANGE_RULES)

__all__ = [
    "RANGE_CHECKED_METRICS",
    "MetricsCoverage",
    "MetricsSummary",
    "OutOfRange",
    "metrics_coverage",
    "metrics_out_of_range",
    "read_daily_metrics",
    "read_latest_metrics",
    "refresh_daily_metrics",
]
