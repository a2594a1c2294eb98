"""The whole code location loads, the ways `dagster dev`, the CLI and `dg` load it."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from quote_pipeline.definitions import PROJECT_ROOT, build_definitions, defs
from quote_pipeline.defs.resources import DatabaseResource, FMPResource
from quote_pipeline.storage.call_ledger import SqlCallLedger

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def loaded() -> dg.Definitions:
    return defs()


def test_every_domain_folder_contributes_its_definitions(loaded: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(loaded)
    repository = loaded.get_repository_def()
    assert {k.to_user_string() for k in repository.asset_graph.get_all_asset_keys()} == {
        "tickers",
        "raw_quotes",
        "stocks",
        "quote_snapshots",
        "daily_prices",
        "intraday_bars",
        "news_articles",
        "daily_sentiment",
        "company_profiles",
        "stock_splits",
        "dividends",
        "daily_prices_adjusted",
        "daily_metrics",
    }
    assert {s.name for s in loaded.schedules or []} == {
        "refresh_quotes_hourly",
        "check_stocks_freshness_in_market_hours",
        "daily_prices_after_close",
        "intraday_bars_every_5_minutes",
        "refresh_news_every_30_minutes",
        "company_profiles_weekly",
        "corporate_actions_after_close",
    }
    assert {s.name for s in loaded.sensors or []} == {
        "retry_pending_quotes",
        "retry_pending_daily_prices",
        "news_sentiment_automation",
        "profiles_for_new_tickers",
        "adjusted_prices_automation",
        "analytics_automation",
        "run_failure_alerts",
        "check_failure_alerts",
    }
    assert set(loaded.resources or {}) == {"database", "fmp", "massive", "providers", "io_manager"}


def test_the_history_shows_its_lineage_from_the_tickers(loaded: dg.Definitions) -> None:
    graph = loaded.get_repository_def().asset_graph
    for asset in ("daily_prices", "intraday_bars", "raw_quotes"):
        assert dg.AssetKey("tickers") in graph.get(dg.AssetKey(asset)).parent_keys, asset
    # Both tables the refresh writes are assets, downstream of the fetch.
    for table in ("stocks", "quote_snapshots"):
        assert graph.get(dg.AssetKey(table)).parent_keys == {dg.AssetKey("raw_quotes")}, table


def test_automation_reads_well_on_the_automation_page(loaded: dg.Definitions) -> None:
    """Short plain descriptions (the page renders no markdown), each schedule's time zone
    named in words, since the page shows the cron without it."""
    for schedule in loaded.schedules or []:
        assert schedule.execution_timezone == "America/New_York", schedule.name
        assert "New York" in (schedule.description or ""), schedule.name
    automation = [*(loaded.schedules or []), *(loaded.sensors or [])]
    for definition in automation:
        description = definition.description or ""
        assert description and "`" not in description, definition.name
        assert len(description) <= 320, (definition.name, len(description))


def test_refresh_quotes_selects_the_quote_assets_and_runs_in_process(
    loaded: dg.Definitions,
) -> None:
    job = loaded.resolve_job_def("refresh_quotes")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "tickers",
        "raw_quotes",
        "stocks",
        "quote_snapshots",
    }
    # In process unless QUOTE_PIPELINE_EXECUTOR=celery or the run says so (defs/executors.py).
    assert job.executor_def.name == "in_process_or_celery"
    assert job.executor_def.config_schema.default_value == {"in_process": {}}
    checks = {key.name for key in job.asset_layer.asset_graph.asset_check_keys}
    # Every check of the four assets: a refresh leaves all of them current.
    assert checks == {
        "freshness",
        "coverage",
        "api_quota_not_exhausted",
        "prices_positive",
        "no_duplicate_tickers",
        "fetch_failures",
        "providers_agree",
    }


def test_column_schemas_come_from_the_storage_tables(loaded: dg.Definitions) -> None:
    from quote_pipeline.storage import schema

    graph = loaded.get_repository_def().asset_graph
    for asset, table in (
        ("stocks", schema.stocks),
        ("daily_prices", schema.daily_prices),
        ("intraday_bars", schema.intraday_bars),
        ("tickers", schema.tickers),
    ):
        metadata = graph.get(dg.AssetKey(asset)).metadata
        assert metadata["dagster/table_name"] == table.name
        columns = {c.name: c for c in metadata["dagster/column_schema"].columns}
        assert list(columns) == [c.name for c in table.columns]
        for column in table.columns:
            assert columns[column.name].description == column.comment


def test_loading_needs_no_secret_and_shows_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMP_API_KEY", "do-not-show-me")
    fmp = build_definitions().resources["fmp"]
    assert "do-not-show-me" not in repr(fmp.__dict__)
    assert fmp.api_key == dg.EnvVar("FMP_API_KEY")


def test_every_asset_explains_itself(loaded: dg.Definitions) -> None:
    repository = loaded.get_repository_def()
    for key in repository.asset_graph.get_all_asset_keys():
        node = repository.asset_graph.get(key)
        assert node.description, key
        assert node.group_name, key
        assert node.owners, key


def test_dg_checks_and_lists_the_project(tmp_path: Path) -> None:
    # As a Dagster engineer checks a dg project, from its root, in a fresh process; loading
    # it installs no warning filter and prints no warning. `dg check defs` also resolves
    # the resources' environment variables, so the key must be set (to anything).
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "FMP_API_KEY": "check-key",
        "DAGSTER_HOME": str(home),
        "VIRTUAL_ENV": sys.prefix,
    }

    def dg_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "dg"), *args],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    checked = dg_cli("check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    assert "BetaWarning" not in checked.stderr and "Deprecat" not in checked.stderr
    listed = dg_cli("list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "retry_pending_quotes" in listed.stdout and "daily_prices" in listed.stdout


def test_loading_the_code_location_freezes_what_it_loaded() -> None:
    # In a fresh interpreter, as the CLI loads it: the objects loaded with the definitions are
    # kept out of later collections (and the one at exit, ~0.4 s of every CLI run).
    code = "import gc, quote_pipeline.definitions as d; d.defs(); print(gc.get_freeze_count())"
    frozen = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert int(frozen) > 100_000


def test_the_plans_cap_is_counted_in_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMP_API_KEY", "wiring-key")
    monkeypatch.setenv("FMP_CALLS_PER_MINUTE", "300")
    wired = build_definitions()
    fmp = wired.resources["fmp"]
    assert fmp.database is wired.resources["database"]
    assert fmp.client_settings().calls_per_minute == 300  # read when a run starts

    database = DatabaseResource(url="sqlite://")
    capped = FMPResource(api_key="k", base_url="http://127.0.0.1:9", calls_per_minute=300)
    assert capped.client.pacer.ledger is None  # counted in this run only
    shared = FMPResource(
        api_key="k", base_url="http://127.0.0.1:9", calls_per_minute=300, database=database
    )
    ledger = shared.client.pacer.ledger
    assert isinstance(ledger, SqlCallLedger)
    assert "k" not in ledger.account  # a hash of the account, never the key
    monkeypatch.delenv("FMP_CALLS_PER_MINUTE")
    uncapped = FMPResource(api_key="k", base_url="http://127.0.0.1:9", database=database)
    assert uncapped.client.pacer.ledger is None  # no cap, nothing to count
    assert uncapped.client.pacer.quota_memory is not None  # a spent quota is still remembered


def test_resources_open_and_close_with_the_run(tmp_path: Path) -> None:
    """The client and the database engine live as long as a run (or a sensor tick) and are
    closed with it: nothing is cached per process."""
    seen: dict[str, object] = {}

    @dg.asset
    def probe_resources(fmp: FMPResource, database: DatabaseResource) -> None:
        seen["client"], seen["engine"] = fmp.client, database.get_engine()
        assert fmp.client is fmp.client  # one client for the whole run

    database = DatabaseResource(url=f"sqlite:///{tmp_path / 'd.db'}")
    resources = {
        "fmp": FMPResource(api_key="k", base_url="http://127.0.0.1:9", database=database),
        "database": database,
    }
    assert dg.materialize([probe_resources], resources=resources).success
    first = seen["client"]
    assert first._pool is None  # type: ignore[attr-defined]  # closed with its run
    assert dg.materialize([probe_resources], resources=resources).success
    assert seen["client"] is not first  # a new run, a new client


def test_freshness_policies_say_when_the_tables_are_due(loaded: dg.Definitions) -> None:
    """Hourly in the trading day for stocks, by 18:00 New York for the daily bars; the
    derived tables follow them by automation instead of carrying a policy of their own."""
    graph = loaded.get_repository_def().asset_graph
    stocks = graph.get(dg.AssetKey("stocks")).freshness_policy
    daily = graph.get(dg.AssetKey("daily_prices")).freshness_policy
    assert isinstance(stocks, dg.FreshnessPolicy) and isinstance(daily, dg.FreshnessPolicy)
    assert (stocks.deadline_cron, stocks.timezone) == ("30 10-16 * * 1-5", "America/New_York")
    assert stocks.lower_bound_delta.total_seconds() == 3600
    assert (daily.deadline_cron, daily.timezone) == ("0 18 * * 1-5", "America/New_York")
    for derived in ("daily_prices_adjusted", "daily_metrics"):
        assert graph.get(dg.AssetKey(derived)).automation_condition is not None, derived
