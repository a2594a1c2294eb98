"""NYSE sessions over date ranges and the latest sessions at an instant (plain Python)."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from quote_pipeline.market_calendar import (
    is_session,
    last_closed_session,
    last_opened_session,
    session_hours,
    sessions_between,
)

NY = ZoneInfo("America/New_York")


def test_sessions_skip_weekends_and_holidays() -> None:
    days = sessions_between(date(2026, 11, 23), date(2026, 11, 30))
    # Thanksgiving (Thursday 26th) and the weekend are closed; Friday 27th trades.
    assert days == [
        date(2026, 11, 23),
        date(2026, 11, 24),
        date(2026, 11, 25),
        date(2026, 11, 27),
        date(2026, 11, 30),
    ]
    assert sessions_between(date(2026, 11, 28), date(2026, 11, 29)) == []
    assert sessions_between(date(2026, 3, 2), date(2026, 3, 1)) == []


def test_a_year_boundary_holiday_is_just_closed() -> None:
    # New Year's Day at either end of a range, and ranges spanning years.
    assert not is_session(date(2027, 1, 1))
    assert not is_session(date(2022, 12, 31))
    assert sessions_between(date(2026, 12, 31), date(2027, 1, 4)) == [
        date(2026, 12, 31),
        date(2027, 1, 4),
    ]
    assert len(sessions_between(date(2020, 1, 1), date(2025, 12, 31))) == 1508


def test_one_off_closures_count() -> None:
    # 2025-01-09: national day of mourning for President Carter.
    assert not is_session(date(2025, 1, 9))
    assert date(2025, 1, 9) not in sessions_between(date(2025, 1, 6), date(2025, 1, 10))


def test_session_hours_follow_dst_and_early_closes() -> None:
    assert session_hours(date(2026, 7, 1)) == (
        datetime(2026, 7, 1, 13, 30, tzinfo=UTC),  # EDT
        datetime(2026, 7, 1, 20, 0, tzinfo=UTC),
    )
    assert session_hours(date(2026, 12, 1)) == (
        datetime(2026, 12, 1, 14, 30, tzinfo=UTC),  # EST
        datetime(2026, 12, 1, 21, 0, tzinfo=UTC),
    )
    _, closes = session_hours(date(2026, 11, 27))  # the day after Thanksgiving
    assert closes.astimezone(NY).hour == 13
    with pytest.raises(ValueError, match="no session"):
        session_hours(date(2026, 11, 26))


@pytest.mark.parametrize(
    ("now_ny", "closed", "opened"),
    [
        (datetime(2026, 11, 25, 9, 0), date(2026, 11, 24), date(2026, 11, 24)),
        (datetime(2026, 11, 25, 9, 30), date(2026, 11, 24), date(2026, 11, 25)),
        (datetime(2026, 11, 25, 15, 59), date(2026, 11, 24), date(2026, 11, 25)),
        (datetime(2026, 11, 25, 16, 0), date(2026, 11, 25), date(2026, 11, 25)),
        # Thanksgiving: the latest session is still Wednesday's.
        (datetime(2026, 11, 26, 12, 0), date(2026, 11, 25), date(2026, 11, 25)),
        (datetime(2026, 11, 27, 13, 0), date(2026, 11, 27), date(2026, 11, 27)),
        (datetime(2026, 11, 29, 12, 0), date(2026, 11, 27), date(2026, 11, 27)),
    ],
)
def test_latest_sessions(now_ny: datetime, closed: date, opened: date) -> None:
    now = now_ny.replace(tzinfo=NY)
    assert last_closed_session(now) == closed
    assert last_opened_session(now) == opened
    assert last_closed_session(now.astimezone(UTC)) == closed


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        last_closed_session(datetime(2026, 11, 25, 12, 0))
