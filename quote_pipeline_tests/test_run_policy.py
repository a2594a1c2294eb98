"""The run policies: which tags a run of the pipeline's assets gets, whoever launched it."""

import subprocess
import sys
from collections.abc import Sequence

import dagster as dg
import pytest

from quote_pipeline.definitions import defs
from quote_pipeline.defs.code_version import CODE_VERSION_TAG, code_version
from quote_pipeline.deployment import policy_tags_missing
from quote_pipeline.run_policy import (
    JOB_TAG,
    MAX_RUNTIME_TAG,
    POLICIES,
    run_tags_for_assets,
    run_tags_for_job,
)


def _expected(job: str, max_runtime_seconds: int) -> dict[str, str]:
    return {
        JOB_TAG: job,
        MAX_RUNTIME_TAG: str(max_runtime_seconds),
        CODE_VERSION_TAG: code_version(),
    }


@pytest.mark.parametrize(
    ("job", "minutes"),
    [("refresh_quotes", 30), ("daily_prices_job", 60), ("intraday_bars_job", 20)],
)
def test_each_job_has_its_tags(job: str, minutes: int) -> None:
    assert run_tags_for_job(job) == _expected(job, minutes * 60)


def test_a_job_without_a_policy_is_an_error() -> None:
    with pytest.raises(KeyError, match="check_stocks_freshness"):
        run_tags_for_job("check_stocks_freshness")


@pytest.mark.parametrize(
    ("paths", "job", "minutes"),
    [
        ([["daily_prices"]], "daily_prices_job", 60),
        ([["intraday_bars"]], "intraday_bars_job", 20),
        ([["stocks"]], "refresh_quotes", 30),
        ([["quote_snapshots"]], "refresh_quotes", 30),
        ([["tickers"], ["raw_quotes"], ["stocks"]], "refresh_quotes", 30),
        # Bare names are asset names, not paths of one-letter components.
        (["daily_prices"], "daily_prices_job", 60),
        # Several jobs' assets: the first policy's job, the longest of their run times.
        ([["intraday_bars"], ["daily_prices"]], "daily_prices_job", 60),
        ([["intraday_bars"], ["tickers"]], "refresh_quotes", 30),
        ([["daily_prices"], ["stocks"], ["intraday_bars"]], "refresh_quotes", 60),
        # An asset no policy owns beside one that a policy owns.
        ([["somewhere", "else"], ["intraday_bars"]], "intraday_bars_job", 20),
    ],
)
def test_a_run_of_assets_gets_the_tags_of_the_job_owning_them(
    paths: list[list[str]] | list[str], job: str, minutes: int
) -> None:
    assert run_tags_for_assets(paths) == _expected(job, minutes * 60)


@pytest.mark.parametrize("paths", [[], [["unknown"]], [["prefix", "daily_prices"]]])
def test_a_run_of_no_policys_assets_gets_no_tags(paths: list[list[str]]) -> None:
    assert run_tags_for_assets(paths) == {}


def test_the_policies_own_no_asset_twice() -> None:
    owned = [asset for policy in POLICIES for asset in policy.assets]
    assert len(owned) == len(set(owned))


def test_each_jobs_tags_and_assets_are_its_policys() -> None:
    """The jobs are built from the policies: same tags, and no asset of a job left out of its
    policy (a run of it from the asset graph would then go untagged)."""
    loaded = defs()
    known = {
        k.to_user_string() for k in loaded.get_repository_def().asset_graph.get_all_asset_keys()
    }
    for policy in POLICIES:
        job = loaded.resolve_job_def(policy.job)
        assert dict(job.tags) == run_tags_for_job(policy.job), policy.job
        materialized = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
        assert materialized <= policy.assets, policy.job
        assert policy.assets & known <= materialized, policy.job


def test_the_policy_module_imports_no_dagster() -> None:
    """The jobs and the run coordinator share it; Dagster stays out of it."""
    probe = (
        "import sys, quote_pipeline.run_policy; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def _asset_job_run(
    assets: Sequence[str] = (),
    checks: Sequence[tuple[str, str]] = (),
    tags: dict[str, str] | None = None,
) -> dg.DagsterRun:
    """A run of the hidden asset job, as a backfill or the asset graph creates it."""
    return dg.DagsterRun(
        job_name="__ASSET_JOB",
        asset_selection=frozenset(dg.AssetKey(a) for a in assets) or None,
        asset_check_selection=frozenset(
            dg.AssetCheckKey(dg.AssetKey(a), name) for a, name in checks
        )
        or None,
        tags=tags or {},
    )


def test_the_coordinator_adds_what_a_backfill_run_lacks() -> None:
    run = _asset_job_run(["daily_prices"], tags={"dagster/backfill": "abc"})
    assert policy_tags_missing(run) == _expected("daily_prices_job", 3600)


def test_the_coordinator_keeps_the_tags_a_run_has() -> None:
    run = _asset_job_run(["daily_prices"], tags={MAX_RUNTIME_TAG: "600", JOB_TAG: "mine"})
    assert policy_tags_missing(run) == {CODE_VERSION_TAG: code_version()}


def test_a_run_of_checks_alone_is_not_a_refresh() -> None:
    # The freshness check launched from the Checks tab: no API, no queueing behind a refresh.
    run = _asset_job_run(checks=[("stocks", "freshness")])
    assert policy_tags_missing(run) == {}


def test_the_coordinator_leaves_a_run_without_asset_selection_alone() -> None:
    # A named job launched whole: its own definition tags are all it gets.
    run = dg.DagsterRun(job_name="check_stocks_freshness", tags={"x": "y"})
    assert policy_tags_missing(run) == {}
