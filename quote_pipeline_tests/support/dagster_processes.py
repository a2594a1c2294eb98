"""Run the project the way a user does: `dagster-webserver` and `dagster-daemon` processes
against a DAGSTER_HOME whose instance is on PostgreSQL, loading the project's workspace.yaml.

Usage (see ``quote_pipeline_tests/e2e/conftest.py`` for the ``dagster_stack`` fixture)::

    with start_dagster_stack(
        tmp_dir, postgres_server_url=server.url, fmp_base_url=sandbox.url, fmp_api_key=KEY
    ) as stack:
        stack.graphql("{ version }")
        run_id = stack.client().submit_job_execution("refresh_quotes", ...)
        stack.wait_for_run(run_id)
        with stack.instance() as instance:  # the same instance, opened in the test process
            ...

``start_dagster_stack`` makes two databases on the server (Dagster's storage and the
pipeline's tables), copies the project's dagster.yaml into a fresh DAGSTER_HOME with the
connection in DAGSTER_PG_* variables, starts both processes in their own process groups,
waits until the code location is loaded and the daemons beat, and on the way out (whatever
happened) stops each process group by pid and drops the databases. The processes' output
is in ``stack.log_dir``; a failed start says so with the last lines of it.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import requests
import yaml
from dagster_graphql import DagsterGraphQLClient
from sqlalchemy.engine import make_url

from quote_pipeline_tests.support.environ import temporary_environ
from quote_pipeline_tests.support.postgres import create_database, drop_database

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORKSPACE_YAML = PROJECT_ROOT / "workspace.yaml"
DAGSTER_YAML = PROJECT_ROOT / "dagster.yaml"
LOCATION_NAME = "quote_pipeline"
REPOSITORY_NAME = "__repository__"
BIN = Path(sys.executable).parent

# Never inherited from the developer's shell: the processes get exactly what the test says.
_SCRUBBED_PREFIXES = ("FMP_", "QUOTE_PIPELINE_", "DAGSTER_")
# Daemons the tests rely on: the scheduler, the run queue, run monitoring.
WAITED_DAEMONS = frozenset({"SCHEDULER", "QUEUED_RUN_COORDINATOR", "MONITORING"})

T = TypeVar("T")


class StackError(RuntimeError):
    """The webserver or the daemon did not come up, or a GraphQL call failed."""


POSTGRES_ENV_NAMES = (
    "DAGSTER_PG_USERNAME",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_DB",
    "DAGSTER_PG_URL",
)


def postgres_env(database_url: str) -> dict[str, str]:
    """The variables the project's dagster.yaml reads, for a bare postgresql:// URL.

    Both forms: DAGSTER_PG_USERNAME/PASSWORD/HOST/PORT/DB for the ``postgres_db`` block,
    DAGSTER_PG_URL for the ``postgres_url`` alternative.
    """
    url = make_url(database_url)
    return {
        "DAGSTER_PG_USERNAME": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_DB": url.database or "",
        "DAGSTER_PG_URL": url.render_as_string(hide_password=False),
    }


def with_postgres_url_storage(dagster_yaml: str) -> str:
    """The same instance configuration with storage given as one ``postgres_url`` variable."""
    config = yaml.safe_load(dagster_yaml)
    config["storage"] = {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
    return yaml.safe_dump(config, sort_keys=False)


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.5, what: str
) -> T:
    """``probe()``'s first truthy answer, or :class:`TimeoutError` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stop_group(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM the process group led by ``process`` (its code servers and run workers too),
    then SIGKILL whatever is left after ``grace`` seconds."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    # Children may outlive a leader that exited: the group is gone only when killpg fails.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


