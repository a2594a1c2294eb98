"""Each job's run policy: the assets it owns and the tags every run of them must carry.

The tags are what the instance acts on: ``quote_pipeline/job`` (dagster.yaml's run queue
allows one run per value at a time), ``dagster/max_runtime`` (run monitoring fails a run
still going after it) and the code version (which code a run came from).

Plain Python, no Dagster, so that both sides read the same table: the jobs build their tags
from it when the definitions load (``defs/<domain>/jobs.py``), and the
instance's run coordinator (``quote_pipeline.deployment.JobTagsRunCoordinator``) gives the
same tags to runs launched without one of those jobs. Backfills from an asset's Partitions tab
and materializations from the asset graph run Dagster's hidden asset job, which has no tags
of its own, and Dagster has no asset-level run tags.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from quote_pipeline.defs.code_version import CODE_VERSION_TAG, code_version

JOB_TAG = "quote_pipeline/job"
MAX_RUNTIME_TAG = "dagster/max_runtime"


@dataclass(frozen=True, slots=True)
class RunPolicy:
    """One job's share of the assets, and how long one of its runs may take."""

    job: str
    assets: frozenset[str]
    """Asset keys, their path components joined by ``/``."""
    max_runtime_seconds: int


REFRESH_QUOTES_POLICY = RunPolicy(
    job="refresh_quotes",
    assets=frozenset({"tickers", "raw_quotes", "stocks", "quote_snapshots"}),
    # A healthy refresh takes a minute or two (one pass, at most one read timeout, the retry
    # budget); the fetch steps' own retries for an unreachable API (3, exponential from 30 s,
    # jittered) add under 10 minutes.
    max_runtime_seconds=30 * 60,
)
DAILY_PRICES_POLICY = RunPolicy(
    job="daily_prices_job",
    assets=frozenset({"daily_prices"}),
    # One evening's partition is one request per ticker, and a backfill of years one request
    # per ticker for the whole range: an hour is far beyond a healthy run.
    max_runtime_seconds=60 * 60,
)
INTRADAY_BARS_POLICY = RunPolicy(
    job="intraday_bars_job",
    assets=frozenset({"intraday_bars"}),
    # A refresh every 5 minutes: one stuck for 20 has long been overtaken (the next ones queue
    # behind it, one run per job at a time).
    max_runtime_seconds=20 * 60,
)
REFRESH_NEWS_POLICY = RunPolicy(
    job="refresh_news",
    assets=frozenset({"news_articles"}),
    # An incremental fetch is a request or two per group of 25 tickers; a first 30-day fetch
    # of 500 tickers a few hundred requests. Half an hour is far beyond either.
    max_runtime_seconds=30 * 60,
)

REFRESH_PROFILES_POLICY = RunPolicy(
    job="refresh_company_profiles",
    assets=frozenset({"company_profiles"}),
    # One request per ticker, weekly: 500 tickers take a minute or two.
    max_runtime_seconds=30 * 60,
)
REFRESH_CORPORATE_ACTIONS_POLICY = RunPolicy(
    job="refresh_corporate_actions",
    assets=frozenset({"stock_splits", "dividends"}),
    # Two requests per ticker (splits, dividends), daily after the close.
    max_runtime_seconds=30 * 60,
)

# The order decides which job a run that materializes assets of several is counted as: the
# quote refresh first, since it is the one whose runs must never overlap.
POLICIES: tuple[RunPolicy, ...] = (
    REFRESH_QUOTES_POLICY,
    DAILY_PRICES_POLICY,
    INTRADAY_BARS_POLICY,
    REFRESH_NEWS_POLICY,
    REFRESH_PROFILES_POLICY,
    REFRESH_CORPORATE_ACTIONS_POLICY,
)


def policy_for_job(job: str) -> RunPolicy:
    """The policy of the job named ``job``; :class:`KeyError` if it has none."""
    for policy in POLICIES:
        if policy.job == job:
            return policy
    raise KeyError(f"no run policy for job {job!r}; known: {[p.job for p in POLICIES]}")


def code_version_tags() -> dict[str, str]:
    """The tag that says which code a job, run or schedule tick came from."""
    return {CODE_VERSION_TAG: code_version()}


def _tags(job: str, max_runtime_seconds: int) -> dict[str, str]:
    return {JOB_TAG: job, MAX_RUNTIME_TAG: str(max_runtime_seconds), **code_version_tags()}


def run_tags_for_job(job: str) -> dict[str, str]:
    """The tags every run of the job named ``job`` carries (its definition tags)."""
    policy = policy_for_job(job)
    return _tags(policy.job, policy.max_runtime_seconds)


def _key(path: Sequence[str] | str) -> str:
    # A bare string is one asset name, not a path of one-letter components.
    return path if isinstance(path, str) else "/".join(path)


def run_tags_for_assets(asset_key_paths: Iterable[Sequence[str] | str]) -> dict[str, str]:
    """The tags for a run that materializes (or checks) the assets at ``asset_key_paths``.

    The job tag of the first policy (in :data:`POLICIES` order) that owns any of them, so the
    run queues with that job's runs; the longest run time of every policy involved, so run
    monitoring never fails a run that does several jobs' work before its slowest part could
    finish. Empty when no policy owns any of the assets.
    """
    keys = {_key(path) for path in asset_key_paths}
    matched = [policy for policy in POLICIES if policy.assets & keys]
    if not matched:
        return {}
    return _tags(matched[0].job, max(policy.max_runtime_seconds for policy in matched))


def refresh_quotes_run_config(symbols: Sequence[str]) -> dict[str, object]:
    """``refresh_quotes``' run config that fetches only ``symbols`` (the planning op's
    ``only_symbols``): what the retry sensor and an app asking for one ticker both send."""
    batches = {"config": {"only_symbols": list(symbols)}}
    return {"ops": {"raw_quotes": {"ops": {"plan_quote_batches": batches}}}}
