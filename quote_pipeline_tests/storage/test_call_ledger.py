"""The shared call ledger on real databases: one plan's cap across processes."""

import json
import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa

from quote_pipeline.fmp.pacing import CallPacer
from quote_pipeline.storage import create_db_engine
from quote_pipeline.storage.call_ledger import SqlCallLedger
from quote_pipeline.storage.schema import api_calls


class SharedClock:
    """One clock for every "process" of a test, advanced by whoever sleeps."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def ledgers(url: str, account: str, clock: SharedClock, count: int) -> list[SqlCallLedger]:
    """``count`` ledgers with an engine (a connection pool) each, as separate processes have."""
    return [SqlCallLedger(create_db_engine(url), account, clock=clock) for _ in range(count)]


def test_the_cap_holds_across_ledgers_and_the_window_slides(database_url: str) -> None:
    clock = SharedClock()
    first, second = ledgers(database_url, "acct", clock, 2)
    assert [first.reserve(3, 60.0) for _ in range(2)] == [0.0, 0.0]
    assert second.reserve(3, 60.0) == 0.0
    # Full: neither may call, and both are told when the oldest call leaves the window.
    assert second.reserve(3, 60.0) == pytest.approx(60.0)
    clock.now += 59.5
    assert first.reserve(3, 60.0) == pytest.approx(0.5)
    clock.now += 0.5
    assert first.reserve(3, 60.0) == 0.0
    # Other accounts are counted apart, and old calls are not kept.
    (other,) = ledgers(database_url, "other", clock, 1)
    assert other.reserve(3, 60.0) == 0.0
    with create_db_engine(database_url).connect() as conn:
        kept = conn.execute(
            sa.select(api_calls.c.account, sa.func.count()).group_by(api_calls.c.account)
        ).all()
    assert dict(kept) == {"acct": 1, "other": 1}


def test_concurrent_reservations_never_exceed_the_cap(database_url: str) -> None:
    # Threads of two "processes" ask at the same instant: exactly the cap gets through.
    clock = SharedClock()
    granted: list[float] = []
    lock = threading.Lock()

    def ask(ledger: SqlCallLedger) -> None:
        for _ in range(5):
            wait = ledger.reserve(12, 60.0)
            with lock:
                granted.append(wait)

    threads = [
        threading.Thread(target=ask, args=(ledger,))
        for ledger in ledgers(database_url, "acct", clock, 2)
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 40
    assert sum(1 for wait in granted if wait == 0.0) == 12


def test_two_pacers_on_one_ledger_share_the_plans_minute(database_url: str) -> None:
    # Two runs in two processes, each with its own pacer: together they stay under the cap.
    clock = SharedClock()
    pacers = [
        CallPacer(5, window_seconds=60, clock=clock, sleep=clock.sleep, ledger=ledger)
        for ledger in ledgers(database_url, "acct", clock, 2)
    ]
    sent = []
    for i in range(14):
        pacers[i % 2].acquire()
        sent.append(clock.now)
    window = 61.0  # the pacer's margin of a second is added to the window
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t < start + window) <= 5
    assert sent[5] >= sent[0] + window
    assert sent[-1] - sent[0] < 3 * window


PACED_PROCESS = """
import json, sys, time
from quote_pipeline.fmp.pacing import CallPacer
from quote_pipeline.storage import create_db_engine
from quote_pipeline.storage.call_ledger import SqlCallLedger

url, count = sys.argv[1], int(sys.argv[2])
ledger = SqlCallLedger(create_db_engine(url), "acct")
pacer = CallPacer(8, window_seconds=2.0, margin_seconds=0.25, ledger=ledger)
sent = []
for _ in range(count):
    pacer.acquire()
    sent.append(time.time())
    pacer.release()
print(json.dumps(sent))
"""


def test_real_processes_share_the_cap(database_url: str) -> None:
    # Two processes, a cap of 8 calls per 2 s, 12 calls each: together they need three
    # windows, and no 2-second span holds more than 8 of their 24 calls. (The pacer's margin,
    # a second in production, covers the moment between counting a call and sending it.)
    create_db_engine(database_url).dispose()  # the schema, before both start
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PACED_PROCESS, database_url, "12"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    sent = sorted(t for p in processes for t in json.loads(p.communicate(timeout=60)[0]))
    assert all(p.returncode == 0 for p in processes)
    assert len(sent) == 24
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t < start + 2.0) <= 8
    assert sent[-1] - sent[0] >= 4.5
