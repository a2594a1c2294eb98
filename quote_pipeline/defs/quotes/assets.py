"""The quote refresh: tickers → raw_quotes (mapped fetches) → stocks."""

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from pydantic import Field

from quote_pipeline.api_errors import ApiError
from quote_pipeline.celery_config import fmp_queue_tags
from quote_pipeline.defs.fetching import api_refusal
from quote_pipeline.defs.metadata import (
    OWNERS,
    counts_text,
    failures_summary,
    failures_value,
    pending_value,
    table_metadata,
    table_value,
    utc_minute,
)
from quote_pipeline.defs.providers import (
    describe_plans,
    provider_for,
    provider_split,
    quote_provider_chain,
    refused_by,
    requests_made,
)
from quote_pipeline.defs.resources import (
    DatabaseResource,
    FMPResource,
    MassiveResource,
    ProviderChoice,
)
from quote_pipeline.defs.retries import pending_summary
from quote_pipeline.market_calendar import NEW_YORK_TZ
from quote_pipeline.models import (
    TRANSIENT_FAILURE_KINDS,
    FailureKind,
    Quote,
    SymbolFailure,
    restore_fields,
)
from quote_pipeline.providers.base import QuoteFetchResult, QuotePlan
from quote_pipeline.providers.fallback import fetch_quotes_in_order, plan_quote_providers
from quote_pipeline.storage import count_stocks, list_tickers, write_quotes
from quote_pipeline.storage import schema as tables
from quote_pipeline.storage.fetch_state import (
    clear_symbols,
    pending_symbols,
    record_failed_symbols,
)
from quote_pipeline.storage.repository import stocks_by_source

GROUP = "quotes"
DATASET = "quotes"  # the name of this dataset's rows in symbol_retries


@dataclass(frozen=True, slots=True)
class QuoteBatch:
    """One mapped step's share of the tickers, and the providers to ask for them, in order."""

    symbols: tuple[str, ...]
    plans: tuple[QuotePlan, ...]
    probe_requests: int = 0
    """The plan's probe requests, carried by the first batch so the run's total is whole."""

    def __setstate__(self, state: Sequence[Any]) -> None:
        # Pickled before providers (re-executing an older run): (symbols, use_batch, probe).
        symbols, plans, *rest = state
        if isinstance(plans, bool):
            plans = (QuotePlan("fmp", multi_symbol=plans),)
        restore_fields(self, (symbols, plans, *rest))


class QuoteBatchingConfig(dg.Config):
    """Which tickers to fetch, and how they are split over mapped fetch steps."""

    target_steps: int = Field(
        default=4,
        ge=1,
        description="Aim for about this many mapped steps. The concurrency is the HTTP "
        "inside each step; every step costs events, an output to store and a slow tail, "
        "so a few large batches beat many small ones (never one per ticker).",
    )
    min_batch_size: int = Field(
        default=100, ge=1, description="Fewer tickers than this never get a step of their own."
    )
    only_symbols: list[str] | None = Field(
        default=None,
        description="Fetch only these of the tracked tickers (the retry sensor sets it to "
        "the symbols still pending); unset: every tracked ticker.",
    )


