"""The fetch engine alone, plain Python: passes, the retry budget, hand-over, refusals."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from quote_pipeline.api_errors import ApiAuthError, ApiError
from quote_pipeline.fetch_engine import FetchEngine, RetryBudget, SymbolResult
from quote_pipeline.models import FailureKind


class FakeClient:
    """A client's pool and counters, with requests answered by the test's function."""

    def __init__(self) -> None:
        self.requests_made = 0
        self.quota_exhausted = False
        self._pool = ThreadPoolExecutor(max_workers=8)
        self._lock = threading.Lock()

    def count(self) -> None:
        with self._lock:
            self.requests_made += 1

    def map_concurrently(self, task: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return list(self._pool.map(task, items))


def ok(symbol: str) -> SymbolResult[str]:
    return SymbolResult(symbol, f"value of {symbol}")


def engine_with(
    client: FakeClient, passes: int = 1, delay: float = 0.0
) -> tuple[FetchEngine, list]:
    slept: list[float] = []
    engine = FetchEngine(
        client, RetryBudget(extra_passes=passes, pass_delay_seconds=delay), sleep=slept.append
    )
    return engine, slept


def test_transient_failures_are_asked_again_once_after_the_delay_and_no_more() -> None:
    client = FakeClient()
    asked: Counter[str] = Counter()

    def request(unit: Sequence[str]) -> list[SymbolResult[str]]:
        (symbol,) = unit
        client.count()
        asked[symbol] += 1
        if symbol == "FLAKY" and asked[symbol] == 1:
            return [SymbolResult.failed(symbol, FailureKind.SERVER_ERROR, "HTTP 503")]
        if symbol == "DOWN":
            return [SymbolResult.failed(symbol, FailureKind.TRANSPORT_ERROR, "ReadTimeout")]
        if symbol == "GONE":
            return [SymbolResult.failed(symbol, FailureKind.NO_QUOTE, "no quote")]
        return [ok(symbol)]

    engine, slept = engine_with(client, passes=1, delay=30.0)
    report = engine.fetch(["A", "B", "FLAKY", "DOWN", "GONE"], request)
    assert slept == [30.0]  # one pause, before the one extra pass
    assert asked == {"A": 1, "B": 1, "FLAKY": 2, "DOWN": 2, "GONE": 1}  # permanent: asked once
    assert sorted(r.symbol for r in report.results if r.value) == ["A", "B", "FLAKY"]
    assert {f.symbol: f.kind for f in report.failures} == {
        "DOWN": FailureKind.TRANSPORT_ERROR,
        "GONE": FailureKind.NO_QUOTE,
    }
    assert [f.symbol for f in report.transient] == ["DOWN"]
    assert report.attempts["DOWN"] == 2 and report.attempts["A"] == 1
    assert report.passes == 2 and report.requests_made == 7 and report.succeeded == 3


def test_no_budget_means_one_pass_and_no_pause() -> None:
    client = FakeClient()
    engine, slept = engine_with(client, passes=0)
    report = engine.fetch(
        ["X"], lambda unit: [SymbolResult.failed(unit[0], FailureKind.SERVER_ERROR, "503")]
    )
    assert slept == [] and report.passes == 1
    assert [f.kind for f in report.failures] == [FailureKind.SERVER_ERROR]


def test_groups_are_handed_over_as_they_are_fetched_and_never_hold_a_straggler() -> None:
    client = FakeClient()
    handed: list[list[str]] = []
    order: list[str] = []

    def request(unit: Sequence[str]) -> list[SymbolResult[str]]:
        order.append(f"fetch {unit[0]}")
        if unit[0] == "SLOW":
            return [SymbolResult.failed("SLOW", FailureKind.TRANSPORT_ERROR, "ReadTimeout")]
        return [ok(unit[0])]

    def write(results: list[SymbolResult[str]]) -> None:
        handed.append(sorted(r.symbol for r in results))

    engine, slept = engine_with(client, passes=1)
    symbols = ["A", "B", "SLOW", "C", "D", "E"]
    report = engine.fetch(symbols, request, group_size=2, on_group=write)
    # Every good symbol was handed over in the first pass, before the pause; the straggler
    # only after its last try, as a failure.
    assert handed[:3] == [["A", "B"], ["C"], ["D", "E"]]
    assert handed[3] == ["SLOW"] and report.results == []
    assert report.failures[0].symbol == "SLOW" and report.succeeded == 5
    assert slept == [0.0]


def test_a_failing_write_stops_the_fetch_and_is_raised() -> None:
    client = FakeClient()

    def write(results: list[SymbolResult[str]]) -> None:
        raise RuntimeError("database unreachable")

    engine, _ = engine_with(client)
    with pytest.raises(RuntimeError, match="database unreachable"):
        engine.fetch(["A", "B", "C"], lambda unit: [ok(unit[0])], group_size=1, on_group=write)


def test_a_batch_answer_is_repaired_alone_in_the_same_pass() -> None:
    client = FakeClient()
    batches: list[list[str]] = []

    def batch(unit: Sequence[str]) -> list[SymbolResult[str]]:
        batches.append(list(unit))
        # The batch silently leaves out LEFT: only a request of its own can say why.
        return [
            SymbolResult(s, failure=None, ask_alone=True) if s == "LEFT" else ok(s) for s in unit
        ]

    def alone(unit: Sequence[str]) -> list[SymbolResult[str]]:
        return [SymbolResult.failed(unit[0], FailureKind.NOT_IN_PLAN, "402 for this symbol")]

    engine, slept = engine_with(client)
    report = engine.fetch(
        ["A", "LEFT", "B", "C"], batch, symbols_per_request=2, request_alone=alone
    )
    assert batches == [["A", "LEFT"], ["B", "C"]]
    assert [(f.symbol, f.kind) for f in report.failures] == [("LEFT", FailureKind.NOT_IN_PLAN)]
    assert report.succeeded == 3 and slept == []  # a permanent failure needs no second pass


def test_an_api_error_fails_the_symbols_of_its_request_only() -> None:
    client = FakeClient()

    def request(unit: Sequence[str]) -> list[SymbolResult[str]]:
        if unit[0] == "BAD":
            raise ApiError(FailureKind.BAD_RESPONSE, "malformed JSON")
        return [ok(unit[0])]

    engine, _ = engine_with(client)
    report = engine.fetch(["A", "BAD", "B"], request)
    assert [(f.symbol, f.message) for f in report.failures] == [("BAD", "malformed JSON")]
    assert report.succeeded == 2


def test_a_refused_key_stops_everything() -> None:
    client = FakeClient()

    def request(unit: Sequence[str]) -> list[SymbolResult[str]]:
        raise ApiAuthError(FailureKind.AUTH_ERROR, "HTTP 401: Invalid API KEY")

    engine, _ = engine_with(client)
    with pytest.raises(ApiAuthError, match="Invalid API KEY"):
        engine.fetch(["A", "B"], request)


def test_an_exhausted_quota_stops_asking_and_marks_the_rest_not_requested() -> None:
    client = FakeClient()
    asked: list[str] = []

    def request(unit: Sequence[str]) -> list[SymbolResult[str]]:
        asked.append(unit[0])
        if len(asked) == 3:
            client.quota_exhausted = True
            return [SymbolResult.failed(unit[0], FailureKind.QUOTA_EXHAUSTED, "Limit Reach")]
        return [ok(unit[0])]

    engine, slept = engine_with(client, passes=2)
    report = engine.fetch([f"S{i}" for i in range(10)], request, group_size=3)
    assert len(asked) == 3  # nothing asked once the quota was gone
    assert report.quota_exhausted and report.succeeded == 2
    kinds = Counter(f.kind for f in report.failures)
    assert kinds == {FailureKind.QUOTA_EXHAUSTED: 8}
    assert slept == []  # no extra pass while the quota is gone


def test_a_request_that_forgets_a_symbol_does_not_lose_it() -> None:
    engine, _ = engine_with(FakeClient())
    report = engine.fetch(["A", "B"], lambda unit: [], symbols_per_request=2)
    assert sorted(f.symbol for f in report.failures) == ["A", "B"]


def test_a_stop_between_passes_hands_over_the_last_failures() -> None:
    client = FakeClient()
    stop = threading.Event()
    engine = FetchEngine(
        client,
        RetryBudget(extra_passes=3, pass_delay_seconds=60),
        sleep=lambda _seconds: stop.set(),
        stop=stop,
    )
    report = engine.fetch(
        ["A", "SLOW"],
        lambda unit: [
            SymbolResult.failed(unit[0], FailureKind.SERVER_ERROR, "503")
            if unit[0] == "SLOW"
            else ok(unit[0])
        ],
    )
    assert report.passes == 1
    assert [(f.symbol, f.kind) for f in report.failures] == [("SLOW", FailureKind.SERVER_ERROR)]
