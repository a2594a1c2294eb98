"""The project's dagster.yaml: both PostgreSQL storage forms load and round-trip runs/events.

Each form gets its own database on the test server, a DAGSTER_HOME with the file, and the
connection in environment variables, the way a deployment sets it.
"""

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from sqlalchemy.engine import make_url

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
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 4
    assert config["concurrency"]["pools"] == {"granularity": "op", "default_limit": 1}
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert 0 < monitoring["free_slots_after_run_end_seconds"] <= 300
    assert monitoring["max_runtime_seconds"] > 90 * 60  # beyond refresh_quotes' own limit
    assert config["telemetry"] == {"enabled": False}


@dg.asset(pool="fmp_api")
def pooled_probe(context: dg.AssetExecutionContext) -> dict[str, object]:
    """The fmp_api pool as this step sees it while it runs (in process, as refresh_quotes)."""
    info = context.instance.event_log_storage.get_concurrency_info("fmp_api")
    return {
        "limit": info.slot_count,
        "claimed_by_this_run": context.run.run_id in info.active_run_ids,
    }


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

        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_monitoring_enabled
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1

        result = dg.materialize([pooled_probe], instance=instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        events = instance.all_logs(result.run_id)
        assert any(e.dagster_event_type == dg.DagsterEventType.RUN_SUCCESS for e in events)
        latest = instance.get_latest_materialization_event(dg.AssetKey("pooled_probe"))
        assert latest is not None and latest.run_id == result.run_id
        # While the step ran it held the one fmp_api slot the default limit gives the pool.
        held = result.output_for_node("pooled_probe")
        assert held == {"limit": 1, "claimed_by_this_run": True}
        info = instance.event_log_storage.get_concurrency_info("fmp_api")
        assert info.slot_count == 1 and not info.claimed_slots
        assert instance.schedule_storage is not None
        assert instance.schedule_storage.all_instigator_state() == []
    finally:
        instance.dispose()
