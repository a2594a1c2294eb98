"""The project's dagster.yaml: both PostgreSQL storage forms load and round-trip runs/events,
the fmp_api pool never makes a run wait for itself, and the local instance scripts/dev.sh
writes is the same instance on SQLite.

Each PostgreSQL instance gets its own database on the test server, a DAGSTER_HOME with the
file, and the connection in environment variables, the way a deployment sets it.
"""

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.instance.config import PoolGranularity
from sqlalchemy.engine import make_url

from quote_pipeline.deployment import JobTagsRunCoordinator, dev_instance_config
from quote_pipeline.sandbox import SandboxServer
from quote_pipeline_tests.helpers import mapped_fetch_steps, pipeline_definitions, run_refresh
from quote_pipeline_tests.support.dagster_processes import (
    PROJECT_ROOT,
    postgres_env,
    with_postgres_url_storage,
)
from quote_pipeline_tests.support.postgres import PostgresServer, create_database, drop_database

PROJECT_DAGSTER_YAML = PROJECT_ROOT / "dagster.yaml"

pytestmark = pytest.mark.postgres


@pytest.fixture
def dagster_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database for one instance's storage (bare postgresql:// URL)."""
    name = f"qp_dagster_{uuid.uuid4().hex[:10]}"
    url = create_database(postgres_server.url, name)
    yield url
    drop_database(postgres_server.url, name)


def _production_instance(
    home: Path, dagster_database: str, monkeypatch: pytest.MonkeyPatch
) -> dg.DagsterInstance:
    """The project's dagster.yaml in ``home``, its storage in ``dagster_database``.

    Not used with `with`: leaving an instance's context leaves its defs-state storage
    installed (Dagster 1.13.27), which breaks Definitions loads in later tests. Dispose it.
    """
    home.mkdir(exist_ok=True)
    shutil.copy(PROJECT_DAGSTER_YAML, home / "dagster.yaml")
    for name, value in postgres_env(dagster_database).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return dg.DagsterInstance.get()


def _leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict) and set(node) != {"env"}:
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    else:
        yield path, node


def test_no_connection_detail_is_written_in_the_file() -> None:
    config = yaml.safe_load(PROJECT_DAGSTER_YAML.read_text())
    storage = config["storage"]["postgres"]
    assert set(storage) == {"postgres_db"}
    for path, value in _leaves(storage):
        assert isinstance(value, dict) and set(value) == {"env"}, f"{path} is not from env"


def test_the_instance_settings() -> None:
    """Run queue, pools and run monitoring as the README describes them."""
    config = yaml.safe_load(PROJECT_DAGSTER_YAML.read_text())
    assert config["run_coordinator"]["module"] == "quote_pipeline.deployment"
    assert config["run_coordinator"]["class"] == "JobTagsRunCoordinator"
    assert "run_queue" not in config  # Dagster refuses it beside run_coordinator
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 4
    # Per run: a run that uses fmp_api starts when the pool is free and holds it to its end.
    assert config["concurrency"]["pools"] == {"granularity": "run", "default_limit": 1}
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert 0 < monitoring["free_slots_after_run_end_seconds"] <= 300
    assert monitoring["max_runtime_seconds"] > 90 * 60  # beyond refresh_quotes' own limit
    assert config["telemetry"] == {"enabled": False}
    assert config["nux"] == {"enabled": False}


@dg.asset(pool="fmp_api")
def pooled_probe(context: dg.AssetExecutionContext) -> dict[str, object]:
    """The fmp_api pool as this step sees it while it runs (in process, as refresh_quotes)."""
    info = context.instance.event_log_storage.get_concurrency_info("fmp_api")
    return {"claimed_by_this_run": context.run.run_id in info.active_run_ids}


