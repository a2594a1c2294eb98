"""The NYSE trading calendar in plain Python (no Dagster): sessions, holidays, market hours.

Built on exchange_calendars' ``XNYS`` calendar, which tracks the exchange's rules (observed
holidays, early closes, one-off closures such as national days of mourning) so that no
holiday list is kept by hand here. A calendar covers the years asked about, with a year's
margin before them, through the year after next (each span built once per process), so an
answer never sits at a calendar's edge. Instants are timezone-aware; days are New York
calendar dates.

One answer is also kept saved: :func:`weekday_closures` at code load reads a copy of the
calendar's own list (``_CLOSURES_SNAPSHOT``), used only while the installed
exchange_calendars is the version that wrote it.
"""

from __future__ import annotations

import functools
import warnings
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib.metadata import PackageNotFoundError, version
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


# --- weekday closures, for the partitions ---------------------------------------------------


def weekday_closures(first: date, last: date) -> list[date]:
    """Weekdays from ``first`` to ``last`` (both included) without an NYSE session: the
    exchange's holidays (observed days included) and one-off closures, oldest first. Early
    closes are sessions.

    The daily partitions exclude these days, so every process that loads the definitions
    asks: within the saved copy's years, with the exchange_calendars that wrote it, the
    answer is read from the copy (~1 ms) instead of importing pandas and building the
    calendar (~0.4 s); otherwise the calendar answers.
    """
    if _snapshot_answers(first, last):
        return [day for day in _snapshot_closures() if first <= day <= last]
    return _calendar_closures(first, last)


def _calendar_closures(first: date, last: date) -> list[date]:
    sessions = set(sessions_between(first, last))
    days = (first + timedelta(days=n) for n in range((last - first).days + 1))
    return [day for day in days if day.weekday() < 5 and day not in sessions]


def closures_snapshot_text(first_year: int, last_year: int) -> str:
    """The calendar's weekday closures of those years, one line per year, as
    ``_CLOSURES_SNAPSHOT`` keeps them."""
    closures = _calendar_closures(date(first_year, 1, 1), date(last_year, 12, 31))
    lines = [
        " ".join([str(year), *(f"{d:%m-%d}" for d in closures if d.year == year)])
        for year in range(first_year, last_year + 1)
    ]
    return "\n".join(lines) + "\n"


def installed_calendar_version() -> str | None:
    """The installed exchange_calendars' version (read from its metadata, not imported)."""
    try:
        return version("exchange_calendars")
    except PackageNotFoundError:  # pragma: no cover - a dependency of this package
        return None


def _snapshot_answers(first: date, last: date) -> bool:
    first_year, last_year = CLOSURES_SNAPSHOT_YEARS
    return (
        first_year <= first.year
        and last.year <= last_year
        and installed_calendar_version() == CLOSURES_SNAPSHOT_VERSION
    )


@functools.cache
def _snapshot_closures() -> list[date]:
    closures = []
    for line in _CLOSURES_SNAPSHOT.splitlines():
        year, *days = line.split()
        closures += [date.fromisoformat(f"{year}-{day}") for day in days]
    return closures


