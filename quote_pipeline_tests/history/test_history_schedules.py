"""The price-history schedules on the NYSE calendar: what each tick asks for, or why not."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from quote_pipeline.definitions import build_definitions
from quote_pipeline.defs.history.assets import daily_partitions_from
from quote_pipeline.defs.history.schedules import (
    DAILY_PRICES_CRON,
    INTRADAY_BARS_CRON,
    daily_prices_request,
    intraday_bars_request,
)
from quote_pipeline.defs.resources import DatabaseResource
from quote_pipeline.defs.settings import DEFAULT_HISTORY_START

NY = ZoneInfo("America/New_York")


def ny(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=NY)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("tick", "partition"),
    [
        (ny(2026, 11, 25, 17, 0), "2026-11-25"),  # a regular Wednesday
        (ny(2026, 11, 27, 17, 0), "2026-11-27"),  # closes at 13:00 (day after Thanksgiving)
        (ny(2026, 3, 9, 17, 0), "2026-03-09"),  # the Monday after the spring-forward change
        (ny(2026, 11, 2, 17, 0), "2026-11-02"),  # the Monday after the fall-back change
    ],
)
def test_after_the_close_the_days_partition_is_requested(tick: datetime, partition: str) -> None:
    request = daily_prices_request(tick)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == partition
    assert request.run_key == f"daily_prices:{partition}"
    # With end_offset=1 the partition already exists when the tick asks for it.
    assert partition in daily_partitions_from(DEFAULT_HISTORY_START).get_partition_keys(
        current_time=tick
    )


@pytest.mark.parametrize(
    ("tick", "reason"),
    [
        (ny(2026, 11, 26, 17, 0), "closed on 2026-11-26"),  # Thanksgiving
        (ny(2027, 1, 1, 17, 0), "closed on 2027-01-01"),  # New Year's Day, a Friday
        (ny(2026, 11, 28, 17, 0), "closed on 2026-11-28"),
        (ny(2026, 11, 25, 15, 0), "has not closed yet"),  # a manual tick before the close
    ],
)
def test_closed_days_are_skipped(tick: datetime, reason: str) -> None:
    skip = daily_prices_request(tick)
    assert isinstance(skip, dg.SkipReason)
    assert reason in (skip.skip_message or "")


@pytest.mark.parametrize(
    ("tick", "runs"),
    [
        (ny(2026, 11, 25, 9, 25), False),
        (ny(2026, 11, 25, 9, 30), False),  # nothing has traded yet
        (ny(2026, 11, 25, 9, 35), True),
        (ny(2026, 11, 25, 12, 0), True),
        (ny(2026, 11, 25, 16, 0), True),  # completes the 15:55 bar
        (ny(2026, 11, 25, 16, 5), True),
        (ny(2026, 11, 25, 16, 10), False),
        (ny(2026, 11, 27, 13, 5), True),  # early close at 13:00
        (ny(2026, 11, 27, 13, 10), False),
        (ny(2026, 11, 26, 12, 0), False),  # Thanksgiving
        (ny(2026, 3, 9, 9, 35), True),  # DST: 13:35 UTC
        (ny(2026, 3, 6, 9, 35), True),  # standard time: 14:35 UTC
    ],
)
def test_intraday_runs_only_in_market_hours(tick: datetime, runs: bool) -> None:
    request = intraday_bars_request(tick)
    assert isinstance(request, dg.RunRequest) == runs
    if isinstance(request, dg.RunRequest):
        day = tick.date().isoformat()
        config = request.run_config["ops"]["intraday_bars"]["config"]
        assert config == {"from_date": day, "to_date": day}


RESOURCES = {"database": DatabaseResource(url="sqlite://")}


def test_the_schedules_are_wired_in_new_york_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUOTE_PIPELINE_SCHEDULE_DEFAULT_STATUS", raising=False)
    defs = build_definitions()
    daily = defs.resolve_schedule_def("daily_prices_after_close")
    intraday = defs.resolve_schedule_def("intraday_bars_every_5_minutes")
    assert (daily.cron_schedule, intraday.cron_schedule) == (DAILY_PRICES_CRON, INTRADAY_BARS_CRON)
    assert daily.execution_timezone == intraday.execution_timezone == "America/New_York"
    assert daily.job_name == "daily_prices_job" and intraday.job_name == "intraday_bars_job"
    assert daily.default_status == dg.DefaultScheduleStatus.STOPPED

    repository = defs.get_repository_def()
    evening = ny(2026, 11, 24, 17, 0)
    with dg.build_schedule_context(
        scheduled_execution_time=evening, repository_def=repository, resources=RESOURCES
    ) as context:
        (request,) = daily.evaluate_tick(context).run_requests or []
    assert request.partition_key == "2026-11-24"
    assert request.tags["dagster/partition"] == "2026-11-24"
    night = ny(2026, 11, 24, 3, 0)
    with dg.build_schedule_context(
        scheduled_execution_time=night, repository_def=repository, resources=RESOURCES
    ) as context:
        assert not intraday.evaluate_tick(context).run_requests

    monkeypatch.setenv("QUOTE_PIPELINE_SCHEDULE_DEFAULT_STATUS", "running")
    running = build_definitions().resolve_schedule_def("intraday_bars_every_5_minutes")
    assert running.default_status == dg.DefaultScheduleStatus.RUNNING


def test_every_evening_tick_asks_for_an_existing_partition_or_skips_a_closed_day() -> None:
    # The schedule (the live calendar) and the partitions (its closures, saved) agree: each
    # weekday of the last two months of 2026 at 17:00 either requests a partition that
    # exists by then, or skips a day that is no partition.
    partitions = daily_partitions_from(DEFAULT_HISTORY_START)
    day, requested, skipped = datetime(2026, 11, 2, 17, 0, tzinfo=NY), [], []
    while day.month > 10:
        if day.weekday() < 5:
            request = daily_prices_request(day)
            key = day.date().isoformat()
            if isinstance(request, dg.RunRequest):
                assert request.partition_key == key
                assert partitions.get_partition_keys(current_time=day)[-1] == key
                requested.append(key)
            else:
                assert not partitions.has_partition_key(key), key
                skipped.append(key)
        day += timedelta(days=1)
    assert skipped == ["2026-11-26", "2026-12-25"]
    assert len(requested) == 42