@dataclass
class DagsterStack:
    """A DAGSTER_HOME on PostgreSQL with a webserver (and a daemon) running against it."""

    home: Path
    log_dir: Path
    env: dict[str, str]
    port: int
    database_url: str
    """The pipeline's database (QUOTE_PIPELINE_DATABASE_URL of the processes)."""
    dagster_database_url: str
    """Dagster's run, event-log and schedule storage."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- processes ---------------------------------------------------------------------

    def _start(self, name: str, argv: list[str]) -> None:
        if name in self.processes and self.processes[name].poll() is None:
            raise StackError(f"{name} is already running")
        log = (self.log_dir / f"{name}.log").open("ab")
        try:
            self.processes[name] = subprocess.Popen(
                argv,
                cwd=PROJECT_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so that stopping it stops its code servers and run
                # workers too, by pid, and nothing else.
                start_new_session=True,
            )
        finally:
            log.close()

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _check_alive(self, name: str) -> None:
        process = self.processes.get(name)
        if process is not None and process.poll() is not None:
            raise StackError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")

    def start_webserver(self, timeout: float = 120) -> None:
        """Start `dagster-webserver` and wait until the code location has loaded."""
        self._start(
            "webserver",
            [
                str(BIN / "dagster-webserver"),
                *("-w", str(WORKSPACE_YAML), "-h", "127.0.0.1", "-p", str(self.port)),
            ],
        )

        def up() -> bool:
            self._check_alive("webserver")
            try:
                return requests.get(f"{self.url}/server_info", timeout=2).ok
            except requests.RequestException:
                return False

        wait_until(up, timeout=timeout, what="the webserver's /server_info")
        wait_until(self._location_loaded, timeout=timeout, what="the code location to load")

    def _location_loaded(self) -> bool:
        self._check_alive("webserver")
        data = self.graphql(
            """{ workspaceOrError { ... on Workspace { locationEntries {
                   name loadStatus
                   locationOrLoadError { __typename ... on PythonError { message stack } }
            } } } }"""
        )
        for entry in data["workspaceOrError"]["locationEntries"]:
            if entry["name"] != LOCATION_NAME or entry["loadStatus"] != "LOADED":
                continue
            error = entry["locationOrLoadError"]
            if error and error["__typename"] == "PythonError":
                raise StackError(
                    f"{LOCATION_NAME} failed to load: {error['message']}\n{''.join(error['stack'])}"
                )
            return True
        return False

    def start_daemon(self, timeout: float = 120) -> None:
        """Start `dagster-daemon run` and wait until the daemons the tests need beat."""
        self._start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE_YAML)])
        started = time.time()

        def healthy() -> bool:
            self._check_alive("daemon")
            statuses = self.graphql(
                """{ instance { daemonHealth { allDaemonStatuses {
                       daemonType healthy lastHeartbeatTime } } } }"""
            )["instance"]["daemonHealth"]["allDaemonStatuses"]
            beating = {
                s["daemonType"]
                for s in statuses
                # A heartbeat from before this start belongs to a daemon since stopped.
                if s["healthy"] and (s["lastHeartbeatTime"] or 0) >= started
            }
            return beating >= WAITED_DAEMONS

        wait_until(healthy, timeout=timeout, interval=1, what="the daemons' heartbeats")

    def stop_daemon(self) -> None:
        """Stop the daemon's process group (the webserver keeps running)."""
        if process := self.processes.pop("daemon", None):
            stop_group(process)

    def stop(self) -> None:
        """Stop every process group this stack started, by pid."""
        for name in list(self.processes):
            stop_group(self.processes.pop(name))

    # --- talking to it -----------------------------------------------------------------

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST a GraphQL query; its ``data``, or :class:`StackError` on errors."""
        response = requests.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": dict(variables or {})},
            timeout=60,
        )
        if not response.ok:
            raise StackError(f"GraphQL HTTP {response.status_code}: {response.text[:2000]}")
        body = response.json()
        if body.get("errors"):
            raise StackError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def client(self) -> DagsterGraphQLClient:
        """dagster-graphql's client for this webserver."""
        return DagsterGraphQLClient("127.0.0.1", port_number=self.port, timeout=60)

    def launch_job(self, job_name: str, *, tags: Mapping[str, str] | None = None) -> str:
        """Launch a job through the webserver (it queues; the daemon starts it); its run id."""
        return self.client().submit_job_execution(
            job_name,
            repository_location_name=LOCATION_NAME,
            repository_name=REPOSITORY_NAME,
            tags=dict(tags or {}),
        )

    def run_status(self, run_id: str) -> dg.DagsterRunStatus:
        return self.client().get_run_status(run_id)

    def wait_for_run(self, run_id: str, timeout: float = 120) -> dg.DagsterRunStatus:
        """The run's final status (SUCCESS, FAILURE or CANCELED)."""
        finished = {
            dg.DagsterRunStatus.SUCCESS,
            dg.DagsterRunStatus.FAILURE,
            dg.DagsterRunStatus.CANCELED,
        }

        def done() -> dg.DagsterRunStatus | None:
            self._check_alive("webserver")
            status = self.run_status(run_id)
            return status if status in finished else None

        return wait_until(done, timeout=timeout, what=f"run {run_id} to finish")

    @contextlib.contextmanager
    def instance(self) -> Iterator[dg.DagsterInstance]:
        """The stack's instance, opened in the test process (for what GraphQL does not say)."""
        names = (*POSTGRES_ENV_NAMES, "DAGSTER_HOME")
        with open_instance(self.home, {k: v for k, v in self.env.items() if k in names}) as opened:
            yield opened


