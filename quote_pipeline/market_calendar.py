"""The NYSE trading calendar in plain Python (no Dagster): sessions, holidays, market hours.

Built on exchange_calendars' ``XNYS`` calendar, which tracks the exchange's rules (observed
holidays, early closes, one-off closures such as national days of mourning) so that no
holiday list is kept by hand here. Everything takes timezone-aware instants and answers in
New York time, the exchange's own.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pandas as pd

if TYPE_CHECKING:
    import exchange_calendars

EXCHANGE = "XNYS"
NEW_YORK = ZoneInfo("America/New_York")
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


@functools.lru_cache(maxsize=8)
def _calendar(year: int) -> exchange_calendars.ExchangeCalendar:
    # Imported here: it takes ~0.3 s, paid by the first tick rather than every code load.
    import exchange_calendars

    with warnings.catch_warnings():
        # exchange_calendars trips a pandas deprecation warning inside its own constructor.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        # The default bounds ("20 years ago to 1 year ahead") move with the wall clock; a
        # calendar per year answers any date the same way on any day.
        return exchange_calendars.get_calendar(EXCHANGE, start=f"{year}-01-01", end=f"{year}-12-31")


def holiday_name(day: date) -> str | None:
    """The name of the NYSE holiday (or one-off closure) on ``day``; None if it is not one.

    Regular holidays carry the name of their exchange_calendars rule, for the observed day
    too (2026-07-03 is "July 4th"); one-off closures have no rule, so they get a generic name.
    """
    calendar = _calendar(day.year)
    stamp = pd.Timestamp(day)
    named = calendar.regular_holidays.holidays(stamp, stamp, return_name=True)
    if len(named):
        return " / ".join(dict.fromkeys(str(name) for name in named))
    if stamp in set(calendar.adhoc_holidays):
        return "a special closure (not a regular holiday)"
    return None


def market_day(day: date) -> MarketDay:
    """The NYSE's schedule for the New York calendar day ``day``."""
    calendar = _calendar(day.year)
    stamp = pd.Timestamp(day)
    if calendar.is_session(stamp):
        return MarketDay(
            day=day,
            is_session=True,
            closed_reason=None,
            opens_at=calendar.session_open(stamp).to_pydatetime().astimezone(NEW_YORK),
            closes_at=calendar.session_close(stamp).to_pydatetime().astimezone(NEW_YORK),
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
    if instant.tzinfo is None:
        raise ValueError(f"{instant!r} is naive: pass a timezone-aware datetime")
    return instant.astimezone(NEW_YORK).date()


def is_session(instant: datetime) -> bool:
    """Whether the NYSE has a session on the New York date of ``instant``."""
    return market_day(new_york_day(instant)).is_session


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
