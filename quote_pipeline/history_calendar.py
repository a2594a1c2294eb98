"""NYSE sessions over date ranges, for price history (plain Python, no Dagster, no I/O).

``quote_pipeline.market_calendar`` answers "what happens on this day"; price history needs
ranges (every session of a multi-year backfill) and "the latest session that has closed",
which this module answers from one precomputed, sorted list of sessions with bisection.
"""

from __future__ import annotations

import functools
import warnings
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime

NEW_YORK_TZ = "America/New_York"
EXCHANGE = "XNYS"
# The calendar is built over whole years from here (or earlier, if asked) to next year, so an
# answer never depends on the day it is asked, as exchange_calendars' moving default would.
FIRST_YEAR = 2000


@dataclass(frozen=True)
class _Sessions:
    days: list[date]
    opens: list[datetime]  # aware UTC, parallel to ``days``
    closes: list[datetime]  # aware UTC; 13:00 New York on early-close days


@functools.cache
def _sessions(first_year: int, last_year: int) -> _Sessions:
    import exchange_calendars  # about 0.3 s to import: paid only when a session is asked for

    with warnings.catch_warnings():
        # exchange_calendars trips a pandas deprecation warning inside its own constructor.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        calendar = exchange_calendars.get_calendar(
            EXCHANGE, start=f"{first_year}-01-01", end=f"{last_year}-12-31"
        )
    schedule = calendar.schedule
    return _Sessions(
        days=[stamp.date() for stamp in schedule.index],
        opens=[stamp.to_pydatetime().astimezone(UTC) for stamp in schedule["open"]],
        closes=[stamp.to_pydatetime().astimezone(UTC) for stamp in schedule["close"]],
    )


def _covering(start: date, end: date) -> _Sessions:
    last_year = max(end.year, date.today().year) + 1
    return _sessions(min(start.year, FIRST_YEAR), last_year)


def sessions_between(start: date, end: date) -> list[date]:
    """NYSE sessions from ``start`` to ``end``, both included, oldest first."""
    if end < start:
        return []
    days = _covering(start, end).days
    return days[bisect_left(days, start) : bisect_right(days, end)]


def is_session(day: date) -> bool:
    """Whether the NYSE trades on ``day`` (a New York calendar date)."""
    return bool(sessions_between(day, day))


def session_hours(day: date) -> tuple[datetime, datetime]:
    """The open and close (aware, UTC) of the session on ``day``; ValueError if none."""
    cal = _covering(day, day)
    index = bisect_left(cal.days, day)
    if index == len(cal.days) or cal.days[index] != day:
        raise ValueError(f"the NYSE has no session on {day.isoformat()}")
    return cal.opens[index], cal.closes[index]


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant!r} is naive: pass a timezone-aware datetime")
    return instant.astimezone(UTC)


def last_closed_session(now: datetime) -> date | None:
    """The latest session whose close is at or before ``now``; None before the first one."""
    now = _aware(now)
    cal = _covering(now.date(), now.date())
    index = bisect_right(cal.closes, now) - 1
    return cal.days[index] if index >= 0 else None


def last_opened_session(now: datetime) -> date | None:
    """The latest session whose open is at or before ``now`` (the one trading now, if any)."""
    now = _aware(now)
    cal = _covering(now.date(), now.date())
    index = bisect_right(cal.opens, now) - 1
    return cal.days[index] if index >= 0 else None