# closures_snapshot_text(2000, 2035) as exchange_calendars 4.13.2 answers it. Saved because
# the partitions need these days at every code load (webserver, daemon, each run) and the
# calendar costs ~0.4 s there; a test compares the copy with the calendar, and with any
# other version of exchange_calendars installed, weekday_closures asks the calendar. After
# upgrading exchange_calendars, regenerate: python -m quote_pipeline.market_calendar
CLOSURES_SNAPSHOT_VERSION = "4.13.2"
CLOSURES_SNAPSHOT_YEARS = (2000, 2035)
_CLOSURES_SNAPSHOT = """\
2000 01-17 02-21 04-21 05-29 07-04 09-04 11-23 12-25
2001 01-01 01-15 02-19 04-13 05-28 07-04 09-03 09-11 09-12 09-13 09-14 11-22 12-25
2002 01-01 01-21 02-18 03-29 05-27 07-04 09-02 11-28 12-25
2003 01-01 01-20 02-17 04-18 05-26 07-04 09-01 11-27 12-25
2004 01-01 01-19 02-16 04-09 05-31 06-11 07-05 09-06 11-25 12-24
2005 01-17 02-21 03-25 05-30 07-04 09-05 11-24 12-26
2006 01-02 01-16 02-20 04-14 05-29 07-04 09-04 11-23 12-25
2007 01-01 01-02 01-15 02-19 04-06 05-28 07-04 09-03 11-22 12-25
2008 01-01 01-21 02-18 03-21 05-26 07-04 09-01 11-27 12-25
2009 01-01 01-19 02-16 04-10 05-25 07-03 09-07 11-26 12-25
2010 01-01 01-18 02-15 04-02 05-31 07-05 09-06 11-25 12-24
2011 01-17 02-21 04-22 05-30 07-04 09-05 11-24 12-26
2012 01-02 01-16 02-20 04-06 05-28 07-04 09-03 10-29 10-30 11-22 12-25
2013 01-01 01-21 02-18 03-29 05-27 07-04 09-02 11-28 12-25
2014 01-01 01-20 02-17 04-18 05-26 07-04 09-01 11-27 12-25
2015 01-01 01-19 02-16 04-03 05-25 07-03 09-07 11-26 12-25
2016 01-01 01-18 02-15 03-25 05-30 07-04 09-05 11-24 12-26
2017 01-02 01-16 02-20 04-14 05-29 07-04 09-04 11-23 12-25
2018 01-01 01-15 02-19 03-30 05-28 07-04 09-03 11-22 12-05 12-25
2019 01-01 01-21 02-18 04-19 05-27 07-04 09-02 11-28 12-25
2020 01-01 01-20 02-17 04-10 05-25 07-03 09-07 11-26 12-25
2021 01-01 01-18 02-15 04-02 05-31 07-05 09-06 11-25 12-24
2022 01-17 02-21 04-15 05-30 06-20 07-04 09-05 11-24 12-26
2023 01-02 01-16 02-20 04-07 05-29 06-19 07-04 09-04 11-23 12-25
2024 01-01 01-15 02-19 03-29 05-27 06-19 07-04 09-02 11-28 12-25
2025 01-01 01-09 01-20 02-17 04-18 05-26 06-19 07-04 09-01 11-27 12-25
2026 01-01 01-19 02-16 04-03 05-25 06-19 07-03 09-07 11-26 12-25
2027 01-01 01-18 02-15 03-26 05-31 06-18 07-05 09-06 11-25 12-24
2028 01-17 02-21 04-14 05-29 06-19 07-04 09-04 11-23 12-25
2029 01-01 01-15 02-19 03-30 05-28 06-19 07-04 09-03 11-22 12-25
2030 01-01 01-21 02-18 04-19 05-27 06-19 07-04 09-02 11-28 12-25
2031 01-01 01-20 02-17 04-11 05-26 06-19 07-04 09-01 11-27 12-25
2032 01-01 01-19 02-16 03-26 05-31 06-18 07-05 09-06 11-25 12-24
2033 01-17 02-21 04-15 05-30 06-20 07-04 09-05 11-24 12-26
2034 01-02 01-16 02-20 04-07 05-29 06-19 07-04 09-04 11-23 12-25
2035 01-01 01-15 02-19 03-23 05-28 06-19 07-04 09-03 11-22 12-25
"""


if __name__ == "__main__":
    print(f'CLOSURES_SNAPSHOT_VERSION = "{installed_calendar_version()}"')
    print(f"CLOSURES_SNAPSHOT_YEARS = {CLOSURES_SNAPSHOT_YEARS}")
    print('_CLOSURES_SNAPSHOT = """\\')
    print(closures_snapshot_text(*CLOSURES_SNAPSHOT_YEARS), end='"""\n')
