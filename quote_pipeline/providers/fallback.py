"""Asking providers in order, and falling back without losing anything. No Dagster, no database.

Two levels, as a user of several plans expects:

* **The run:** before any fan-out, providers are probed in the configured order until one
  answers; one whose key is refused, whose quota is spent (or remembered spent), whose plan
  lacks the endpoint or which cannot be reached is skipped for the run, and the run says so.
* **The symbol:** whatever a provider could not serve (not in its plan, no quote, a bad
  answer, still failing after its retry budget, not asked because its quota ran out) is
  asked of the next provider, and only that. A symbol fails only when every provider failed
  it; its failure record lists what each one said.

With a single provider configured, everything reads exactly as it did before providers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

from quote_pipeline.api_errors import ApiError
from quote_pipeline.models import TRANSIENT_FAILURE_KINDS, FailureKind, SymbolFailure
from quote_pipeline.providers.base import (
    MarketDataProvider,
    ProviderRefusal,
    QuoteFetchResult,
    QuotePlan,
)

# How much of each provider's message a combined failure record keeps.
_REASON_CHARS = 200


class ProvidersRefused(ApiError):
    """Every configured provider refused the run; the message says why, provider by provider."""

    def __init__(self, refusals: Sequence[ProviderRefusal], kind: FailureKind) -> None:
        super().__init__(kind, "; ".join(f"{r.provider}: {r.reason}" for r in refusals))
        self.refusals = list(refusals)


@dataclass
class QuoteProviderPlan:
    """The providers a quote run will ask, in order, and those skipped before it began."""

    plans: list[QuotePlan] = field(default_factory=list)
    refusals: list[ProviderRefusal] = field(default_factory=list)

    def notes(self) -> list[str]:
        """Why the run does not start with the configured primary, in words."""
        if not self.refusals or not self.plans:
            return []
        return [
            f"{r.provider} cannot serve this run ({r.reason}): using {self.plans[0].provider}"
            for r in self.refusals
        ]


def plan_quote_providers(
    chain: Sequence[MarketDataProvider],
    symbols: Sequence[str],
    *,
    ask_last: Collection[str] = (),
) -> QuoteProviderPlan:
    """Probe providers in order until one can serve the run; keep the rest as fallbacks
    (asked only if symbols are left over, so they cost nothing on a good day).

    Raises the primary's own error when it is the only provider, else
    :class:`ProvidersRefused` when none can serve the run.
    """
    found = QuoteProviderPlan()
    errors: list[ApiError] = []
    for provider in chain:
        if held := provider.held_reason():
            found.refusals.append(ProviderRefusal(provider.name, held))
            errors.append(ApiError(FailureKind.QUOTA_EXHAUSTED, held))
            continue
        if found.plans:
            found.plans.append(provider.prepare_quotes(symbols, ask_last=ask_last, probe=False))
            continue
        try:
            found.plans.append(provider.prepare_quotes(symbols, ask_last=ask_last))
        except ApiError as exc:
            found.refusals.append(ProviderRefusal(provider.name, f"{exc.kind.value}: {exc}"))
            errors.append(exc)
    if not found.plans:
        if len(errors) == 1:
            raise errors[0]
        raise ProvidersRefused(found.refusals, _run_kind(errors))
    return found


def fetch_quotes_in_order(
    providers: Sequence[tuple[MarketDataProvider, QuotePlan]],
    symbols: Sequence[str],
    *,
    log: Callable[[str], None],
) -> QuoteFetchResult:
    """Quotes for ``symbols`` from the first provider, what it could not serve from the next,
    and so on. Every symbol ends up a quote (with its ``source``) or one failure record.

    A provider refusing a whole request (key, endpoint) passes all its symbols on. Raises
    only when every provider refused so (the primary's own error if it was the only one).
    """
    remaining = list(dict.fromkeys(symbols))
    said: Said = {}
    results: list[QuoteFetchResult] = []
    refusals: list[tuple[str, ApiError]] = []
    notes: list[str] = []
    # Every request counts, a refused provider's too (its results are not kept).
    requests: dict[str, int] = {}
    for index, (provider, plan) in enumerate(providers):
        if not remaining:
            break
        before = provider.requests_made
        following = providers[index + 1][0].name if index + 1 < len(providers) else None
        if held := provider.held_reason():
            # Its quota ran out (in this run's other steps, or remembered): not asked, like
            # the symbols the engine leaves when the quota runs out mid-fetch.
            not_asked = ApiError(FailureKind.QUOTA_EXHAUSTED, f"not requested: {held}")
            record_failure(said, remaining, provider.name, not_asked.kind, str(not_asked))
            if following:
                notes.append(f"{provider.name} skipped ({held}): asking {following}")
            continue
        try:
            result = provider.fetch_quotes(remaining, plan, log=log)
        except ApiError as exc:  # the key or the endpoint: none of them can succeed there
            requests[provider.name] = provider.requests_made - before
            record_failure(said, remaining, provider.name, exc.kind, str(exc))
            refusals.append((provider.name, exc))
            if following:
                notes.append(
                    f"{provider.name} refused the request ({exc.kind.value}: {exc}): "
                    f"{len(remaining)} symbol(s) asked of {following}"
                )
            continue
        requests[provider.name] = provider.requests_made - before
        results.append(result)
        for failure in result.failures:
            said.setdefault(failure.symbol, []).append((provider.name, failure))
        served = {quote.symbol for quote in result.quotes}
        remaining = [s for s in remaining if s not in served]
        if remaining and following:
            kinds = _kinds_text(said[s][-1][1].kind for s in remaining)
            notes.append(
                f"{len(remaining)} symbol(s) {provider.name} could not serve ({kinds}) "
                f"asked of {following}"
            )
    if remaining and refusals and len(refusals) == len(providers):
        if len(refusals) == 1:
            raise refusals[0][1]
        raise ProvidersRefused(
            [ProviderRefusal(name, f"{error.kind.value}: {error}") for name, error in refusals],
            _run_kind([error for _, error in refusals]),
        )
    combined = QuoteFetchResult.combine(results)
    combined.failures = [combined_failure(s, said.get(s, [])) for s in remaining]
    failed = set(remaining)
    combined.attempts = {s: n for s, n in combined.attempts.items() if s in failed}
    combined.quota_exhausted = any(f.kind == FailureKind.QUOTA_EXHAUSTED for f in combined.failures)
    combined.fallbacks = [*combined.fallbacks, *notes]
    combined.requests_by_provider = {name: n for name, n in requests.items() if n}
    combined.requests_made = sum(requests.values())
    # The primary's endpoint decides how the run reads (batch or single-symbol requests).
    combined.used_batch_endpoint = results[0].used_batch_endpoint if results else False
    return combined


def combined_failure(symbol: str, reasons: Sequence[tuple[str, SymbolFailure]]) -> SymbolFailure:
    """One failure record for a symbol no provider served, listing what each one said.

    Its kind says what can still change: transient if any provider failed it transiently
    (a later run may succeed there), else ``quota_exhausted`` if a provider was not asked
    (its quota was spent: the symbol stays pending, the quota check reports it), else the
    last provider's. A single provider's record is kept as it was."""
    if not reasons:
        return SymbolFailure(symbol, FailureKind.NO_QUOTE, "no provider was asked")
    if len(reasons) == 1:
        return reasons[0][1]
    return SymbolFailure(
        symbol,
        combined_kind([f.kind for _, f in reasons]),
        "; ".join(
            f"{provider}: {failure.kind.value} ({failure.message[:_REASON_CHARS]})"
            for provider, failure in reasons
        ),
    )


def combined_kind(kinds: Sequence[FailureKind]) -> FailureKind:
    """The kind of a failure several providers gave (see :func:`combined_failure`)."""
    return next(
        (k for k in kinds if k in TRANSIENT_FAILURE_KINDS),
        FailureKind.QUOTA_EXHAUSTED if FailureKind.QUOTA_EXHAUSTED in kinds else kinds[-1],
    )


Said = dict[str, list[tuple[str, SymbolFailure]]]
"""What each provider said about each symbol it did not serve, in the order asked."""


def record_failure(
    said: Said, symbols: Sequence[str], provider: str, kind: FailureKind, message: str
) -> None:
    """``provider`` failed every one of ``symbols`` for the same reason."""
    for symbol in symbols:
        said.setdefault(symbol, []).append((provider, SymbolFailure(symbol, kind, message)))


def _run_kind(errors: Sequence[ApiError]) -> FailureKind:
    """The kind a run refused by every provider reports (transient: worth a step retry)."""
    return combined_kind([e.kind for e in errors])


def _kinds_text(kinds: Iterable[FailureKind]) -> str:
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind.value] = counts.get(kind.value, 0) + 1
    return ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items()))


__all__ = [
    "ProvidersRefused",
    "QuoteProviderPlan",
    "Said",
    "combined_failure",
    "combined_kind",
    "fetch_quotes_in_order",
    "plan_quote_providers",
    "record_failure",
]
