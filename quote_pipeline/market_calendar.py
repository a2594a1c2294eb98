"""The NYSE trading calendar in plain Python (no Dagster): sessions, holidays, market hours.

Built on exchange_calendars' ``XNYS`` calendar, which tracks the exchange's rules (observed
holidays, early closes, one-off closures such as national days of mourning) so that no
holiday list is kept by hand here. A calendar covers the years asked about, with a year's
margin before them, through the year after next (each span built once per process), so an
answer never sits at a calendar's edge. Instants are timezone-aware; days are New York
calendar dates.
"""

from __future__ import annotations

import functools
import warnings
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    import exchange_calendars

EXCHANGE = "XNYS"
NEW_YORK_TZ = "America/New_York"
NEW_YORK = ZoneInfo(NEW_YORK_TZ)
REGULAR_CLOSE = time(16, 0)
# One more refresh after the close catches the closing prints.
DEFAULT_AFTER_CLOSE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class MarketDay:
    """What the NYSE does on one New York calendar day."""

    day: date
    is_session: bool
    closed_reason: str | None
    """Why there is no session ("Thanksgiving", "weekend", …); None on session days."""
    opens_at: datetime | None
    """The session's open (aware, New York time); None when closed."""
    closes_at: datetime | None
    """The session's close (aware, New York time); 13:00 on early-close days."""

    @property
    def is_early_close(self) -> bool:
        """True when the session closes before the regular 16:00."""
        return self.closes_at is not None and self.closes_at.time() < REGULAR_CLOSE


@dataclass(frozen=True)
class _Sessions:
    """Every session of a calendar, sorted, for range queries by bisection."""

    days: list[date]
    opens: list[datetime]  # aware UTC, parallel to ``days``
    closes: list[datetime]  # aware UTC; 13:00 New York on early-close days


@functools.cache
def _calendar_for_years(first_year: int, last_year: int) -> exchange_calendars.ExchangeCalendar:
    # Imported here: it takes ~0.3 s, paid by the first question rather than every code load.
    import exchange_calendars

    with warnings.catch_warnings():
        # exchange_calendars trips a pandas deprecation warning inside its own constructor.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return exchange_calendars.get_calendar(
            EXCHANGE, start=f"{first_year}-01-01", end=f"{last_year}-12-31"
        )


def _years_covering(*days: date) -> tuple[int, int]:
    # A year's margin before the first day asked about, and through the year after next:
    # a question about today builds 3 years of sessions (the freshness check asks one every
    # run), not every year since 2000, and no answer sits at the calendar's edge.
    years = [d.year for d in days] or [date.today().year]
    return min(years) - 1, max(date.today().year, *years) + 1


def _calendar(*days: date) -> exchange_calendars.ExchangeCalendar:
    return _calendar_for_years(*_years_covering(*days))


@functools.cache
def _sessions_for_years(first_year: int, last_year: int) -> _Sessions:
    schedule = _calendar_for_years(first_year, last_year).schedule
    return _Sessions(
        days=[stamp.date() for stamp in schedule.index],
        opens=[stamp.to_pydatetime().astimezone(UTC) for stamp in schedule["open"]],
        closes=[stamp.to_pydatetime().astimezone(UTC) for stamp in schedule["close"]],
    )


def _sessions(*days: date) -> _Sessions:
    return _sessions_for_years(*_years_covering(*days))


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant!r} is naive: pass a timezone-aware datetime")
    return instant.astimezone(UTC)


# --- one day ---------------------------------------------------------------------------------


def holiday_name(day: date) -> str | None:
    """The name of the NYSE holiday (or one-off closure) on ``day``; None if it is not one.

    Regular holidays carry the name of their exchange_calendars rule, for the observed day
    too (2026-07-03 is "July 4th"); one-off closures have no rule, so they get a generic name.
    """
    calendar = _calendar(day)
    import pandas as pd  # with the calendar, not with every code load (~0.3 s)

    stamp = pd.Timestamp(day)
    named = calendar.regular_holidays.holidays(stamp, stamp, return_name=True)
    if len(named):
        return " / ".join(dict.fromkeys(str(name) for name in named))
    if stamp in set(calendar.adhoc_holidays):
        return "a special closure (not a regular holiday)"
    return None


def market_day(day: date) -> MarketDay:
    """The NYSE's schedule for the New York calendar day ``day``."""
    sessions = _sessions(day)
    index = bisect_left(sessions.days, day)
    if index < len(sessions.days) and sessions.days[index] == day:
        return MarketDay(
            day=day,
            is_session=True,
            closed_reason=None,
            opens_at=sessions.opens[index].astimezone(NEW_YORK),
            closes_at=sessions.closes[index].astimezone(NEW_YORK),
        )
    reason = "weekend" if day.weekday() >= 5 else holiday_name(day)
    return MarketDay(
        day=day,
        is_session=False,
        closed_reason=reason or "no NYSE session",
        opens_at=None,
        closes_at=None,
    )


def new_york_day(instant: datetime) -> date:
    """The New York calendar date of an aware instant."""
    return _utc(instant).astimezone(NEW_YORK).date()


def is_session(when: date | datetime) -> bool:
    """Whether the NYSE trades on a New York date, or on the New York date of an instant."""
    day = new_york_day(when) if isinstance(when, datetime) else when
    return market_day(day).is_session


def session_hours(day: date) -> tuple[datetime, datetime]:
    """The open and close (aware, UTC) of the session on ``day``; ValueError if none."""
    found = market_day(day)
    if found.opens_at is None or found.closes_at is None:
        raise ValueError(f"the NYSE has no session on {day.isoformat()}")
    return found.opens_at.astimezone(UTC), found.closes_at.astimezone(UTC)


# --- ranges and instants -------------------------------------------------------------------


def sessions_between(start: date, end: date) -> list[date]:
    """NYSE sessions from ``start`` to ``end``, both included, oldest first."""
    if end < start:
        return []
    days = _sessions(start, end).days
    return days[bisect_left(days, start) : bisect_right(days, end)]


def last_closed_session(now: datetime) -> date | None:
    """The latest session whose close is at or before ``now``; None before the first one."""
    now = _utc(now)
    sessions = _sessions(now.date())
    index = bisect_right(sessions.closes, now) - 1
    return sessions.days[index] if index >= 0 else None


def last_opened_session(now: datetime) -> date | None:
    """The latest session whose open is at or before ``now`` (the one trading now, if any)."""
    now = _utc(now)
    sessions = _sessions(now.date())
    index = bisect_right(sessions.opens, now) - 1
    return sessions.days[index] if index >= 0 else None


def refresh_window(
    day: MarketDay, *, after_close: timedelta = DEFAULT_AFTER_CLOSE
) -> tuple[datetime, datetime] | None:
    """[open, close + ``after_close``] on a session day, None on a closed day."""
    if day.opens_at is None or day.closes_at is None:
        return None
    return day.opens_at, day.closes_at + after_close


def within_market_hours(instant: datetime, *, after_close: timedelta = DEFAULT_AFTER_CLOSE) -> bool:
    """Whether ``instant`` falls between the open and ``after_close`` past the close.

    With the default and the regular 09:30 to 16:00 session, an hourly tick at :01 runs from
    10:01 to 16:01 New York time, to 13:01 on early-close days.
    """
    window = refresh_window(market_day(new_york_day(instant)), after_close=after_close)
    return window is not None and window[0] <= instant <= window[1]
