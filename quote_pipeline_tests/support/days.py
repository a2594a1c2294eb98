"""Dates for tests that store made-up daily rows."""

from datetime import date, timedelta


def weekdays(start: date, count: int) -> list[date]:
    """``count`` weekdays from ``start`` on (holidays included: a stand-in for sessions)."""
    days: list[date] = []
    day = start
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days
