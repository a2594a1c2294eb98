"""The quote refresh: tickers → raw_quotes (mapped fetches) → stocks."""

import math
import os
import pickle
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from quote_pipeline.defs.metadata import failures_table, markdown_table
from quote_pipeline.defs.resources import DatabaseResource, FMPResource
from quote_pipeline.fmp import FMPAuthError, FMPError, QuoteFetchResult
from quote_pipeline.models import (
    TRANSIENT_FAILURE_KINDS,
    FailureKind,
    Quote,
    SymbolFailure,
)
from quote_pipeline.storage import list_tickers, write_quotes

GROUP = "quotes"
OWNERS = ["team:market-data"]

# The Celery task's settings (5 retries, 60 s apart), with exponential back-off and jitter
# so that a fleet of retries does not hit a recovering API at the same instant.
FETCH_RETRY_POLICY = dg.RetryPolicy(
    max_retries=5, delay=60, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
FETCH_RETRIES_ENV = "QUOTE_PIPELINE_FETCH_RETRIES"
FETCH_RETRY_DELAY_ENV = "QUOTE_PIPELINE_FETCH_RETRY_DELAY_SECONDS"


def fetch_retry_policy_from_env() -> dg.RetryPolicy:
    """:data:`FETCH_RETRY_POLICY`, with its count and base delay overridable by environment."""
    return dg.RetryPolicy(
        max_retries=int(os.environ.get(FETCH_RETRIES_ENV) or FETCH_RETRY_POLICY.max_retries),
        delay=float(os.environ.get(FETCH_RETRY_DELAY_ENV) or FETCH_RETRY_POLICY.delay or 0),
        backoff=FETCH_RETRY_POLICY.backoff,
        jitter=FETCH_RETRY_POLICY.jitter,
    )


STOCKS_COLUMNS = dg.TableSchema(
    columns=[
        dg.TableColumn("ticker", "varchar(15)", description="Exchange symbol, upper case."),
        dg.TableColumn("price", "numeric", description="Last price, exact decimal."),
        dg.TableColumn("volume", "bigint", description="Day volume (64-bit)."),
        dg.TableColumn("change", "numeric", description="Change since previous close."),
        dg.TableColumn("quoted_at", "timestamptz", description="Quote time (UTC)."),
        dg.TableColumn("updated_at", "timestamptz", description="When this row was written."),
    ]
)


@dataclass(frozen=True, slots=True)
class QuoteBatch:
    """One mapped step's share of the tickers."""

    symbols: tuple[str, ...]
    use_batch_endpoint: bool


class QuoteBatchingConfig(dg.Config):
    """How the tickers are split over mapped fetch steps."""

    target_steps: int = Field(
        default=20,
        ge=1,
        description="Aim for about this many mapped steps: each step costs ~15 ms in "
        "process, ~1 s in a subprocess, so never one per ticker.",
    )
    min_batch_size: int = Field(
        default=100, ge=1, description="Fewer tickers than this never get a step of their own."
    )


def batch_size_for(ticker_count: int, config: QuoteBatchingConfig) -> int:
    """Tickers per mapped step: about ``target_steps`` steps, none below the minimum size."""
    return max(config.min_batch_size, math.ceil(ticker_count / config.target_steps), 1)


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"sql"},
    metadata={
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn("ticker", "varchar(15)", description="Exchange symbol, upper case."),
                dg.TableColumn("added_at", "timestamptz", description="When it was added (UTC)."),
            ]
        ),
        "dagster/table_name": "tickers",
    },
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