@pytest.mark.parametrize("form", ["postgres_db", "postgres_url"])
def test_each_storage_form_loads_and_round_trips(
    form: str, dagster_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    if form == "postgres_db":
        shutil.copy(PROJECT_DAGSTER_YAML, home / "dagster.yaml")
    else:
        (home / "dagster.yaml").write_text(
            with_postgres_url_storage(PROJECT_DAGSTER_YAML.read_text())
        )
    for name, value in postgres_env(dagster_database).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    # Not `with`: leaving an instance's context leaves its defs-state storage installed
    # (Dagster 1.13.27), which breaks Definitions loads in later tests.
    instance = dg.DagsterInstance.get()
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        # dagster-postgres builds a bare postgresql:// URL: psycopg2 under SQLAlchemy 2.0.
        engine_url = instance.run_storage._engine.url  # type: ignore[attr-defined]
        assert engine_url.drivername == "postgresql"
        assert engine_url.get_dialect().driver == "psycopg2"
        assert engine_url.database == make_url(dagster_database).database

        # Dagster's run queue, with the policy's tags added on submission.
        assert isinstance(instance.run_coordinator, JobTagsRunCoordinator)
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert instance.run_monitoring_enabled
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.pool_config.pool_granularity == PoolGranularity.RUN
        queue = concurrency.run_queue_config
        assert queue is not None and queue.max_concurrent_runs == 4
        assert queue.max_user_code_failure_retries == 3  # the coordinator's own config

        result = dg.materialize([pooled_probe], instance=instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        events = instance.all_logs(result.run_id)
        assert any(e.dagster_event_type == dg.DagsterEventType.RUN_SUCCESS for e in events)
        latest = instance.get_latest_materialization_event(dg.AssetKey("pooled_probe"))
        assert latest is not None and latest.run_id == result.run_id
        # The pool is the run's (the queue starts it when fmp_api is free): the step ran
        # without claiming a slot of its own, and none is left held.
        held = result.output_for_node("pooled_probe")
        assert held["claimed_by_this_run"] is False
        info = instance.event_log_storage.get_concurrency_info("fmp_api")
        assert not info.claimed_slots and not info.pending_steps
        assert instance.schedule_storage is not None
        assert instance.schedule_storage.all_instigator_state() == []
    finally:
        instance.dispose()


def test_a_refresh_in_many_mapped_steps_never_waits_for_its_own_pool(
    dagster_database: str,
    sandbox: SandboxServer,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With fmp_api at limit 1, a refresh split into 20 mapped fetch steps runs them in order
    without one "blocked by limit" event: the pool serialises runs, not a run's own steps."""
    tickers = [f"P{i:03d}" for i in range(40)]
    defs = pipeline_definitions(monkeypatch, sandbox, sqlite_url, tickers)
    instance = _production_instance(tmp_path / "dagster_home", dagster_database, monkeypatch)
    try:
        batching = {"target_steps": 20, "min_batch_size": 1}
        result = run_refresh(
            defs,
            instance,
            run_config={
                "ops": {"raw_quotes": {"ops": {"plan_quote_batches": {"config": batching}}}}
            },
        )
        assert result.success
        assert len(mapped_fetch_steps(result)) == 20

        blocked = [
            e.message
            for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if "blocked by limit" in e.message
        ]
        assert blocked == []
        started = [
            e.step_key
            for e in result.all_events
            if e.event_type_value == "STEP_START"
            and (e.step_key or "").startswith("raw_quotes.fetch_quote_batch[")
        ]
        assert len(started) == 20
        assert started == sorted(started)  # mapping keys batch_0000 … batch_0019
    finally:
        instance.dispose()


def test_the_dev_instance_is_production_without_its_storage(tmp_path: Path) -> None:
    """scripts/dev.sh's instance: the production settings, SQLite storage in its home."""
    production = yaml.safe_load(PROJECT_DAGSTER_YAML.read_text())
    generated = yaml.safe_load(dev_instance_config(PROJECT_DAGSTER_YAML.read_text()))
    assert "storage" in production and "storage" not in generated
    assert generated == {k: v for k, v in production.items() if k != "storage"}

    # As dev.sh writes it, over whatever an earlier start (or the demo) left there.
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    subprocess.run(
        [sys.executable, "-m", "quote_pipeline.deployment", "dev-instance", str(home)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert yaml.safe_load((home / "dagster.yaml").read_text()) == generated

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert Path(instance.root_directory) == home
        assert isinstance(instance.run_coordinator, JobTagsRunCoordinator)
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert instance.run_monitoring_enabled
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.pool_config.pool_granularity == PoolGranularity.RUN
        assert concurrency.run_queue_config is not None
        assert concurrency.run_queue_config.max_concurrent_runs == 4
        assert not instance.telemetry_enabled
        assert not instance.nux_enabled
    finally:
        instance.dispose()
