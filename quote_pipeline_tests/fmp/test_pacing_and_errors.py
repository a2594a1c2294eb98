"""Client-side pacing and FMP's error wording, without a network."""

import logging

import pytest

from quote_pipeline.fmp.errors import RedactingFilter, classify_error_message, redact
from quote_pipeline.fmp.pacing import CallPacer
from quote_pipeline.models import FailureKind


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_pacer_never_lets_more_than_the_cap_into_any_window() -> None:
    clock = FakeClock()
    pacer = CallPacer(5, window_seconds=60, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(17):
        pacer.acquire()
        sent.append(clock.now)
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t < start + 60) <= 5
    assert sent[5] >= sent[0] + 60  # the sixth call waited for the window to slide
    assert sent[-1] - sent[0] < 4 * 60  # and no longer than needed


def test_pacer_pause_holds_everyone_back() -> None:
    clock = FakeClock()
    pacer = CallPacer(None, clock=clock, sleep=clock.sleep)
    pacer.pause(3.0)
    pacer.acquire()
    # Held back the whole pause, and not a moment more (it sleeps in steps of <= 1 s).
    assert clock.now == pytest.approx(1003.0)
    pacer.acquire()  # the pause is over for the next caller too
    assert clock.now == pytest.approx(1003.0)


def test_quota_counts_as_exhausted_only_after_a_long_unbroken_streak() -> None:
    clock = FakeClock()
    pacer = CallPacer(None, clock=clock, sleep=clock.sleep)

    def limited() -> bool:
        return pacer.note_rate_limited(pause=0, exhausted_after=60, exhausted_streak=10)

    for _ in range(50):  # a burst: many 429s at once is not a lost quota
        assert not limited()
    clock.now += 61
    pacer.note_success()  # ...and a success ends the streak
    assert not limited()
    for _ in range(20):
        clock.now += 5
        limited()
    assert pacer.quota_exhausted
    pacer.reset_quota()
    assert not pacer.quota_exhausted


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Invalid API KEY. Feel free to create a Free API Key", FailureKind.AUTH_ERROR),
        (
            "Legacy Endpoint : Due to Legacy endpoints being no longer supported",
            FailureKind.AUTH_ERROR,
        ),
        ("Limit Reach . Please upgrade your plan", FailureKind.RATE_LIMITED),
        ("Bandwidth Limit Reach . Please upgrade", FailureKind.QUOTA_EXHAUSTED),
        ("Premium Query Parameter: 'Special Endpoint : ...'", FailureKind.NOT_IN_PLAN),
        ("Restricted Endpoint: This endpoint is not available", FailureKind.NOT_IN_PLAN),
        ("Error processing the request for symbol 'X'", FailureKind.API_ERROR),
    ],
)
def test_error_messages_are_classified_by_their_text(text: str, kind: FailureKind) -> None:
    assert classify_error_message(text) == kind


def test_redaction_covers_urls_and_the_raw_key() -> None:
    text = "GET http://h/stable/quote-short?symbol=A&apikey=s3cr3t&x=1 failed; key s3cr3t"
    assert redact(text, "s3cr3t") == (
        "GET http://h/stable/quote-short?symbol=A&apikey=***&x=1 failed; key ***"
    )
    assert redact("url: /q?APIKEY=abc)", None) == "url: /q?APIKEY=***)"


def test_library_log_records_are_redacted() -> None:
    record = logging.LogRecord(
        "urllib3.connectionpool", logging.WARNING, __file__, 1,
        "Retrying after %s: /stable/quote-short?symbol=A&apikey=%s", ("reset", "s3cr3t"), None,
    )  # fmt: skip
    RedactingFilter().filter(record)
    assert "s3cr3t" not in record.getMessage()
    assert "apikey=***" in record.getMessage()


class CountingLedger:
    """A ledger that another process has filled until ``free_at``."""

    def __init__(self, clock: FakeClock, free_at: float) -> None:
        self.clock = clock
        self.free_at = free_at
        self.asked = 0

    def reserve(self, calls_per_window: int, window_seconds: float) -> float:
        self.asked += 1
        return max(self.free_at - self.clock.now, 0.0)


def test_a_full_shared_window_is_not_asked_about_again_before_it_frees() -> None:
    clock = FakeClock()
    ledger = CountingLedger(clock, free_at=clock.now + 30)
    pacer = CallPacer(5, clock=clock, sleep=clock.sleep, ledger=ledger)
    pacer.acquire()  # sleeps in steps of at most a second, 30 s in all
    assert clock.now == 1030.0
    assert ledger.asked == 2  # when full, and when it said the window would free


class RecordingMemory:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def remember_exhausted(self, reason: str) -> None:
        self.calls.append("remember")

    def forget_exhausted(self) -> None:
        self.calls.append("forget")


def test_answers_in_flight_when_the_quota_runs_out_do_not_forget_it() -> None:
    memory = RecordingMemory()
    pacer = CallPacer(None, quota_memory=memory)
    pacer.note_success()  # the run's first answer clears what an earlier run remembered
    pacer.note_success()  # ... once
    pacer.mark_quota_exhausted("Bandwidth Limit Reach")
    pacer.note_success()  # a 200 that was already in flight
    assert memory.calls == ["forget", "remember"]
    pacer.reset_quota()  # the next run asks again; its first answer clears it
    pacer.note_success()
    assert memory.calls == ["forget", "remember", "forget"]
