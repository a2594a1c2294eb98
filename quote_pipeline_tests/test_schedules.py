"""``refresh_quotes_hourly`` evaluated at chosen instants, and the instants its cron yields."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import takewhile

import dagster as dg
import pytest

# The iterator the scheduler daemon itself walks (RemoteSchedule.execution_time_iterator).
from dagster._utils.schedules import schedule_execution_time_iterator

from quote_pipeline.definitions import build_definitions
from quote_pipeline.defs.quotes.schedules import (
    CRON_SCHEDULE,
    DEFAULT_STATUS_ENV,
    EXECUTION_TIMEZONE,
    MARKET_HOURS_ONLY_ENV,
    SCHEDULE_NAME,
    ScheduleOptions,
    build_refresh_quotes_schedule,
)
from quote_pipeline.defs.resources import DatabaseResource, FMPResource, MassiveResource
from quote_pipeline.market_calendar import NEW_YORK
from quote_pipeline.storage.fetch_state import SqlQuotaMemory

HOURLY = build_refresh_quotes_schedule()
MARKET_HOURS = build_refresh_quotes_schedule(ScheduleOptions(market_hours_only=True))


def quota_database(url: str = "sqlite://") -> DatabaseResource:
    """The database a schedule reads: only asked whether an exhausted quota is remembered."""
    return DatabaseResource(url=url)


def evaluate(
    schedule: dg.ScheduleDefinition, instant: datetime, database: DatabaseResource | None = None
) -> dg.RunRequest | str:
    """The run request of the tick at ``instant``, or its skip message."""
    # No instance: the schedule reads none, and (Dagster 1.13.27) leaving an instance's
    # context leaves its defs-state storage set, which breaks later Definitions loads.
    with dg.build_schedule_context(
        scheduled_execution_time=instant, resources={"database": database or quota_database()}
    ) as context:
        data = schedule.evaluate_tick(context)
    if data.skip_message is not None:
        assert not data.run_requests
        return data.skip_message
    assert data.run_requests is not None and len(data.run_requests) == 1
    return data.run_requests[0]


def new_york(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)  # type: ignore[misc]


def ticks(start: datetime, end: datetime) -> list[datetime]:
    """The schedule's tick instants in [start, end), as the daemon computes them."""
    found: Iterator[datetime] = schedule_execution_time_iterator(
        start.timestamp(), CRON_SCHEDULE, EXECUTION_TIMEZONE
    )
    return list(takewhile(lambda t: t < end, found))


