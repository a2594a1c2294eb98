"""The ``dagster_stack`` fixture: the project as a user runs it, once per test module.

``dagster_stack`` is a :class:`~quote_pipeline_tests.support.dagster_processes.DagsterStack`:
`dagster-webserver` and `dagster-daemon` processes on the project's workspace.yaml, with a
DAGSTER_HOME holding the project's dagster.yaml on two fresh PostgreSQL databases (Dagster's
storage, the pipeline's tables), FMP pointed at ``e2e_sandbox``. Use ``stack.graphql(...)``,
``stack.client()`` (dagster-graphql), ``stack.launch_job(...)``, ``stack.wait_for_run(...)``,
``stack.instance()`` and ``stack.database_url`` (seed tickers there). Every process group is
stopped by pid when the module is done, whatever happened.

Tests in one module share the stack: leave the tickers table and schedule states as found.
For other settings, call ``start_dagster_stack`` directly (it is a context manager).
"""

from collections.abc import Iterator

import pytest

from quote_pipeline.sandbox import FaultConfig, SandboxConfig, SandboxServer
from quote_pipeline_tests.conftest import SANDBOX_KEY
from quote_pipeline_tests.support.dagster_processes import DagsterStack, start_dagster_stack
from quote_pipeline_tests.support.postgres import PostgresServer

# A ticker whose quote request the sandbox holds for two minutes: a step stuck mid-fetch.
HANG_SYMBOL = "HANG"

# The instance as configured in dagster.yaml, with intervals short enough for a test to
# watch it work: run monitoring polls every 2 s (the project's: 30 s) and frees what a
# crashed run held after 5 s (60 s), the run queue is looked at every second (Dagster's
# default: 5 s) so that runs waiting on each other do not cost a test many seconds.
FAST_INSTANCE = {
    "run_monitoring": {"poll_interval_seconds": 2, "free_slots_after_run_end_seconds": 5},
    "run_coordinator": {"config": {"dequeue_interval_seconds": 1}},
}


@pytest.fixture(scope="module")
def e2e_sandbox() -> Iterator[SandboxServer]:
    """The FMP sandbox the stack's processes call (free plan; ``HANG`` hangs)."""
    faults = FaultConfig(hang_symbols={HANG_SYMBOL}, hang_seconds=120)
    server = SandboxServer(SandboxConfig(api_key=SANDBOX_KEY, faults=faults)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dagster_stack(
    postgres_server: PostgresServer,
    e2e_sandbox: SandboxServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DagsterStack]:
    """Webserver + daemon on PostgreSQL, loading workspace.yaml; stopped after the module."""
    with start_dagster_stack(
        tmp_path_factory.mktemp("dagster_stack"),
        postgres_server_url=postgres_server.url,
        fmp_base_url=e2e_sandbox.url,
        fmp_api_key=SANDBOX_KEY,
        instance_overrides=FAST_INSTANCE,
    ) as stack:
        yield stack
