"""Real services for the celery executor's tests (and the benchmark): a private Redis, a
Dagster instance on PostgreSQL, and `quote-pipeline worker` processes.

- :func:`start_redis` runs ``redis-server`` on a free loopback port in a temporary directory
  (nothing saved to disk), so no test touches a Redis someone else uses.
- :class:`CeleryDeployment` is what a production deployment has, on this machine: a
  DAGSTER_HOME with the project's dagster.yaml (storage in a new PostgreSQL database), a data
  database, the broker, and the environment every process gets (the run worker's, which is
  the test process, and each Celery worker's).
- :class:`WorkerPool` starts `quote-pipeline worker` processes, each in its own process group
  (the command execs Celery, whose pool processes are its children), and kills whole groups:
  ``kill(name)`` as a lost machine would (SIGKILL), ``stop()`` at the end, whatever happened.
- :func:`run_job` executes a job the way `dagster job execute` does (a reconstructable job
  from ``quote_pipeline.definitions``, the instance from DAGSTER_HOME) in a daemon thread, so
  that the test can watch, or kill workers, while it runs; ``wait`` has a timeout, since a
  run whose steps are lost would wait for them forever.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from quote_pipeline_tests.support.dagster_processes import (
    BIN,
    DAGSTER_YAML,
    PROJECT_ROOT,
    free_port,
    loopback_only_env,
    open_instance,
    postgres_env,
    stop_group,
    wait_until,
)
from quote_pipeline_tests.support.postgres import create_database, drop_database

CELERY_WORKER_EVENT = "in celery worker"  # dagster-celery's ENGINE_EVENT "Executing steps …"
WORKER_METADATA_KEY = "Celery worker"
_SCRUBBED_PREFIXES = ("FMP_", "QUOTE_PIPELINE_", "DAGSTER_", "CELERY_")


class RedisUnavailable(RuntimeError):
    """redis-server is not installed, or would not start."""


@dataclass
class RedisServer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        stop_group(self.process, grace=5)


def start_redis(directory: Path, timeout: float = 20) -> RedisServer:
    """A private ``redis-server`` on a free loopback port, keeping nothing on disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(
            "redis-server is not installed (Debian: apt-get install redis-server); the celery "
            "executor's tests need a real broker"
        )
    import redis

    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", str(directory), "--logfile", str(directory / "redis.log")),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = RedisServer(port, directory, process)

    def up() -> bool:
        if process.poll() is not None:
            log = directory / "redis.log"
            raise RedisUnavailable(
                f"redis-server exited with {process.returncode}: "
                f"{log.read_text()[-2000:] if log.exists() else ''}"
            )
        try:
            return bool(redis.Redis(port=port, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    try:
        wait_until(up, timeout=timeout, interval=0.1, what=f"redis-server on port {port}")
    except BaseException:
        server.stop()
        raise
    return server


def group_alive(pgid: int) -> bool:
    """True while any process of the group ``pgid`` exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a group of another user's
        return True
    return True


@dataclass
class CeleryDeployment:
    """DAGSTER_HOME on PostgreSQL, a data database, a broker, and the processes' environment."""

    home: Path
    env: dict[str, str]
    """What every process of the deployment gets: Dagster's storage (DAGSTER_HOME and
    DAGSTER_PG_*), the data database, the API, the executor and its broker."""
    data_url: str
    dagster_url: str

    @contextlib.contextmanager
    def instance(self) -> Iterator[dg.DagsterInstance]:
        """The deployment's instance (its dagster.yaml reads DAGSTER_PG_* from os.environ)."""
        dagster_env = {k: v for k, v in self.env.items() if k.startswith("DAGSTER_")}
        with open_instance(self.home, dagster_env) as instance:
            yield instance


@contextlib.contextmanager
def celery_deployment(
    tmp_dir: Path,
    *,
    postgres_server_url: str,
    broker_url: str,
    backend_url: str,
    env: Mapping[str, str] | None = None,
) -> Iterator[CeleryDeployment]:
    """New databases for Dagster's storage and the data, a DAGSTER_HOME with the project's
    dagster.yaml; both databases dropped on the way out."""
    suffix = uuid.uuid4().hex[:10]
    names = {"dagster": f"qp_celery_dagster_{suffix}", "data": f"qp_celery_data_{suffix}"}
    urls: dict[str, str] = {}
    try:
        for role, name in names.items():
            urls[role] = create_database(postgres_server_url, name)
        home = tmp_dir / "dagster_home"
        home.mkdir(parents=True)
        config = yaml.safe_load(DAGSTER_YAML.read_text())
        (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        process_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)},
            "DAGSTER_HOME": str(home),
            **postgres_env(urls["dagster"]),
            "QUOTE_PIPELINE_DATABASE_URL": urls["data"],
            "QUOTE_PIPELINE_DATA_DIR": str(tmp_dir / "data"),
            "QUOTE_PIPELINE_EXECUTOR": "celery",
            "QUOTE_PIPELINE_CELERY_BROKER": broker_url,
            "QUOTE_PIPELINE_CELERY_BACKEND": backend_url,
            "PYTHONUNBUFFERED": "1",
            **loopback_only_env(),
            **(env or {}),
        }
        yield CeleryDeployment(home, process_env, urls["data"], urls["dagster"])
    finally:
        for role, name in names.items():
            if role in urls:
                drop_database(postgres_server_url, name)


