"""Fixtures of the celery executor's tests: a private Redis per test session, and per test
module a deployment (Dagster instance and data on PostgreSQL, the FMP sandbox) with two
`quote-pipeline worker` processes, w1 and w2.

A module sets ``VISIBILITY_TIMEOUT_SECONDS`` (longer than any of its steps, short enough that
a killed worker's step comes back soon) and may set ``DEPLOYMENT_ENV`` (e.g. the API cap),
which every process of its deployment gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import redis

from quote_pipeline.sandbox import FaultConfig, SandboxConfig, SandboxServer
from quote_pipeline.storage import add_tickers, create_db_engine
from quote_pipeline.storage.schema_migrations import upgrade
from quote_pipeline_tests.celery.support import (
    CeleryDeployment,
    RedisServer,
    RedisUnavailable,
    WorkerPool,
    celery_deployment,
    start_redis,
)
from quote_pipeline_tests.conftest import SANDBOX_KEY, drop_all_tables
from quote_pipeline_tests.support.postgres import PostgresServer

WORKERS = ("w1", "w2")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this test session's own, on a free loopback port."""
    try:
        server = start_redis(tmp_path_factory.mktemp("redis"))
    except RedisUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@dataclass
class CeleryStack:
    deployment: CeleryDeployment
    workers: WorkerPool
    sandbox: SandboxServer

    def seed_tickers(self, count: int) -> list[str]:
        symbols = [f"C{i:04d}" for i in range(count)]
        add_tickers(create_db_engine(self.deployment.data_url), symbols, now=datetime.now(UTC))
        return symbols

    def worker_logs(self) -> str:
        return "\n".join(
            f"--- worker {name} ---\n{self.workers.log_tail(name)}" for name in WORKERS
        )


@pytest.fixture(scope="module")
def celery_stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
) -> Iterator[CeleryStack]:
    # Another module's tasks or results must not reach this one's workers.
    redis.Redis(port=redis_server.port).flushall()
    visibility = int(request.module.VISIBILITY_TIMEOUT_SECONDS)
    extra_env = dict(getattr(request.module, "DEPLOYMENT_ENV", {}))
    tmp = tmp_path_factory.mktemp("celery")
    sandbox = SandboxServer(SandboxConfig(api_key=SANDBOX_KEY)).start()
    workers: WorkerPool | None = None
    try:
        with celery_deployment(
            tmp,
            postgres_server_url=postgres_server.url,
            broker_url=redis_server.url(0),
            backend_url=redis_server.url(1),
            env={
                "FMP_BASE_URL": sandbox.url,
                "FMP_API_KEY": SANDBOX_KEY,
                "QUOTE_PIPELINE_CELERY_VISIBILITY_TIMEOUT_SECONDS": str(visibility),
                **extra_env,
            },
        ) as deployment:
            log_dir = tmp / "logs"
            log_dir.mkdir()
            workers = WorkerPool(deployment.env, log_dir)
            workers.start(*WORKERS)
            yield CeleryStack(deployment, workers, sandbox)
    finally:
        if workers is not None:
            workers.stop()
        sandbox.stop()


@pytest.fixture
def stack(celery_stack: CeleryStack, monkeypatch: pytest.MonkeyPatch) -> CeleryStack:
    """The module's stack, as new for this test: both workers running, empty data tables,
    the sandbox without faults or logged requests, this process's environment the
    deployment's (it is the run worker)."""
    for name, value in celery_stack.deployment.env.items():
        monkeypatch.setenv(name, value)
    celery_stack.workers.ensure_running(*WORKERS)
    engine = create_db_engine(celery_stack.deployment.data_url, upgrade=False)
    try:
        drop_all_tables(engine)
        upgrade(engine)
    finally:
        engine.dispose()
    celery_stack.sandbox.set_faults(FaultConfig())
    celery_stack.sandbox.reset()
    return celery_stack
