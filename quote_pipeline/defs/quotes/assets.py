"""The quote refresh: tickers → raw_quotes (mapped fetches) → stocks."""

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from quote_pipeline.defs.metadata import OWNERS, failures_table, markdown_table, table_metadata
from quote_pipeline.defs.resources import DatabaseResource, FMPResource
from quote_pipeline.defs.retries import pending_summary
from quote_pipeline.fmp import FMPError, QuoteFetchResult, fetch_quotes, probe
from quote_pipeline.models import TRANSIENT_FAILURE_KINDS, FailureKind, Quote, SymbolFailure
from quote_pipeline.storage import list_tickers, write_quotes
from quote_pipeline.storage import schema as tables
from quote_pipeline.storage.fetch_state import (
    PendingSymbol,
    clear_symbols,
    pending_symbols,
    record_failed_symbols,
)

GROUP = "quotes"
DATASET = "quotes"  # the name of this dataset's rows in symbol_retries


@dataclass(frozen=True, slots=True)
class QuoteBatch:
    """One mapped step's share of the tickers."""

    symbols: tuple[str, ...]
    use_batch_endpoint: bool


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

    @dg.op(out=dg.DynamicOut(QuoteBatch))
    def plan_quote_batches(
        context: dg.OpExecutionContext,
        config: QuoteBatchingConfig,
        fmp: FMPResource,
        database: DatabaseResource,
        tickers: list[str],
    ) -> Iterator[dg.DynamicOutput[QuoteBatch]]:
        """Probe the API once (key valid? quota left? batch endpoint in the plan?) and split
        the tickers into batches, one mapped step each."""
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
        fmp.refuse_if_quota_held()
        client = fmp.client
        requests_before = client.requests_made
        stragglers = {p.ticker for p in pending_symbols(database.get_engine(), DATASET)}
        try:
            use_batch = probe(
                client, symbols, try_batch=fmp.endpoint_mode == "auto", ask_last=stragglers
            )
        except FMPError as exc:  # invalid key, quota gone, API unreachable
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
                    metadata={"pending_retry": dg.MetadataValue.md(pending_table(pending))},
                    allow_retries=False,
                ) from None
            raise dg.Failure(
                f"The FMP API refused the run before any fan-out: {exc}",
                metadata={
                    "kind": exc.kind.value,
                    "requests_made": client.requests_made - requests_before,
                },
                allow_retries=False,
            ) from None
        if fmp.endpoint_mode == "auto" and not use_batch:
            context.log.info(
                "The plan has no batch endpoint (402): using single-symbol requests this run."
            )
        size = batch_size_for(len(symbols), config)
        steps = math.ceil(len(symbols) / size)
        context.log.info(
            f"{len(symbols)} tickers in {steps} mapped step(s) of up to {size}, "
            f"{'batch' if use_batch else 'single-symbol'} endpoint"
        )
        for index, start in enumerate(range(0, len(symbols), size)):
            yield dg.DynamicOutput(
                QuoteBatch(tuple(symbols[start : start + size]), use_batch),
                mapping_key=f"batch_{index:04d}",
            )

    @dg.op(retry_policy=retry_policy, pool="fmp_api")
    def fetch_quote_batch(
        context: dg.OpExecutionContext, fmp: FMPResource, batch: QuoteBatch
    ) -> dg.Output[QuoteFetchResult]:
        """Fetch one batch's quotes through the fetch engine: concurrent requests, then the
        run's retry budget for symbols that failed transiently. Symbols still failing after
        it are returned as failures (the retry sensor asks them again), never retried here:
        a straggler must not hold the other symbols' rows."""
        try:
            result = fetch_quotes(
                fmp.engine,
                fmp.client,
                batch.symbols,
                use_batch_endpoint=batch.use_batch_endpoint,
                on_fallback=context.log.warning,
            )
        except FMPError as exc:  # what no symbol survives: a refused key, an endpoint
            raise dg.Failure(
                f"The FMP API refused the run: {exc}",
                metadata={"kind": exc.kind.value},
                allow_retries=False,
            ) from None
        transient = [f for f in result.failures if f.kind in TRANSIENT_FAILURE_KINDS]
        if (
            not result.quotes
            and len(transient) == len(batch.symbols) >= OUTAGE_MIN_SYMBOLS
            and not result.quota_exhausted
        ):
            kinds = dict(Counter(f.kind.value for f in transient))
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
                "failures": len(result.failures),
                "still_failing_transiently": len(transient),
                "api_requests": result.requests_made,
                "passes": result.passes,
            },
        )

    @dg.op
    def combine_quote_batches(results: list[QuoteFetchResult]) -> dg.Output[QuoteFetchResult]:
        """Fan-in: one result for the whole run, with its counts on the asset's page."""
        combined = QuoteFetchResult.combine(results)
        by_kind = dict(Counter(f.kind.value for f in combined.failures))
        return dg.Output(
            combined,
            metadata={
                "dagster/row_count": len(combined.quotes),
                "quotes": len(combined.quotes),
                "failures": len(combined.failures),
                "failures_by_kind": dg.MetadataValue.json(by_kind),
                "api_requests": combined.requests_made,
                "endpoint": "batch" if combined.used_batch_endpoint else "single-symbol",
                "quota_exhausted": combined.quota_exhausted,
            },
        )

    @dg.graph_asset(
        name="raw_quotes",
        group_name=GROUP,
        owners=OWNERS,
        kinds={"python", "api"},
    )
    def raw_quotes(tickers: list[str]) -> QuoteFetchResult:
        """Latest quotes from the FMP API: one row per ticker that got a quote, and a
        failure record (symbol, kind, message) for each that did not.

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


def quotes_preview(quotes: Sequence[Quote], limit: int = 10) -> str:
    """A markdown table of the first quotes."""
    return markdown_table(
        [
            {
                "ticker": q.symbol,
                "price": str(q.price),
                "volume": q.volume,
                "change": "" if q.change is None else str(q.change),
                "quoted_at": q.quoted_at.isoformat(),
            }
            for q in quotes[:limit]
        ]
    )


def quote_failures_table(failures: Sequence[SymbolFailure]) -> str:
    return failures_table(failures, empty="_every ticker got a quote_")


def pending_table(pending: Sequence[PendingSymbol]) -> str:
    """The symbols left to the retry sensor: when each is asked next, or that it was given up."""
    return markdown_table([p.as_row() for p in pending], empty="_nothing pending_")


class StocksConfig(dg.Config):
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
    asset="stocks",
    blocking=True,
    description="Share of the requested tickers that got a quote in this run is at least "
    "1 - max_failed_share (95 % by default). Fails the run after the good rows are written.",
)
QUOTA_CHECK = dg.AssetCheckSpec(
    "api_quota_not_exhausted",
    asset="stocks",
    blocking=True,
    description="The API's quota lasted the whole run (no unbroken 429 'Limit Reach' streak, "
    "no bandwidth cap). Fails the run after what was fetched is written.",
)


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"sql", "table"},
    metadata=table_metadata(tables.stocks),
    check_specs=[COVERAGE_CHECK, QUOTA_CHECK],
)
def stocks(
    context: dg.AssetExecutionContext,
    config: StocksConfig,
    database: DatabaseResource,
    fmp: FMPResource,
    raw_quotes: QuoteFetchResult,
) -> dg.MaterializeResult:
    """The `stocks` table: the latest price, volume and change of every tracked ticker.

    Rows are validated (price > 0, volume ≥ 0), upserted in one bulk statement in one
    transaction (an older quote never replaces a newer one) and appended to
    `quote_snapshots` (one row per ticker and quote time, however often this re-runs).
    Whatever failed elsewhere, every ticker that got a quote is written first. Tickers still
    failing transiently are recorded in `symbol_retries` for the retry sensor, which asks
    them again alone with back-off; the blocking checks then fail the run if too many got
    none or the API quota ran out.
    """
    valid, rejected = validate_quotes(raw_quotes.quotes)
    failures = [*raw_quotes.failures, *rejected]
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
    context.log.info(
        f"wrote {summary.stocks_upserted} stocks rows, {summary.snapshots_inserted} snapshots; "
        f"{len(failures)} tickers without a quote, {len(pending)} left to the retry sensor"
    )
    failed_symbols = {f.symbol for f in failures}
    requested = len(valid) + len(failed_symbols)
    failed_share = len(failed_symbols) / requested if requested else 0.0
    by_kind = dict(Counter(f.kind.value for f in failures))
    quota_failures = by_kind.get(FailureKind.QUOTA_EXHAUSTED.value, 0)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(valid),
            "rows_written": summary.stocks_upserted,
            "stale_quotes_skipped": summary.stale_skipped,
            "snapshots_inserted": summary.snapshots_inserted,
            "tickers_requested": requested,
            "tickers_without_quote": len(failed_symbols),
            "failures_by_kind": by_kind,
            "tickers_without_quote_detail": dg.MetadataValue.md(quote_failures_table(failures)),
            "pending_retry": len(pending),
            "pending_retry_detail": dg.MetadataValue.md(pending_table(pending)),
            "preview": dg.MetadataValue.md(quotes_preview(valid)),
            "api_requests": raw_quotes.requests_made,
            "endpoint": "batch" if raw_quotes.used_batch_endpoint else "single-symbol",
            "written_at": dg.MetadataValue.timestamp(written_at),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=COVERAGE_CHECK.name,
                passed=failed_share <= config.max_failed_share,
                severity=dg.AssetCheckSeverity.ERROR,
                description=(
                    f"{len(failed_symbols)} of {requested} tickers got no quote "
                    f"({failed_share:.1%}; allowed {config.max_failed_share:.1%})"
                ),
                metadata={
                    "coverage": 1 - failed_share,
                    "failed_share": failed_share,
                    "max_failed_share": config.max_failed_share,
                    "failures_by_kind": by_kind,
                    "pending_retry": len(pending),
                },
            ),
            dg.AssetCheckResult(
                check_name=QUOTA_CHECK.name,
                passed=not raw_quotes.quota_exhausted,
                severity=dg.AssetCheckSeverity.ERROR,
                description=(
                    f"FMP quota exhausted: {quota_failures} tickers were not requested; "
                    f"{summary.stocks_upserted} rows fetched before it ran out were written"
                    if raw_quotes.quota_exhausted
                    else "the API answered without exhausting the quota"
                ),
                metadata={"tickers_not_requested": quota_failures},
            ),
        ],
    )