def batch_size_for(ticker_count: int, config: QuoteBatchingConfig) -> int:
    """Tickers per mapped step: about ``target_steps`` steps, none below the minimum size."""
    return max(config.min_batch_size, math.ceil(ticker_count / config.target_steps), 1)


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"sql"},
    metadata=table_metadata(tables.tickers),
)
def tickers(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.Output[list[str]]:
    """The tracked universe: every symbol in the `tickers` table.

    Manage it with `quote-pipeline tickers add|remove|list|import`.
    """
    symbols = list_tickers(database.get_engine())
    if not symbols:
        context.log.warning("no tickers are tracked: add some with `quote-pipeline tickers add`")
    return dg.Output(
        symbols,
        metadata={
            "count": len(symbols),
            "dagster/row_count": len(symbols),
            "database": database.describe(),
            "sample": ", ".join(symbols[:20]) + (" …" if len(symbols) > 20 else ""),
        },
    )


class ApiUnreachableError(Exception):
    """Every symbol of a fetch step failed transiently: the API, not a symbol, is the
    problem. The step's RetryPolicy retries the whole step."""


# At least this many symbols must all have failed before a step counts as an outage: a retry
# run of two stragglers failing again is not one.
OUTAGE_MIN_SYMBOLS = 10


def build_raw_quotes(retry_policy: dg.RetryPolicy) -> dg.AssetsDefinition:
    """The ``raw_quotes`` graph asset; ``retry_policy`` retries a whole mapped fetch step."""

    @dg.op(out=dg.DynamicOut(QuoteBatch), tags=fmp_queue_tags())  # probes the API
    def plan_quote_batches(
        context: dg.OpExecutionContext,
        config: QuoteBatchingConfig,
        fmp: FMPResource,
        massive: MassiveResource,
        providers: ProviderChoice,
        database: DatabaseResource,
        tickers: list[str],
    ) -> Iterator[dg.DynamicOutput[QuoteBatch]]:
        """Probe the quote providers in order until one can serve the run (key valid? quota
        left? endpoint in the plan?), keep the others as fallbacks, and split the tickers
        into batches, one mapped step each."""
        symbols = tickers
        if config.only_symbols is not None:
            wanted = {s.upper() for s in config.only_symbols}
            symbols = [s for s in tickers if s in wanted]
        if not symbols:
            raise dg.Failure(
                "No tickers to fetch: add some with `quote-pipeline tickers add SYM…`."
                if config.only_symbols is None
                else "None of only_symbols is tracked any more: nothing to fetch.",
                allow_retries=False,
            )
        chain = quote_provider_chain(providers, fmp, massive)
        requests_before = requests_made(chain)
        stragglers = {p.ticker for p in pending_symbols(database.get_engine(), DATASET)}
        try:
            plan = plan_quote_providers(chain, symbols, ask_last=stragglers)
        except ApiError as exc:  # invalid key, quota gone, API unreachable: every provider
            if config.only_symbols is not None and exc.kind in TRANSIENT_FAILURE_KINDS:
                # A retry run whose symbols all still fail: that is their failure, not the
                # API's. Record it, so their back-off moves on (and the sensor's run key).
                pending = record_failed_symbols(
                    database.get_engine(),
                    DATASET,
                    [SymbolFailure(s, exc.kind, str(exc)) for s in symbols],
                    {},
                    now=datetime.now(UTC),
                    backoff=fmp.retry_backoff(),
                )
                raise dg.Failure(
                    f"{', '.join(symbols)} still failing ({exc}); "
                    f"{pending_summary(pending, datetime.now(UTC))}",
                    metadata={"pending_tickers": pending_value(pending)},
                    allow_retries=False,
                ) from None
            raise api_refusal(
                exc,
                f"{refused_by(chain)} refused the run before any fan-out",
                api_requests=requests_made(chain) - requests_before,
            ) from None
        for note in plan.notes():
            context.log.warning(note)
        primary = plan.plans[0]
        if primary.provider == "fmp" and fmp.endpoint_mode == "auto" and not primary.multi_symbol:
            context.log.info(
                "The plan has no batch endpoint (402): using single-symbol requests this run."
            )
        size = batch_size_for(len(symbols), config)
        steps = math.ceil(len(symbols) / size)
        context.log.info(
            f"{len(symbols)} tickers in {steps} mapped step(s) of up to {size}, from "
            f"{describe_plans(plan.plans)}"
        )
        probe_requests = requests_made(chain) - requests_before
        for index, start in enumerate(range(0, len(symbols), size)):
            yield dg.DynamicOutput(
                QuoteBatch(
                    tuple(symbols[start : start + size]),
                    tuple(plan.plans),
                    probe_requests=probe_requests if index == 0 else 0,
                ),
                mapping_key=f"batch_{index:04d}",
            )

    @dg.op(retry_policy=retry_policy, pool="fmp_api", tags=fmp_queue_tags())
    def fetch_quote_batch(
        context: dg.OpExecutionContext,
        fmp: FMPResource,
        massive: MassiveResource,
        batch: QuoteBatch,
    ) -> dg.Output[QuoteFetchResult]:
        """Fetch one batch's quotes through the fetch engine: concurrent requests, then the
        run's retry budget for symbols that failed transiently; what the first provider
        could not serve is asked of the next. Symbols still failing after that are returned
        as failures (the retry sensor asks them again), never retried here: a straggler
        must not hold the other symbols' rows."""
        chain = [provider_for(plan.provider, fmp, massive) for plan in batch.plans]
        try:
            result = fetch_quotes_in_order(
                list(zip(chain, batch.plans, strict=True)),
                batch.symbols,
                log=context.log.warning,
            )
            result.requests_made += batch.probe_requests
        except ApiError as exc:  # what no symbol survives anywhere: a refused key, an endpoint
            raise api_refusal(exc, f"{refused_by(chain)} refused the run") from None
        for note in result.fallbacks:
            context.log.warning(note)
        transient = [f for f in result.failures if f.kind in TRANSIENT_FAILURE_KINDS]
        if (
            not result.quotes
            and len(transient) == len(batch.symbols) >= OUTAGE_MIN_SYMBOLS
            and not result.quota_exhausted
        ):
            kinds = counts_text(Counter(f.kind.value for f in transient))
            raise ApiUnreachableError(
                f"all {len(batch.symbols)} symbols of this step failed transiently ({kinds}): "
                f"the API looks unreachable; e.g. {transient[0].message}"
            )
        # On the output event rather than a log line of its own: every event is a write to
        # the instance's event log, and this one would be repeated by every mapped step.
        return dg.Output(
            result,
            metadata={
                "quotes": len(result.quotes),
                **provider_split(result),
                "failures": len(result.failures),
                "still_failing_transiently": len(transient),
                "api_requests": result.requests_made,
                "passes": result.passes,
            },
        )

    @dg.op
    def combine_quote_batches(
        context: dg.OpExecutionContext, results: list[QuoteFetchResult]
    ) -> dg.Output[QuoteFetchResult]:
        """Fan-in: one result for the whole run, with what each batch did on the asset's page."""
        combined = QuoteFetchResult.combine(results)
        summary = fetch_summary(combined)
        context.log.info(summary)
        return dg.Output(
            combined,
            metadata={
                "summary": summary,
                **(
                    {"failed_tickers": failures_value(combined.failures)}
                    if combined.failures
                    else {}
                ),
                "dagster/row_count": len(combined.quotes),
                **provider_split(combined),
                "failures": len(combined.failures),
                "failures_by_kind": counts_text(Counter(f.kind.value for f in combined.failures)),
                "api_requests": combined.requests_made,
                "endpoint": "batch" if combined.used_batch_endpoint else "single-symbol",
                **({"fallbacks": "\n".join(combined.fallbacks)} if combined.fallbacks else {}),
                "quota_exhausted": combined.quota_exhausted,
                "batches": table_value(
                    [
                        {
                            "batch": index,
                            "tickers": len(r.quotes) + len(r.failures),
                            "quotes": len(r.quotes),
                            "served_by": counts_text(Counter(r.served_by())),
                            "failures": len(r.failures),
                            "requests": r.requests_made,  # the first with the probe's
                            "passes": r.passes,
                        }
                        for index, r in enumerate(results)
                    ]
                ),
            },
        )

    @dg.graph_asset(
        name="raw_quotes",
        group_name=GROUP,
        owners=OWNERS,
        kinds={"python", "api"},
    )
    def raw_quotes(tickers: list[str]) -> QuoteFetchResult:
        """Latest quotes from the configured providers (FMP by default; Massive, formerly
        Polygon.io, too, primary first): one row per ticker that got a quote, with the
        provider that served it, and a failure record (symbol, kind, what each provider
        said) for each that no provider could serve.

        The tickers are split into a few large batches, each a mapped step (pool `fmp_api`)
        whose requests run concurrently through the fetch engine. A symbol that keeps
        failing transiently costs at most the run's retry budget (one more pass, 30 s
        later, by default) and is then left to the retry sensor; the step's RetryPolicy is
        only for a whole step failing (the API unreachable, the process killed).
        """
        batches = plan_quote_batches(tickers)
        return combine_quote_batches(batches.map(fetch_quote_batch).collect())

    return raw_quotes


def validate_quotes(quotes: Sequence[Quote]) -> tuple[list[Quote], list[SymbolFailure]]:
    """Keep quotes with a positive price, a non-negative volume and an aware time, the
    latest per ticker. The client already refuses such rows; this guards the table against
    a raw_quotes value stored by older code or written by hand."""
    latest: dict[str, Quote] = {}
    rejected: list[SymbolFailure] = []
    for quote in quotes:
        problem = (
            f"price {quote.price} is not positive"
            if not quote.price > 0
            else f"volume {quote.volume} is negative"
            if quote.volume < 0
            else "quoted_at has no time zone"
            if quote.quoted_at.tzinfo is None
            else None
        )
        if problem:
            rejected.append(SymbolFailure(quote.symbol, FailureKind.BAD_RESPONSE, problem))
        elif quote.symbol not in latest or latest[quote.symbol].quoted_at < quote.quoted_at:
            latest[quote.symbol] = quote
    return sorted(latest.values(), key=lambda q: q.symbol), rejected


def fetch_summary(result: QuoteFetchResult) -> str:
    """One line: what a fetch got, what it cost, and who failed."""
    total = len(result.quotes) + len(result.failures)
    line = (
        f"{len(result.quotes)} of {total} tickers got a quote with {result.requests_made} "
        f"requests ({'batch' if result.used_batch_endpoint else 'single-symbol'} endpoint, "
        f"{result.passes} pass{'es' if result.passes != 1 else ''})"
    )
    served = result.served_by()
    if len(served) > 1 or (served and next(iter(served)) != "fmp"):
        line += f"; served by {counts_text(Counter(served))}"
    if result.failures:
        line += f"; no quote: {failures_summary(result.failures)}"
    if result.quota_exhausted:
        line += "; the API quota ran out"
    return line


def movers_value(quotes: Sequence[Quote], limit: int = 10) -> dg.TableMetadataValue:
    """The ``limit`` quotes that moved most since the previous close (by |change %|).

    The percentage is a float for display; prices and changes stay exact decimal text."""

    def change_pct(quote: Quote) -> float | None:
        if quote.change is None or quote.price == quote.change:
            return None
        return float(quote.change / (quote.price - quote.change) * 100)

    ranked = sorted(quotes, key=lambda q: abs(change_pct(q) or 0.0), reverse=True)
    return table_value(
        [
            {
                "ticker": q.symbol,
                "price": q.price,
                "change": "" if q.change is None else q.change,
                "change_pct": None if (pct := change_pct(q)) is None else round(pct, 2),
                "volume": q.volume,
                "quoted_at": utc_minute(q.quoted_at),
            }
            for q in ranked[:limit]
        ],
        descriptions={"change_pct": "Change since the previous close, in % (float, display)"},
    )


def refresh_outcome(raw_quotes: QuoteFetchResult) -> tuple[list[Quote], list[SymbolFailure]]:
    """The quotes a refresh writes and every ticker it could not: failed fetches and quotes
    refused by :func:`validate_quotes`. `stocks` and its checks read the run the same way."""
    valid, rejected = validate_quotes(raw_quotes.quotes)
    return valid, [*raw_quotes.failures, *rejected]


STOCKS = dg.AssetKey("stocks")
QUOTE_SNAPSHOTS = dg.AssetKey("quote_snapshots")


# Expected every hour of the trading day: by hh:30 New York, a refresh since (hh-1):30, from
# 10:30 to 16:30 on weekdays (the hourly schedule runs at minute 1). A cron cannot name NYSE
# holidays or early closes: the calendar-aware `freshness` check stays the authority there,
# and this policy reads "stale" on a holiday afternoon.
STOCKS_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="30 10-16 * * 1-5", lower_bound_delta=timedelta(hours=1), timezone=NEW_YORK_TZ
)


