"""Jobs of the celery benchmark (``benchmarks/run.py``, case ``celery_cpu_1_vs_2_workers``),
on the project's executor and IO manager (``defs/executors.py``, ``defs/resources.py``):

- ``cpu_metrics``: the daily_metrics computation (``quote_pipeline.analytics.metrics_arrays``,
  what the asset runs per ticker) over five years of deterministic synthetic prices, split
  into ``chunks`` mapped steps of ``tickers_per_chunk`` tickers each — CPU only, no database,
  no network — and a fan-in that checks the total. daily_metrics itself is one step (one
  transaction), so it cannot be spread over workers; this is its computation, mapped.
- ``trivial_steps``: ``chunks`` mapped steps that do nothing, to measure what a step costs
  on each executor.

    dagster job execute -m benchmarks.celery_cpu -j cpu_metrics -c run_config.yaml
"""

import time
from collections.abc import Iterator

import dagster as dg
import numpy as np

from quote_pipeline.analytics import METRIC_COLUMNS, metrics_arrays
from quote_pipeline.defs.executors import build_executor
from quote_pipeline.defs.resources import RunValueStoreFactory
from quote_pipeline.defs.settings import DeploymentSettings

SESSIONS = 5 * 252


class ChunksConfig(dg.Config):
    chunks: int = 8
    tickers_per_chunk: int = 800  # about 1 s of CPU here


@dg.op(out=dg.DynamicOut(tuple))
def plan_chunks(config: ChunksConfig) -> Iterator[dg.DynamicOutput[tuple[int, int]]]:
    for chunk in range(config.chunks):
        yield dg.DynamicOutput((chunk, config.tickers_per_chunk), mapping_key=f"chunk_{chunk:03d}")


def synthetic_history(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adjusted closes, highs and lows of one ticker: a deterministic random walk."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, SESSIONS)))
    spread = np.abs(rng.normal(0.0, 0.01, SESSIONS)) * close
    return close, close + spread, close - spread


@dg.op
def metrics_chunk(context: dg.OpExecutionContext, chunk: tuple[int, int]) -> float:
    """daily_metrics' computation for one chunk of tickers; a checksum of the results."""
    index, tickers = chunk
    started = time.process_time()
    total = 0.0
    for ticker in range(tickers):
        close, high, low = synthetic_history(index * 100_000 + ticker)
        metrics = metrics_arrays(close, high, low)
        total += sum(float(np.nansum(metrics[c])) for c in METRIC_COLUMNS)
    context.add_output_metadata({"cpu_seconds": round(time.process_time() - started, 3)})
    return total


@dg.op
def checksum(context: dg.OpExecutionContext, totals: list[float]) -> float:
    value = round(sum(totals), 3)
    context.add_output_metadata({"checksum": value, "chunks": len(totals)})
    return value


@dg.op
def nothing(chunk: tuple[int, int]) -> int:
    return chunk[0]


@dg.op
def count(context: dg.OpExecutionContext, values: list[int]) -> int:
    context.add_output_metadata({"steps": len(values)})
    return len(values)


@dg.job
def cpu_metrics() -> None:
    checksum(plan_chunks().map(metrics_chunk).collect())


@dg.job
def trivial_steps() -> None:
    count(plan_chunks().map(nothing).collect())


defs = dg.Definitions(
    jobs=[cpu_metrics, trivial_steps],
    resources={"io_manager": RunValueStoreFactory()},
    executor=build_executor(DeploymentSettings.from_env()),
)