@contextlib.contextmanager
def open_instance(home: Path, env: Mapping[str, str]) -> Iterator[dg.DagsterInstance]:
    """The instance of ``home``, its dagster.yaml read with ``env`` (DAGSTER_PG_* …) set."""
    with temporary_environ(env):
        # Not `with instance`: leaving its context leaves its defs-state storage set
        # (Dagster 1.13.27), which breaks later Definitions loads in the test process.
        instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


def loopback_only_env() -> dict[str, str]:
    """Belt and braces for "nothing leaves this machine": any HTTP client that honours
    proxies (either spelling) fails locally for every host but loopback."""
    proxies = {
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    return {**proxies, **{name.lower(): value for name, value in proxies.items()}}


@contextlib.contextmanager
def start_dagster_stack(
    tmp_dir: Path,
    *,
    postgres_server_url: str,
    fmp_base_url: str,
    fmp_api_key: str,
    env: Mapping[str, str] | None = None,
    instance_overrides: Mapping[str, Any] | None = None,
    daemon: bool = True,
) -> Iterator[DagsterStack]:
    """Start the webserver (and, unless ``daemon=False``, the daemon) on fresh databases.

    ``env`` adds variables for the processes (e.g. QUOTE_PIPELINE_SCHEDULE_*);
    ``instance_overrides`` is merged into the copied dagster.yaml (e.g. shorter run
    monitoring intervals), the storage and everything else staying the project's.
    """
    suffix = uuid.uuid4().hex[:10]
    databases = {"dagster": f"qp_e2e_dagster_{suffix}", "pipeline": f"qp_e2e_pipeline_{suffix}"}
    urls: dict[str, str] = {}
    stack: DagsterStack | None = None
    try:
        for role, name in databases.items():
            urls[role] = create_database(postgres_server_url, name)
        home, log_dir = tmp_dir / "dagster_home", tmp_dir / "logs"
        home.mkdir(parents=True)
        log_dir.mkdir(parents=True)
        config = _merged(yaml.safe_load(DAGSTER_YAML.read_text()), instance_overrides or {})
        (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

        process_env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        process_env.update(
            {
                "DAGSTER_HOME": str(home),
                **postgres_env(urls["dagster"]),
                "QUOTE_PIPELINE_DATABASE_URL": urls["pipeline"],
                "QUOTE_PIPELINE_DATA_DIR": str(tmp_dir / "data"),
                "FMP_BASE_URL": fmp_base_url,
                "FMP_API_KEY": fmp_api_key,
                "PYTHONUNBUFFERED": "1",
                **loopback_only_env(),
                **(env or {}),
            }
        )

        stack = DagsterStack(
            home=home,
            log_dir=log_dir,
            env=process_env,
            port=free_port(),
            database_url=urls["pipeline"],
            dagster_database_url=urls["dagster"],
        )
        stack.start_webserver()
        if daemon:
            stack.start_daemon()
        yield stack
    finally:
        if stack is not None:
            stack.stop()
        for role, name in databases.items():
            if role in urls:
                drop_database(postgres_server_url, name)