def _table_specs() -> list[dg.AssetSpec]:
    # Built here, not at module level: the defs autoloader would load a module-level
    # AssetSpec as an asset of its own, beside the multi-asset that materializes it.
    common: dict[str, Any] = {
        "deps": ["raw_quotes"],
        "group_name": GROUP,
        "owners": OWNERS,
        "kinds": {"sql", "table"},
    }
    return [
        dg.AssetSpec(
            STOCKS,
            metadata=table_metadata(tables.stocks),
            freshness_policy=STOCKS_FRESHNESS,
            description=(
                "The latest price, volume and change of every tracked ticker, one row per "
                "ticker. Rows are validated (price > 0, volume ≥ 0) and upserted in one bulk "
                "statement, in one transaction with quote_snapshots; an older quote never "
                "replaces a newer one. Every ticker that got a quote is written, whatever "
                "failed elsewhere."
            ),
            **common,
        ),
        dg.AssetSpec(
            QUOTE_SNAPSHOTS,
            metadata=table_metadata(tables.quote_snapshots),
            description=(
                "Every quote the refreshes got: one row per ticker and quote time, appended "
                "in the same transaction as stocks (a re-run adds no duplicate). Query it for "
                "price paths at the refresh cadence."
            ),
            **common,
        ),
    ]