def build_raw_quotes(retry_policy: dg.RetryPolicy = FETCH_RETRY_POLICY) -> dg.AssetsDefinition:
    """The ``raw_quotes`` graph asset; ``retry_policy`` governs each mapped fetch step."""

    @dg.op(out=dg.DynamicOut(QuoteBatch))
    def plan_quote_batches(
        context: dg.OpExecutionContext,
        config: QuoteBatchingConfig,
        fmp: FMPResource,
        tickers: list[str],
    ) -> Iterator[dg.DynamicOutput[QuoteBatch]]:
        """Probe the API once (key valid? batch endpoint in plan?) and split the tickers."""
        if not tickers:
            raise dg.Failure(
                "No tickers to fetch: add some with `quote-pipeline tickers add SYM…`.",
                allow_retries=False,
            )
        client = fmp.get_client()
        requests_before = client.requests_made
        try:
            if fmp.endpoint_mode == "single":
                client.check_access(tickers[0])
                use_batch = False
            else:
                use_batch = client.batch_endpoint_available(tickers[0])
        except FMPError as exc:  # invalid key, quota gone, API unreachable
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
        size = batch_size_for(len(tickers), config)
        steps = math.ceil(len(tickers) / size)
        context.log.info(
            f"{len(tickers)} tickers in {steps} mapped step(s) of up to {size}, "
            f"{'batch' if use_batch else 'single-symbol'} endpoint"
        )
        for index, start in enumerate(range(0, len(tickers), size)):
            yield dg.DynamicOutput(
                QuoteBatch(tuple(tickers[start : start + size]), use_batch),
                mapping_key=f"batch_{index:04d}",
            )

    @dg.op(retry_policy=retry_policy, pool="fmp_api")
    def fetch_quote_batch(
        context: dg.OpExecutionContext, fmp: FMPResource, batch: QuoteBatch
    ) -> dg.Output[QuoteFetchResult]:
        """Fetch one batch's quotes, concurrently over a pooled session.

        Symbols that failed transiently (5xx, timeouts, 429) make the step retry under its
        RetryPolicy. A retry asks only for those symbols (what earlier attempts got is kept
        in a checkpoint), so a symbol is reported failed only when every attempt failed.
        """
        checkpoint = FetchCheckpoint.for_step(context)
        settled = checkpoint.load() or QuoteFetchResult(
            used_batch_endpoint=batch.use_batch_endpoint
        )
        done = {q.symbol for q in settled.quotes} | {f.symbol for f in settled.failures}
        pending = [s for s in batch.symbols if s not in done]
        client = fmp.get_client()
        try:
            fetched = client.fetch_quotes(
                pending,
                use_batch_endpoint=batch.use_batch_endpoint,
                on_fallback=context.log.warning,
            )
        except FMPAuthError as exc:
            checkpoint.clear()
            raise dg.Failure(
                f"The FMP API refused the key: {exc}",
                metadata={"kind": exc.kind.value},
                allow_retries=False,
            ) from None
        transient = [f for f in fetched.failures if f.kind in TRANSIENT_FAILURE_KINDS]
        permanent = [f for f in fetched.failures if f.kind not in TRANSIENT_FAILURE_KINDS]
        retries_left = context.retry_number < retry_policy.max_retries
        if transient and retries_left and not fetched.quota_exhausted:
            checkpoint.save(
                QuoteFetchResult.combine(
                    [settled, QuoteFetchResult(fetched.quotes, permanent, fetched.requests_made)]
                )
            )
            kinds = dict(Counter(f.kind.value for f in transient))
            raise TransientFetchError(
                f"{len(transient)} of {len(batch.symbols)} symbols failed transiently "
                f"({kinds}); attempt {context.retry_number + 2} of "
                f"{retry_policy.max_retries + 1} will ask for those only"
            )
        checkpoint.clear()
        result = QuoteFetchResult.combine([settled, fetched])
        if pending:
            result.used_batch_endpoint = fetched.used_batch_endpoint
        # On the output event rather than a log line of its own: every event is a write to
        # the instance's event log, and this one would be repeated by every mapped step.
        return dg.Output(
            result,
            metadata={
                "quotes": len(result.quotes),
                "failures": len(result.failures),
                "api_requests": result.requests_made,
                "attempts": context.retry_number + 1,
            },
        )

    @dg.op
    def combine_quote_batches(results: list[QuoteFetchResult]) -> QuoteFetchResult:
        """Fan-in: one result for the whole run."""
        return QuoteFetchResult.combine(results)

    @dg.graph_asset(
        name="raw_quotes",
        group_name=GROUP,
        owners=OWNERS,
        kinds={"python", "api"},
    )
    def raw_quotes(tickers: list[str]) -> QuoteFetchResult:
        """Latest quotes from the FMP API: one row per ticker that got a quote, and a
        failure record (symbol, kind, message) for each that did not.

        The tickers are split into tens of batches, each a mapped step (pool `fmp_api`,
        RetryPolicy: 5 retries, exponential from 60 s, jittered) whose requests run
        concurrently over one pooled HTTP session.
        """
        batches = plan_quote_batches(tickers)
        return combine_quote_batches(batches.map(fetch_quote_batch).collect())

    return raw_quotes


class TransientFetchError(Exception):
    """Some symbols failed for reasons worth another try; the step's RetryPolicy retries it."""


@dataclass(frozen=True)
class FetchCheckpoint:
    """What earlier attempts of a mapped fetch step settled, kept between its retries.

    A file under the instance's storage directory, so that it survives a retry in another
    process too; removed when the step finishes.
    """

    path: Path

    @classmethod
    def for_step(cls, context: dg.OpExecutionContext) -> "FetchCheckpoint":
        root = Path(context.instance.storage_directory()) / "quote_pipeline" / "fetch_checkpoints"
        step = f"{context.op_handle}[{context.get_mapping_key()}]"
        return cls(root / context.run_id / (re.sub(r"[^A-Za-z0-9_.-]", "_", step) + ".pickle"))

    def load(self) -> QuoteFetchResult | None:
        if not self.path.exists():
            return None
        with self.path.open("rb") as handle:
            return pickle.load(handle)

    def save(self, result: QuoteFetchResult) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("wb") as handle:
            pickle.dump(result, handle)
        temporary.replace(self.path)  # atomic: a crash never leaves half a checkpoint

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


raw_quotes = build_raw_quotes()


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
    metadata={"dagster/column_schema": STOCKS_COLUMNS, "dagster/table_name": "stocks"},
    check_specs=[COVERAGE_CHECK, QUOTA_CHECK],
)
def stocks(
    context: dg.AssetExecutionContext,
    config: StocksConfig,
    database: DatabaseResource,
    raw_quotes: QuoteFetchResult,
) -> dg.MaterializeResult:
    """The `stocks` table: the latest price, volume and change of every tracked ticker.

    Rows are validated (price > 0, volume ≥ 0), upserted in one bulk statement in one
    transaction (an older quote never replaces a newer one) and appended to
    `quote_snapshots` (one row per ticker and quote time, however often this re-runs).
    Whatever failed elsewhere, every ticker that got a quote is written first; the blocking
    checks then fail the run if too many got none or the API quota ran out.
    """
    valid, rejected = validate_quotes(raw_quotes.quotes)
    failures = [*raw_quotes.failures, *rejected]
    written_at = datetime.now(UTC)
    summary = write_quotes(database.get_engine(), valid, written_at=written_at)
    context.log.info(
        f"wrote {summary.stocks_upserted} stocks rows, {summary.snapshots_inserted} snapshots; "
        f"{len(failures)} tickers without a quote"
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
