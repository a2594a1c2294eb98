"""The one fetch engine every dataset uses: fan-out, failure classes, in-run retries, hand-over.

No Dagster, no database. A dataset gives the engine its symbols and a *request function*
(one call to the API for a few symbols, returning one :class:`SymbolResult` per symbol); the
engine runs those requests concurrently over the API client's thread pool and pacer, sorts
each symbol's outcome into success, permanent failure (no such symbol, not in the plan, a bad
answer) or transient failure (5xx, timeout, reset, 429), and asks the transient ones again
within a bounded budget (:class:`RetryBudget`: by default one more pass, 30 s later).

What makes a straggler harmless: a request that times out is *not* retried inside its pass
(the client retries only fast failures there), so one pass over the symbols costs at most one
read timeout, and results are handed to the caller in bounded groups while the next group is
fetched. Whatever is still failing transiently when the budget is spent is reported, with
its attempts, for the caller to record and ask again later, alone, without holding the rest.

An invalid key (:class:`ApiAuthError`) or an endpoint outside the plan stops the whole fetch;
an exhausted quota marks every symbol not yet asked ``quota_exhausted`` and stops asking.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from quote_pipeline.api_errors import ApiAuthError, ApiEndpointRestricted, ApiError
from quote_pipeline.compat import batched
from quote_pipeline.models import TRANSIENT_FAILURE_KINDS, FailureKind, SymbolFailure

T = TypeVar("T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class SymbolResult(Generic[T]):
    """What one symbol got from a request: a value, a failure, or both (a usable answer with
    some rows rejected: ``value`` is what was kept, ``failure`` says what was not)."""

    symbol: str
    value: T | None = None
    failure: SymbolFailure | None = None
    ask_alone: bool = False
    """A batch answer that a request for this symbol alone may repair or explain (left out
    of the batch, or part of a spoiled one): asked again alone in the same pass."""

    @property
    def transient(self) -> bool:
        return self.failure is not None and self.failure.kind in TRANSIENT_FAILURE_KINDS

    @classmethod
    def failed(cls, symbol: str, kind: FailureKind, message: str) -> SymbolResult[T]:
        return cls(symbol, failure=SymbolFailure(symbol, kind, message))


def one_result_per_symbol(
    requested: Sequence[str],
    values: Mapping[str, T],
    failures: Mapping[str, SymbolFailure],
    missing: str,
) -> list[SymbolResult[T]]:
    """A multi-symbol answer as one result per requested symbol, in the order asked: its
    value, else its failure, else ``missing`` (a ``no_quote`` failure: the answer left it
    out)."""
    results: list[SymbolResult[T]] = []
    for symbol in requested:
        if symbol in values:
            results.append(SymbolResult(symbol, values[symbol]))
        elif symbol in failures:
            results.append(SymbolResult(symbol, failure=failures[symbol]))
        else:
            results.append(SymbolResult.failed(symbol, FailureKind.NO_QUOTE, missing))
    return results


RequestFunction = Callable[[Sequence[str]], list[SymbolResult[T]]]
"""One API call for a few symbols (one, or a batch endpoint's chunk), a result per symbol.
It may raise :class:`ApiError`: the engine turns that into a failure of those symbols."""


class ConcurrentClient(Protocol):
    """What the engine needs of an API client: its pool, its request count, its quota flag."""

    @property
    def requests_made(self) -> int: ...

    @property
    def quota_exhausted(self) -> bool: ...

    def map_concurrently(self, task: Callable[[str], _R], items: Sequence[str]) -> list[_R]: ...


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """How much a run may spend on symbols that failed transiently before handing them over.

    The default, one more pass half a minute after the first, gives a blip time to pass
    while keeping a whole refresh within about a minute of its first pass.
    """

    extra_passes: int = 1
    pass_delay_seconds: float = 30.0


@dataclass
class FetchReport(Generic[T]):
    """What a fetch did. ``results`` holds each symbol's final result unless the caller took
    them group by group (``on_group``); failures and counts are always here."""

    symbols: int = 0
    results: list[SymbolResult[T]] = field(default_factory=list)
    failures: list[SymbolFailure] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    requests_made: int = 0
    passes: int = 0
    quota_exhausted: bool = False
    succeeded: int = 0

    @property
    def transient(self) -> list[SymbolFailure]:
        """Failures still transient after the budget: to be asked again later."""
        return [f for f in self.failures if f.kind in TRANSIENT_FAILURE_KINDS]

    @property
    def permanent(self) -> list[SymbolFailure]:
        return [f for f in self.failures if f.kind not in TRANSIENT_FAILURE_KINDS]

    @property
    def failed_symbols(self) -> set[str]:
        return {f.symbol for f in self.failures}


GroupHandler = Callable[[list[SymbolResult[T]]], None]


class FetchEngine:
    """Runs request functions over a client's pool; see the module's docstring.

    ``sleep`` waits between passes; ``stop`` (an Event) cuts that wait short, e.g. when the
    process is asked to terminate.
    """

    def __init__(
        self,
        client: ConcurrentClient,
        budget: RetryBudget | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.budget = budget or RetryBudget()
        self._stop = stop or threading.Event()
        self._sleep = sleep or (lambda seconds: self._stop.wait(seconds))

    def fetch(
        self,
        symbols: Sequence[str],
        request: RequestFunction[T],
        *,
        symbols_per_request: int = 1,
        request_alone: RequestFunction[T] | None = None,
        group_size: int | None = None,
        on_group: GroupHandler[T] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> FetchReport[T]:
        """Fetch ``symbols`` with ``request`` and the retry budget.

        ``request`` is called with up to ``symbols_per_request`` symbols at a time; a result
        it marks ``ask_alone`` is asked again in the same pass with ``request_alone``.

        ``group_size`` symbols are fetched at a time; with ``on_group``, each group's
        results (successes and permanent failures alike, never a transient failure that
        will be asked again) are handed over on one writer thread while the next group is
        fetched, so at most two groups are held in memory and good rows are written long
        before a straggler's last attempt. Without ``on_group`` they are collected in
        ``report.results``. An exception from ``on_group`` stops the fetch and is raised.
        """
        report: FetchReport[T] = FetchReport(symbols=len(symbols))
        requests_at_start = self.client.requests_made
        say = log or (lambda _message: None)
        group_size = group_size or max(len(symbols), 1)
        with _Handover(report, on_group) as handover:
            pending = list(dict.fromkeys(symbols))
            retry_later: list[SymbolResult[T]] = []
            last_pass = 1 + max(self.budget.extra_passes, 0)
            for pass_number in range(1, last_pass + 1):
                if pass_number > 1:
                    say(
                        f"{len(pending)} symbol(s) failed transiently; asking again in "
                        f"{self.budget.pass_delay_seconds:g} s (pass {pass_number} of "
                        f"{last_pass})"
                    )
                    self._sleep(self.budget.pass_delay_seconds)
                    if self._stop.is_set():
                        break  # their last failures are handed over below, as they were
                report.passes = pass_number
                retry_later = []
                for group in batched(pending, group_size):
                    handover.raise_if_failed()  # a failed write stops the fetch at once
                    results = self._one_pass(
                        group, request, symbols_per_request, request_alone, report
                    )
                    final = pass_number == last_pass
                    handover.give([r for r in results if final or not r.transient])
                    retry_later.extend(r for r in results if not final and r.transient)
                    say(
                        f"pass {pass_number}: {len(group)} symbol(s) asked, "
                        f"{sum(r.value is not None for r in results)} answered, "
                        f"{self.client.requests_made - requests_at_start} requests so far"
                    )
                pending = [r.symbol for r in retry_later]
                if not pending or self.client.quota_exhausted:
                    break
            handover.give(retry_later)
        report.requests_made = self.client.requests_made - requests_at_start
        report.quota_exhausted = self.client.quota_exhausted
        return report

    def _one_pass(
        self,
        symbols: Sequence[str],
        request: RequestFunction[T],
        symbols_per_request: int,
        request_alone: RequestFunction[T] | None,
        report: FetchReport[T],
    ) -> list[SymbolResult[T]]:
        units = [list(unit) for unit in batched(symbols, max(symbols_per_request, 1))]
        for symbol in symbols:
            report.attempts[symbol] = report.attempts.get(symbol, 0) + 1

        def run(unit: Sequence[str], request: RequestFunction[T]) -> list[SymbolResult[T]]:
            if self.client.quota_exhausted:
                return [_not_requested(s) for s in unit]
            try:
                results = request(unit)
            except (ApiAuthError, ApiEndpointRestricted):
                raise  # nothing else could succeed either: the caller stops the run
            except ApiError as exc:
                return [SymbolResult.failed(s, exc.kind, str(exc)) for s in unit]
            answered = {r.symbol for r in results}
            # A request function that forgot a symbol must not make it vanish.
            return results + [
                SymbolResult.failed(s, FailureKind.NO_QUOTE, "no result for this symbol")
                for s in unit
                if s not in answered
            ]

        results = [
            result
            for unit in self.client.map_concurrently(lambda u: run(u, request), units)
            for result in unit
        ]
        if request_alone is None:
            return results
        alone = [r.symbol for r in results if r.ask_alone]
        if not alone:
            return results
        again = {
            result.symbol: result
            for unit in self.client.map_concurrently(lambda s: run([s], request_alone), alone)
            for result in unit
        }
        return [again.get(r.symbol, r) if r.ask_alone else r for r in results]


class _Handover(Generic[T]):
    """Passes results to ``on_group`` on one writer thread (or keeps them), and books them."""

    def __init__(self, report: FetchReport[T], on_group: GroupHandler[T] | None) -> None:
        self._report = report
        self._on_group = on_group
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetch-writer")
        self._pending: Future[None] | None = None

    def __enter__(self) -> _Handover[T]:
        return self

    def give(self, results: list[SymbolResult[T]]) -> None:
        report = self._report
        for result in results:
            if result.failure is not None:
                report.failures.append(result.failure)
            if result.value is not None:
                report.succeeded += 1
        if self._on_group is None:
            report.results.extend(results)
            return
        self._wait()  # one group in the writer at a time: memory stays bounded
        if results:
            self._pending = self._writer.submit(self._on_group, results)

    def raise_if_failed(self) -> None:
        """Raise the error of a write that has already failed, without waiting for one
        still under way."""
        if self._pending is not None and self._pending.done():
            self._wait()

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def __exit__(self, *exc: object) -> None:
        # Also when a fetch failed (a refused key): the write under way finishes, and its
        # error, if any, is raised unless another one already is.
        try:
            if exc[0] is None:
                self._wait()
            elif self._pending is not None:
                self._pending.exception()
        finally:
            self._writer.shutdown(wait=True)


def _not_requested(symbol: str) -> SymbolResult[T]:
    return SymbolResult.failed(
        symbol, FailureKind.QUOTA_EXHAUSTED, "not requested: the API quota is exhausted"
    )


__all__ = [
    "FetchEngine",
    "FetchReport",
    "RequestFunction",
    "RetryBudget",
    "SymbolResult",
    "one_result_per_symbol",
]