@dataclass
class WorkerPool:
    """`quote-pipeline worker` processes by node name, each in its own process group."""

    env: dict[str, str]
    log_dir: Path
    concurrency: int = 2
    queues: str = "fmp_api,dagster"
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _log_offsets: dict[str, int] = field(default_factory=dict)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"worker-{name}.log"

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_path(name)
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self, *names: str, timeout: float = 90) -> None:
        """Start the named workers and wait until each says it is ready."""
        for name in names:
            if name in self.processes and self.processes[name].poll() is None:
                raise RuntimeError(f"worker {name} is already running")
            path = self.log_path(name)
            self._log_offsets[name] = path.stat().st_size if path.exists() else 0
            with path.open("ab") as log:
                self.processes[name] = subprocess.Popen(
                    [
                        str(BIN / "quote-pipeline"),
                        "worker",
                        *("--name", name, "--queues", self.queues),
                        *("--concurrency", str(self.concurrency)),
                    ],
                    cwd=PROJECT_ROOT,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        for name in names:
            wait_until(lambda name=name: self._ready(name), timeout=timeout, what=f"worker {name}")

    def _ready(self, name: str) -> bool:
        process = self.processes[name]
        if process.poll() is not None:
            raise RuntimeError(
                f"worker {name} exited with {process.returncode}:\n{self.log_tail(name)}"
            )
        with self.log_path(name).open("rb") as log:
            log.seek(self._log_offsets[name])
            text = log.read().decode(errors="replace")
        return f"{name}@" in text and " ready." in text

    def alive(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and group_alive(process.pid)

    def ensure_running(self, *names: str) -> None:
        """Start again whichever of ``names`` is not running (a test killed it)."""
        dead = [n for n in names if not self.alive(n) or self.processes[n].poll() is not None]
        for name in dead:
            if name in self.processes:
                stop_group(self.processes.pop(name), grace=0)
        if dead:
            self.start(*dead)

    def kill(self, name: str) -> int:
        """SIGKILL the worker's whole process group (Celery and its pool: a lost machine);
        returns the group id, gone when this returns."""
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        wait_until(
            lambda: not group_alive(process.pid),
            timeout=10,
            interval=0.05,
            what=f"worker {name}'s processes to die",
        )
        return process.pid

    def stop(self) -> None:
        """Stop every worker's process group (SIGTERM: Celery's warm shutdown, then SIGKILL)."""
        for name in list(self.processes):
            stop_group(self.processes.pop(name), grace=10)


def hostname(name: str) -> str:
    """The Celery node name of worker ``name`` on this machine (``name@host``)."""
    import socket

    return f"{name}@{socket.gethostname()}"


def step_workers(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[str]]:
    """Step key -> the Celery workers that started it, in order (from dagster-celery's
    ENGINE_EVENT "Executing steps … in celery worker", metadata "Celery worker")."""
    found: dict[str, list[str]] = defaultdict(list)
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        if event is None or CELERY_WORKER_EVENT not in (record.message or ""):
            continue
        metadata = event.engine_event_data.metadata
        found[record.step_key or ""].append(str(metadata[WORKER_METADATA_KEY].value))
    return dict(found)


def step_event_counts(instance: dg.DagsterInstance, run_id: str, step_key: str) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for record in instance.all_logs(run_id):
        if record.step_key == step_key and record.dagster_event is not None:
            counts[record.dagster_event.event_type_value] += 1
    return dict(counts)


def reconstructable_job(name: str) -> Any:
    """``name`` from ``quote_pipeline.definitions``, as `dagster job execute -m
    quote_pipeline.definitions -j NAME` loads it: any process can load it again."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    repository = ReconstructableRepository.for_module(
        "quote_pipeline.definitions", "defs", working_directory=str(PROJECT_ROOT)
    )
    return repository.get_reconstructable_job(name)


@dataclass
class RunHandle:
    """A run executing in a daemon thread of this process (its run worker)."""

    thread: threading.Thread
    tag: str
    outcome: dict[str, Any] = field(default_factory=dict)

    def wait(self, timeout: float) -> dg.DagsterRunStatus:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError(f"the run did not finish within {timeout:.0f} s")
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome["status"]

    def run_id(self, instance: dg.DagsterInstance, timeout: float = 30) -> str:
        """The run's id, once it exists."""

        def find() -> str | None:
            if "error" in self.outcome:  # it failed before it made a run (its config)
                raise self.outcome["error"]
            runs = instance.get_runs(dg.RunsFilter(tags={"quote_pipeline_test/launch": self.tag}))
            return runs[0].run_id if runs else None

        return wait_until(find, timeout=timeout, interval=0.2, what="the run to be created")


def run_job(
    deployment: CeleryDeployment, job_name: str, run_config: Mapping[str, Any] | None = None
) -> RunHandle:
    """Execute ``job_name`` with ``run_config`` in a daemon thread, on the deployment's
    instance; the os.environ of the test (set from ``deployment.env``) is the run worker's."""
    tag = uuid.uuid4().hex
    handle: RunHandle

    def execute() -> None:
        try:
            with deployment.instance() as instance:
                result = dg.execute_job(
                    reconstructable_job(job_name),
                    instance=instance,
                    run_config=dict(run_config or {}),
                    tags={"quote_pipeline_test/launch": tag},
                    raise_on_error=False,
                )
                handle.outcome["status"] = instance.get_run_by_id(result.run_id).status  # type: ignore[union-attr]
                handle.outcome["run_id"] = result.run_id
        except BaseException as exc:  # reported by wait()
            handle.outcome["error"] = exc

    handle = RunHandle(threading.Thread(target=execute, daemon=True, name=f"run-{tag}"), tag)
    handle.thread.start()
    return handle


def busiest_minute(times: list[float]) -> int:
    """Most requests in any 60 s window starting at a request."""
    times = sorted(times)
    return max(
        (sum(1 for t in times[i:] if t < start + 60) for i, start in enumerate(times)), default=0
    )


def quote_tables(data_url: str) -> tuple[list[Any], int, int]:
    """(stocks rows sorted by ticker, quote_snapshots rows, distinct (ticker, quoted_at))."""
    import sqlalchemy as sa

    from quote_pipeline.storage import create_db_engine, read_stocks
    from quote_pipeline.storage.schema import quote_snapshots

    engine = create_db_engine(data_url)
    try:
        rows = read_stocks(engine)
        with engine.connect() as conn:
            snapshots = conn.scalar(sa.select(sa.func.count()).select_from(quote_snapshots))
            distinct = conn.scalar(
                sa.select(sa.func.count()).select_from(
                    sa.select(quote_snapshots.c.ticker, quote_snapshots.c.quoted_at)
                    .distinct()
                    .subquery()
                )
            )
    finally:
        engine.dispose()
    return rows, int(snapshots or 0), int(distinct or 0)


def rows_differing_from_sandbox(
    rows: list[Any], *, seed: int = 0, generation: int = 0
) -> list[str]:
    """Tickers whose stored price, change or volume is not exactly the sandbox's quote."""
    from quote_pipeline.sandbox.market import simulated_quote

    wrong = []
    for row in rows:
        served = simulated_quote(row.ticker, seed=seed, generation=generation)
        if (row.price, row.change, row.volume) != (
            served["price"],
            served["change"],
            served["volume"],
        ):
            wrong.append(row.ticker)
    return wrong