@dg.multi_asset(specs=_table_specs(), ins={"raw_quotes": dg.AssetIn()})
def stocks(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    fmp: FMPResource,
    raw_quotes: QuoteFetchResult,
) -> Iterator[dg.MaterializeResult]:
    """Write the run's quotes to `stocks` and `quote_snapshots` in one transaction, and
    record tickers still failing transiently in `symbol_retries` for the retry sensor."""
    valid, failures = refresh_outcome(raw_quotes)
    written_at = datetime.now(UTC)
    # What got an answer (a quote, or a permanent refusal the coverage check reports) is
    # no longer pending; what still fails transiently is, until it succeeds or is given up.
    # A symbol not asked (the quota ran out) keeps its state.
    transient = [f for f in failures if f.kind in TRANSIENT_FAILURE_KINDS]
    unsettled = {f.symbol for f in transient} | {
        f.symbol for f in failures if f.kind == FailureKind.QUOTA_EXHAUSTED
    }
    answered = {q.symbol for q in valid} | {f.symbol for f in failures}
    # The rows and the retry bookkeeping in one transaction: no crash can leave a symbol
    # written and still pending, or pending and never recorded.
    with database.get_engine().begin() as conn:
        summary = write_quotes(conn, valid, written_at=written_at)
        clear_symbols(conn, DATASET, answered - unsettled)
        pending = record_failed_symbols(
            conn,
            DATASET,
            transient,
            raw_quotes.attempts,
            now=written_at,
            backoff=fmp.retry_backoff(),
        )
        stored_rows = count_stocks(conn)
        stored_by_source = stocks_by_source(conn)
    written = (
        f"wrote {summary.stocks_upserted} stocks rows and {summary.snapshots_inserted} snapshots"
    )
    if failures:
        written += f"; no quote for {failures_summary(failures)}"
    if pending:
        written += f"; {len(pending)} left to the retry sensor"
    if summary.stale_skipped:
        written += f"; {summary.stale_skipped} quotes older than the stored ones skipped"
    context.log.info(written)
    # What an operator looks for first: who failed, who is pending, who moved.
    attention: dict[str, Any] = {}
    if failures:
        attention["failed_tickers"] = failures_value(failures)
    if pending:
        attention["pending_tickers"] = pending_value(pending)
    yield dg.MaterializeResult(
        asset_key=STOCKS,
        metadata={
            **attention,
            "biggest_movers": movers_value(valid),
            "dagster/row_count": stored_rows,
            "rows_written": summary.stocks_upserted,
            # Which provider served this run's quotes, and the stored rows' split.
            **provider_split(raw_quotes),
            "stored_rows_by_source": counts_text(stored_by_source),
            **({"fallbacks": "\n".join(raw_quotes.fallbacks)} if raw_quotes.fallbacks else {}),
            "tickers_requested": len(valid) + len({f.symbol for f in failures}),
            "tickers_without_quote": len({f.symbol for f in failures}),
            "pending_retry": len(pending),
        },
    )
    yield dg.MaterializeResult(
        asset_key=QUOTE_SNAPSHOTS,
        metadata={
            "rows_inserted": summary.snapshots_inserted,
            "latest_quote": (
                utc_minute(max(q.quoted_at for q in valid)) if valid else "no quote this run"
            ),
        },
    )


