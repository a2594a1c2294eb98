"""Client-side pacing: stay under the plan's calls-per-minute so FMP never has to say 429."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol


class CallLedger(Protocol):
    """Where calls are counted when several processes share one account's cap."""

    def reserve(self, calls_per_window: int, window_seconds: float) -> float:
        """Record one call now and return 0 if it fits in the window, else record nothing
        and return the seconds to wait before asking again."""
        ...


class QuotaMemory(Protocol):
    """Where an exhausted quota is remembered across runs and processes (the data database)."""

    def remember_exhausted(self, reason: str) -> None:
        """The quota ran out now, for ``reason``."""
        ...

    def forget_exhausted(self) -> None:
        """A call succeeded: whatever was remembered no longer holds."""
        ...


class CallPacer:
    """How fast, and whether at all, an API account may be called.

        ``acquire()`` blocks until one more call fits in the last ``window_seconds``, and until
        any back-off set by ``pause()`` (after a 429) has passed. ``calls_per_window=None``
        means unlimited, but pauses still apply. With a ``ledger`` the window is counted there,
        shared with every other process using the same ledger, instead of in this process.
        It also remembers a 429 streak: one that lasts
        ``quota_exhausted_after`` seconds without a single success means the quota is gone, and
        every client sharing this pacer stops asking. Both conditions are needed: a burst of 429s
    from concurrent threads is not a lost quota, and neither is one 429 after a long pause.
    """

    def __init__(
        self,
        calls_per_window: int | None,
        *,
        window_seconds: float = 60.0,
        margin_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        ledger: CallLedger | None = None,
        quota_memory: QuotaMemory | None = None,
    ) -> None:
        if calls_per_window is not None and calls_per_window < 1:
            raise ValueError("calls_per_window must be at least 1 (or None for no cap)")
        self.calls_per_window = calls_per_window
        # The API counts arrivals, we count departures: a call that left fast after one that
        # left slowly could land inside the API's window. A small margin keeps us under it.
        self.window_seconds = window_seconds + margin_seconds
        self._clock = clock
        self._sleep = sleep
        self.ledger = ledger
        self._ledger_full_until = 0.0
        self._sent: deque[float] = deque()
        self._resume_at = 0.0
        self._rate_limited_since: float | None = None
        self._rate_limited_streak = 0
        self._probe_in_flight = False
        self.quota_exhausted = False
        self.quota_memory = quota_memory
        # Whether the memory may hold an exhaustion that the next success must clear; one
        # write when that happens, not one per successful call.
        self._memory_may_hold = quota_memory is not None
        self._lock = threading.Lock()
        self._memory_lock = threading.Lock()  # orders the quota memory's database writes

    def acquire(self) -> None:
        """Wait for a free slot, then take it."""
        while True:
            with self._lock:
                now = self._clock()
                wait = self._resume_at - now
                if wait <= 0 and self._rate_limited_since is not None and self._probe_in_flight:
                    # While the API answers 429, one call at a time feels for its recovery;
                    # the other threads would only collect more 429s (and spend quota).
                    wait = 0.05
                if wait <= 0 and self.calls_per_window is not None:
                    wait = self._take_window_slot(self.calls_per_window, now)
                if wait <= 0:
                    if self._rate_limited_since is not None:
                        self._probe_in_flight = True
                    return
            self._sleep(min(wait, 1.0))

    def _take_window_slot(self, cap: int, now: float) -> float:
        """Count one call in the window and return 0, or return how long until one fits."""
        if self.ledger is not None:
            # Other processes can only fill the window, never free it sooner: no need to ask
            # the ledger again before the time it gave.
            if now < self._ledger_full_until:
                return self._ledger_full_until - now
            # Still under the lock: this process's threads queue here, not at the database.
            wait = self.ledger.reserve(cap, self.window_seconds)
            self._ledger_full_until = now + wait
            return wait
        while self._sent and self._sent[0] <= now - self.window_seconds:
            self._sent.popleft()
        if len(self._sent) >= cap:
            return self._sent[0] + self.window_seconds - now
        self._sent.append(now)
        return 0.0

    def release(self) -> None:
        """The call that ``acquire()`` let through has finished, whatever its outcome."""
        with self._lock:
            self._probe_in_flight = False

    def pause(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` (the API said slow down)."""
        with self._lock:
            self._resume_at = max(self._resume_at, self._clock() + seconds)

    def note_success(self) -> None:
        """A call got a real answer: any 429 streak is over, and so is a remembered quota —
        unless this run has found it spent meanwhile (answers already in flight when the
        quota ran out must not wipe what was just remembered)."""
        with self._lock:
            self._rate_limited_since = None
            self._rate_limited_streak = 0
            forget = self._memory_may_hold and not self.quota_exhausted
            if forget:
                self._memory_may_hold = False
        if forget and self.quota_memory is not None:
            # One write at a time, re-checked inside: a "remember" that raced this "forget"
            # always lands last.
            with self._memory_lock:
                if not self.quota_exhausted:
                    self.quota_memory.forget_exhausted()

    def note_rate_limited(
        self, *, pause: float, exhausted_after: float, exhausted_streak: int
    ) -> bool:
        """A call got 429: back off, and return whether the quota now counts as exhausted
        (``exhausted_streak`` 429s in a row over at least ``exhausted_after`` seconds)."""
        with self._lock:
            now = self._clock()
            self._resume_at = max(self._resume_at, now + pause)
            if self._rate_limited_since is None:
                self._rate_limited_since = now
            self._rate_limited_streak += 1
            streak_seconds = now - self._rate_limited_since
            exhausted = (
                self._rate_limited_streak >= exhausted_streak and streak_seconds >= exhausted_after
            )
        if exhausted:
            self.mark_quota_exhausted(
                f"429 'Limit Reach' on {self._rate_limited_streak} calls in a row over "
                f"{streak_seconds:.0f} s"
            )
        return self.quota_exhausted

    def mark_quota_exhausted(self, reason: str = "the API said the quota is exhausted") -> None:
        """Stop every caller of this account, and remember it for later runs."""
        with self._lock:
            first = not self.quota_exhausted
            self.quota_exhausted = True
            self._memory_may_hold = self.quota_memory is not None
        if first and self.quota_memory is not None:
            with self._memory_lock:
                self.quota_memory.remember_exhausted(reason)

    def reset_quota(self) -> None:
        """Forget an exhausted quota (a new run asks again once)."""
        with self._lock:
            self.quota_exhausted = False
            self._rate_limited_since = None
            self._rate_limited_streak = 0