def test_the_schedule_in_the_code_location(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMP_API_KEY", "unused")
    schedule = build_definitions().resolve_schedule_def(SCHEDULE_NAME)
    assert schedule.cron_schedule == "1 * * * 1-5"
    assert schedule.execution_timezone == "America/New_York"
    assert schedule.job_name == "refresh_quotes"
    # Deliberate: nothing calls the paid API until someone turns the schedule on.
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.description and "holiday" in schedule.description
    assert schedule.owners


def test_a_weekday_hour_refreshes() -> None:
    request = evaluate(HOURLY, new_york(2026, 11, 25, 10, 1))
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == "refresh_quotes_hourly:2026-11-25T15:01Z"
    assert request.tags["quote_pipeline/session"] == "2026-11-25"
    # The default schedule refreshes every hour of a session day, before the open too.
    assert isinstance(evaluate(HOURLY, new_york(2026, 11, 25, 7, 1)), dg.RunRequest)
    assert isinstance(evaluate(HOURLY, new_york(2026, 11, 25, 23, 1)), dg.RunRequest)


def test_thanksgiving_is_skipped_by_name() -> None:
    message = evaluate(HOURLY, new_york(2026, 11, 26, 10, 1))
    assert isinstance(message, str)
    assert "Thanksgiving" in message and "2026-11-26" in message
    # The same instant seen from UTC (15:01 Z) is the same holiday.
    assert evaluate(HOURLY, datetime(2026, 11, 26, 15, 1, tzinfo=UTC)) == message


def test_a_saturday_is_skipped() -> None:
    # The cron never fires on a Saturday; an evaluation there (a manual test from the UI)
    # still says no.
    message = evaluate(HOURLY, new_york(2026, 11, 28, 10, 1))
    assert isinstance(message, str) and "weekend" in message


def test_friday_evening_new_york_is_not_saturday_utc() -> None:
    # Friday 23:01 New York is Saturday 04:01 UTC: the beat schedule in UTC missed it.
    friday_night = new_york(2026, 11, 20, 23, 1)
    assert friday_night.astimezone(UTC).weekday() == 5
    assert isinstance(evaluate(HOURLY, friday_night), dg.RunRequest)


def test_the_cron_runs_monday_to_friday_in_new_york() -> None:
    week = ticks(new_york(2026, 11, 20, 0, 0), new_york(2026, 11, 24, 0, 0))
    local = [t.astimezone(NEW_YORK) for t in week]
    assert {t.weekday() for t in local} == {0, 4}  # Friday 20th and Monday 23rd only
    assert all(t.minute == 1 for t in local)
    assert len(local) == 48
    # After Friday's last tick (23:01) the next is Monday 00:01, not Sunday 20:01.
    friday_last = max(t for t in local if t.weekday() == 4)
    monday_first = min(t for t in local if t.weekday() == 0)
    assert (friday_last.hour, monday_first.hour, monday_first.day) == (23, 0, 23)


@pytest.mark.parametrize(
    ("before", "after", "utc_before", "utc_after"),
    [
        # Spring forward on Sunday 2026-03-08: 10:01 is 15:01 UTC on Friday, 14:01 on Monday.
        (new_york(2026, 3, 6, 10, 1), new_york(2026, 3, 9, 10, 1), 15, 14),
        # Fall back on Sunday 2026-11-01: 10:01 is 14:01 UTC on Friday, 15:01 on Monday.
        (new_york(2026, 10, 30, 10, 1), new_york(2026, 11, 2, 10, 1), 14, 15),
    ],
)
def test_ticks_across_a_dst_change_stay_at_01_new_york_time(
    before: datetime, after: datetime, utc_before: int, utc_after: int
) -> None:
    midnight = {"hour": 0, "minute": 0}
    week = ticks(before.replace(**midnight), (after + timedelta(days=1)).replace(**midnight))
    assert week, "no ticks"
    local = [t.astimezone(NEW_YORK) for t in week]
    assert all(t.minute == 1 and t.second == 0 for t in local)
    # No hour is skipped or doubled on the weekdays around the change: 24 ticks a day.
    per_day: dict[object, int] = {}
    for t in local:
        per_day[t.date()] = per_day.get(t.date(), 0) + 1
    assert set(per_day.values()) == {24}
    assert before in week and after in week
    assert before.astimezone(UTC).hour == utc_before
    assert after.astimezone(UTC).hour == utc_after
    # Evaluated at those instants, both ticks refresh (they are session days).
    assert isinstance(evaluate(HOURLY, before), dg.RunRequest)
    assert isinstance(evaluate(HOURLY, after), dg.RunRequest)


@pytest.mark.parametrize(
    ("instant", "runs"),
    [
        # Monday after spring forward: 13:01 UTC is 09:01 EDT (before the open), 14:01 UTC is
        # 10:01 EDT. A fixed UTC offset would get both wrong.
        (datetime(2026, 3, 9, 13, 1, tzinfo=UTC), False),
        (datetime(2026, 3, 9, 14, 1, tzinfo=UTC), True),
        # Monday after fall back: 14:01 UTC is 09:01 EST, 15:01 UTC is 10:01 EST.
        (datetime(2026, 11, 2, 14, 1, tzinfo=UTC), False),
        (datetime(2026, 11, 2, 15, 1, tzinfo=UTC), True),
        (new_york(2026, 11, 25, 16, 1), True),  # the tick after the close
        (new_york(2026, 11, 25, 17, 1), False),
        (new_york(2026, 11, 27, 13, 1), True),  # early close (13:00) after Thanksgiving
        (new_york(2026, 11, 27, 14, 1), False),
    ],
)
def test_market_hours_option(instant: datetime, runs: bool) -> None:
    result = evaluate(MARKET_HOURS, instant)
    if runs:
        assert isinstance(result, dg.RunRequest)
    else:
        assert isinstance(result, str) and "Outside market hours" in result
    # The default schedule refreshes at all of these hours.
    assert isinstance(evaluate(HOURLY, instant), dg.RunRequest)


def test_market_hours_option_still_names_holidays() -> None:
    message = evaluate(MARKET_HOURS, new_york(2026, 11, 26, 11, 1))
    assert isinstance(message, str) and "Thanksgiving" in message


def test_options_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ScheduleOptions.from_env({}) == ScheduleOptions()
    options = ScheduleOptions.from_env({MARKET_HOURS_ONLY_ENV: "1", DEFAULT_STATUS_ENV: "running"})
    assert options.market_hours_only
    assert options.default_status == dg.DefaultScheduleStatus.RUNNING
    with pytest.raises(ValueError, match=MARKET_HOURS_ONLY_ENV):
        ScheduleOptions.from_env({MARKET_HOURS_ONLY_ENV: "sometimes"})
    with pytest.raises(ValueError, match=DEFAULT_STATUS_ENV):
        ScheduleOptions.from_env({DEFAULT_STATUS_ENV: "paused"})

    # The code location reads them when it loads.
    monkeypatch.setenv("FMP_API_KEY", "unused")
    monkeypatch.setenv(MARKET_HOURS_ONLY_ENV, "true")
    monkeypatch.setenv(DEFAULT_STATUS_ENV, "RUNNING")
    schedule = build_definitions().resolve_schedule_def(SCHEDULE_NAME)
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.metadata["market_hours_only"].value is True
    assert isinstance(evaluate(schedule, new_york(2026, 11, 25, 9, 1)), str)


def test_a_remembered_exhausted_quota_skips_the_tick_and_says_until_when(tmp_path) -> None:
    # The daemon needs no API key to know: it reads the data database's api_quota_state.
    database = quota_database(f"sqlite:///{tmp_path / 'quota.db'}")
    account = FMPResource(api_key="unused").account
    tick = new_york(2026, 11, 25, 10, 1)
    memory = SqlQuotaMemory(database.get_engine(), account, hold=timedelta(minutes=30))
    memory.remember_exhausted("429 'Limit Reach' on 10 calls in a row over 66 s")
    skipped = evaluate(HOURLY, tick, database)
    assert isinstance(skipped, str)
    assert "quota ran out" in skipped and "Limit Reach" in skipped
    hold = memory.current_hold()
    assert hold is not None and f"{hold.hold_until:%H:%M} UTC" in skipped
    # A success clears it (the pacer forgets it at the first answer): the next tick runs.
    memory.forget_exhausted()
    assert isinstance(evaluate(HOURLY, tick, database), dg.RunRequest)


def test_a_held_provider_skips_a_tick_only_when_every_provider_of_the_job_is_held(
    tmp_path, monkeypatch
) -> None:
    """FMP's quota spent: the hourly refresh still runs when Massive is configured after it
    (the run falls back); both spent, it skips; a Massive hold never skips FMP-only jobs."""
    database = quota_database(f"sqlite:///{tmp_path / 'quota.db'}")
    tick = new_york(2026, 11, 25, 10, 1)
    fmp = SqlQuotaMemory(
        database.get_engine(), FMPResource(api_key="unused").account, hold=timedelta(minutes=30)
    )
    massive_account = MassiveResource(api_key="unused").account
    assert massive_account.startswith("massive:") and len(massive_account) == 64
    massive = SqlQuotaMemory(database.get_engine(), massive_account, hold=timedelta(minutes=30))
    monkeypatch.setenv("QUOTE_PIPELINE_QUOTE_PROVIDERS", "fmp,massive")
    fmp.remember_exhausted("429 'Limit Reach' on 10 calls in a row over 66 s")
    assert not isinstance(evaluate(HOURLY, tick, database), str)  # Massive can serve it
    massive.remember_exhausted("429 on 10 calls in a row over 66 s")
    skipped = evaluate(HOURLY, tick, database)
    assert isinstance(skipped, str) and "fmp:" in skipped and "massive:" in skipped
    # Massive alone spent: a job that asks FMP only is not held back by it.
    fmp.forget_exhausted()
    monkeypatch.setenv("QUOTE_PIPELINE_QUOTE_PROVIDERS", "fmp")
    assert not isinstance(evaluate(HOURLY, tick, database), str)


def test_a_misspelt_provider_order_never_crashes_a_tick(tmp_path, monkeypatch) -> None:
    """The run refuses it in one line; the tick itself still decides (FMP alone)."""
    database = quota_database(f"sqlite:///{tmp_path / 'quota.db'}")
    monkeypatch.setenv("QUOTE_PIPELINE_QUOTE_PROVIDERS", "fmp,polygon")
    assert not isinstance(evaluate(HOURLY, new_york(2026, 11, 25, 10, 1), database), str)