class RefreshOutcomeConfig(dg.Config):
    """When a refresh counts as failed."""

    max_failed_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="The run fails (after writing the good rows) when more than this share "
        "of the requested tickers got no quote.",
    )


COVERAGE_CHECK = dg.AssetCheckSpec(
    "coverage",
    asset=STOCKS,
    additional_deps=["raw_quotes"],
    blocking=True,
    description="Enough of the requested tickers got a quote in the latest refresh (all but "
    "max_failed_share of them, 5 % by default, in the config of the stocks_refresh_outcome "
    "step); names the ones that did not. A failure fails the run, after the good rows are "
    "written.",
)
QUOTA_CHECK = dg.AssetCheckSpec(
    "api_quota_not_exhausted",
    asset=STOCKS,
    additional_deps=["raw_quotes"],
    blocking=True,
    description="The API's quota lasted the whole refresh (no unbroken 429 'Limit Reach' "
    "streak, no bandwidth cap). A failure fails the run, after what was fetched is written.",
)


@dg.multi_asset_check(
    specs=[COVERAGE_CHECK, QUOTA_CHECK],
    ins={"raw_quotes": dg.AssetIn()},
    name="stocks_refresh_outcome",
)
def stocks_refresh_outcome(
    config: RefreshOutcomeConfig, raw_quotes: QuoteFetchResult
) -> Iterator[dg.AssetCheckResult]:
    """Did the latest refresh cover enough tickers, and did the quota last? Both results are
    recorded; then, if either failed, the run fails with the reason in words (which tickers,
    how many), not a stack trace. Runs after `stocks`, so the good rows are already written
    and the table's other checks run whatever this one says."""
    valid, failures = refresh_outcome(raw_quotes)
    failed_symbols = {f.symbol for f in failures}
    requested = len(valid) + len(failed_symbols)
    failed_share = len(failed_symbols) / requested if requested else 0.0
    covered = failed_share <= config.max_failed_share
    if not failures:
        coverage_text = f"all {requested} tickers got a quote"
    else:
        comparison = (
            f"within {config.max_failed_share:.0%}"
            if covered
            else f"> {config.max_failed_share:.0%}"
        )
        coverage_text = (
            f"{len(failed_symbols)} of {requested} tickers got no quote "
            f"({failed_share:.1%} {comparison}): {failures_summary(failures)}"
        )
    not_requested = sum(1 for f in failures if f.kind == FailureKind.QUOTA_EXHAUSTED)
    quota_text = (
        f"the API quota ran out: {not_requested} tickers were not requested of any provider; "
        "the quotes fetched before it were written"
        if raw_quotes.quota_exhausted
        else "the API answered without exhausting the quota"
    )
    yield dg.AssetCheckResult(
        check_name=COVERAGE_CHECK.name,
        asset_key=STOCKS,
        passed=covered,
        severity=dg.AssetCheckSeverity.ERROR,
        description=coverage_text,
        metadata={
            "coverage": round(1 - failed_share, 4),
            "tickers_without_quote": len(failed_symbols),
            **({"failed_tickers": failures_value(failures)} if failures else {}),
        },
    )
    yield dg.AssetCheckResult(
        check_name=QUOTA_CHECK.name,
        asset_key=STOCKS,
        passed=not raw_quotes.quota_exhausted,
        severity=dg.AssetCheckSeverity.ERROR,
        description=quota_text,
    )
    reasons = [
        *([] if covered else [coverage_text]),
        *([quota_text] if raw_quotes.quota_exhausted else []),
    ]
    if reasons:
        raise dg.Failure(
            description="; ".join(reasons)[:1].upper() + "; ".join(reasons)[1:],
            allow_retries=False,
        )
