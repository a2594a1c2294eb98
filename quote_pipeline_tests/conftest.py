"""Shared fixtures: a real PostgreSQL database, SQLite files, the sandbox API, Dagster instances."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from quote_pipeline.sandbox import FaultConfig, SandboxConfig, SandboxServer
from quote_pipeline.storage import create_db_engine
from quote_pipeline.storage.schema_migrations import upgrade
from quote_pipeline_tests.support.postgres import (
    PostgresServer,
    PostgresUnavailable,
    acquire_postgres,
    create_database,
    drop_database,
)

SANDBOX_KEY = "test-key-7f3a9c1e55d2"  # distinctive, so a leak is easy to search for
MASSIVE_SANDBOX_KEY = "massive-test-key-4be81d09c3"  # the same, for Massive's

# Nothing a test runs may reach a real API or pick up a developer's settings.
_ISOLATED_ENV = (
    "FMP_API_KEY",
    "FMP_BASE_URL",
    "FMP_CALLS_PER_MINUTE",
    "MASSIVE_API_KEY",
    "MASSIVE_BASE_URL",
    "MASSIVE_CALLS_PER_MINUTE",
    "QUOTE_PIPELINE_QUOTE_PROVIDERS",
    "QUOTE_PIPELINE_HISTORY_PROVIDERS",
    "QUOTE_PIPELINE_DATABASE_URL",
    "QUOTE_PIPELINE_DATA_DIR",
    "DAGSTER_HOME",
    "QUOTE_PIPELINE_TEST_FAULT",  # a crash point set by mistake would kill the test process
    "QUOTE_PIPELINE_EXECUTOR",
    "QUOTE_PIPELINE_CELERY_BROKER",
    "QUOTE_PIPELINE_CELERY_BACKEND",
    "QUOTE_PIPELINE_CELERY_VISIBILITY_TIMEOUT_SECONDS",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "QUOTE_PIPELINE_ALERT_WEBHOOK_URL",
    "QUOTE_PIPELINE_CHART_WATCHLIST",
)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QUOTE_PIPELINE_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(autouse=True)
def _forget_closed_instances() -> Iterator[None]:
    """Dagster 1.13.27 leaves a closed instance's defs-state storage in a context variable;
    a later Definitions load in the same process then fails on a dead weakref. Reset it."""
    yield
    from dagster._core.storage.defs_state import base

    base._current_storage.set(None)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = acquire_postgres()
    except PostgresUnavailable as exc:
        pytest.exit(str(exc), returncode=3)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A database made for this test session (bare ``postgresql://`` URL), dropped after."""
    name = f"quote_pipeline_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = create_database(postgres_server.url, name)
    yield url
    drop_database(postgres_server.url, name)


def drop_all_tables(engine: Engine) -> None:
    """Drop every table, ``alembic_version`` included: the database is as if new."""
    with engine.begin() as conn:
        names = sa.inspect(conn).get_table_names()
        quote = conn.dialect.identifier_preparer.quote
        if conn.dialect.name == "postgresql":
            if names:
                conn.exec_driver_sql(f"DROP TABLE {', '.join(map(quote, names))} CASCADE")
        else:
            for name in names:
                conn.exec_driver_sql(f"DROP TABLE {quote(name)}")


def _fresh_tables(url: str) -> Engine:
    """Empty tables built by the migrations, as a new deployment gets them (~40 ms on
    PostgreSQL, as fast as the drop_all/create_all it replaced)."""
    engine = create_db_engine(url, upgrade=False)
    drop_all_tables(engine)
    upgrade(engine)
    return engine


@pytest.fixture
def postgres_url(postgres_database_url: str) -> Iterator[str]:
    """The session's PostgreSQL database with empty tables."""
    engine = _fresh_tables(postgres_database_url)
    yield postgres_database_url
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'quotes.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on SQLite and on PostgreSQL, with empty tables."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


SandboxFactory = Callable[..., SandboxServer]


@pytest.fixture
def start_sandbox() -> Iterator[SandboxFactory]:
    """Start sandbox servers on free loopback ports: ``start_sandbox(premium=True, faults=…)``."""
    servers: list[SandboxServer] = []

    def start(*, faults: FaultConfig | None = None, **config: object) -> SandboxServer:
        config.setdefault("api_key", SANDBOX_KEY)
        config.setdefault("massive_api_key", MASSIVE_SANDBOX_KEY)
        server = SandboxServer(SandboxConfig(faults=faults or FaultConfig(), **config))  # type: ignore[arg-type]
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def sandbox(start_sandbox: SandboxFactory) -> SandboxServer:
    """A plain sandbox: free plan (no batch endpoint), no faults, no latency."""
    return start_sandbox()


@pytest.fixture
def dagster_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A real (SQLite-backed) Dagster instance in a temporary DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance
