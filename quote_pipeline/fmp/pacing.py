"""Client-side pacing: stay under the plan's calls-per-minute so FMP never has to say 429."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class CallPacer:
    """How fast, and whether at all, an API account may be called.

        ``acquire()`` blocks until one more call fits in the last ``window_seconds``, and until
        any back-off set by ``pause()`` (after a 429) has passed. ``calls_per_window=None``
        means unlimited, but pauses still apply. It also remembers a 429 streak: one that lasts
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
    ) -> None:
        if calls_per_window is not None and calls_per_window < 1:
            raise ValueError("calls_per_window must be at least 1 (or None for no cap)")
        self.calls_per_window = calls_per_window
        # The API counts arrivals, we count departures: a call that left fast after one that
        # left slowly could land inside the API's window. A small margin keeps us under it.
        self.window_seconds = window_seconds + margin_seconds
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._resume_at = 0.0
        self._rate_limited_since: float | None = None
        self._rate_limited_streak = 0
        self._probe_in_flight = False
        self.quota_exhausted = False
        self._lock = threading.Lock()

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
                    while self._sent and self._sent[0] <= now - self.window_seconds:
                        self._sent.popleft()
                    if len(self._sent) >= self.calls_per_window:
                        wait = self._sent[0] + self.window_seconds - now
                if wait <= 0:
                    if self.calls_per_window is not None:
                        self._sent.append(now)
                    if self._rate_limited_since is not None:
                        self._probe_in_flight = True
                    return
            self._sleep(min(wait, 1.0))

    def release(self) -> None:
        """The call that ``acquire()`` let through has finished, whatever its outcome."""
        with self._lock:
            self._probe_in_flight = False

    def pause(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` (the API said slow down)."""
        with self._lock:
            self._resume_at = max(self._resume_at, self._clock() + seconds)

    def note_success(self) -> None:
        """A call got a real answer: any 429 streak is over."""
        with self._lock:
            self._rate_limited_since = None
            self._rate_limited_streak = 0

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
            if (
                self._rate_limited_streak >= exhausted_streak
                and now - self._rate_limited_since >= exhausted_after
            ):
                self.quota_exhausted = True
            return self.quota_exhausted

    def mark_quota_exhausted(self) -> None:
        with self._lock:
            self.quota_exhausted = True

    def reset_quota(self) -> None:
        """Forget an exhausted quota (a new run asks again once)."""
        with self._lock:
            self.quota_exhausted = False
            self._rate_limited_since = None
            self._rate_limited_streak = 0


_shared_pacers: dict[tuple[str, int | None], CallPacer] = {}
_shared_lock = threading.Lock()


def shared_pacer(account: str, calls_per_minute: int | None) -> CallPacer:
    """One pacer per API account and cap in this process.

    Clients come and go with each step of a run; the plan's cap belongs to the account, so
    every client of the same account in a process shares the same window.
    """
    key = (account, calls_per_minute)
    with _shared_lock:
        if key not in _shared_pacers:
            _shared_pacers[key] = CallPacer(calls_per_minute)
        return _shared_pacers[key]
