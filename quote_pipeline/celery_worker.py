"""`quote-pipeline worker`: a Celery worker that executes the steps of runs using the celery
executor, configured from the same settings as the executor (:mod:`quote_pipeline.celery_config`).

It does what ``dagster-celery worker start -A dagster_celery.app -y worker.yaml -q … -n …
-- -c N`` does — write the worker's YAML, turn it into dagster-celery's config module under
``$DAGSTER_HOME/dagster_celery/config/`` (dagster-celery's own function), and start
``celery -A dagster_celery.app worker`` with its arguments — with three differences. The
queues are one comma-separated ``-Q``: Celery 5 keeps only the last of several, which is what
``-q fmp_api -q dagster`` hands it (the worker would never take an fmp_api step). The
project's definitions are imported before the pool forks. And Celery replaces this process
instead of running as its child: `dagster-celery worker start` waits on Celery
with ``subprocess.check_call``, so a SIGTERM to it (a supervisor stopping the service, a
deploy restarting it) ends the wrapper and leaves the real worker running, orphaned, on the
old code (seen with dagster-celery 0.29.27); and on Ctrl-C ``check_call`` kills its child.
Here SIGTERM (or one Ctrl-C) is Celery's own warm shutdown: the running steps finish, then
the worker exits; SIGQUIT (or a second Ctrl-C) stops at once, and the unfinished steps are
handed to another worker (see celery_config.py).

The broker and result backend reach Celery as CELERY_BROKER_URL / CELERY_RESULT_BACKEND
(which Celery prefers to any file), not through the YAML: dagster-celery copies the YAML into
a Python module on disk, and a broker URL may hold a password.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from quote_pipeline.celery_config import (
    MAX_WORKER_QUEUES,
    WORKER_QUEUES,
    CelerySettings,
)

CELERY_APP = "dagster_celery.app"
# Imported by the worker before it forks its pool: each pool process starts with Dagster and
# the project loaded instead of importing them at its first step.
PRELOADED_MODULE = "quote_pipeline.definitions"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class WorkerError(Exception):
    """The worker cannot start as asked (usage, DAGSTER_HOME, settings)."""


@dataclass(frozen=True)
class WorkerLaunch:
    """What ``quote-pipeline worker`` executes."""

    argv: list[str]
    env: dict[str, str]
    yaml_path: Path
    config_dir: Path
    description: str


def parse_queues(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Queue names from ``fmp_api,dagster`` (or a list); at most four, each once."""
    if text is None:
        return WORKER_QUEUES
    parts = text.split(",") if isinstance(text, str) else list(text)
    queues = tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))
    if not queues:
        raise WorkerError("--queues names no queue (e.g. --queues fmp_api,dagster)")
    if len(queues) > MAX_WORKER_QUEUES:
        raise WorkerError(
            f"a worker listens on at most {MAX_WORKER_QUEUES} queues (dagster-celery's limit), "
            f"not {len(queues)}: start another worker for the others"
        )
    for queue in queues:
        if not _NAME.match(queue):
            raise WorkerError(f"{queue!r} is not a queue name (letters, digits, _ . -)")
    return queues


def prepare_worker(
    *,
    queues: Sequence[str] = WORKER_QUEUES,
    concurrency: int | None = None,
    name: str | None = None,
    loglevel: str = "INFO",
    database_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> WorkerLaunch:
    """Write the worker's YAML and dagster-celery's config module; the command to exec."""
    env = dict(os.environ if environ is None else environ)
    home = env.get("DAGSTER_HOME", "").strip()
    if not home or not Path(home).is_dir():
        raise WorkerError(
            "DAGSTER_HOME must name the production instance's directory (its dagster.yaml, "
            "storage on PostgreSQL): a worker records its steps' events there"
            + (f"; {home!r} is not a directory" if home else "")
        )
    if not (database_url or env.get("QUOTE_PIPELINE_DATABASE_URL", "").strip()):
        # Without it a worker would write its steps' rows to a SQLite file of its own machine,
        # and count the API calls there, away from the rate cap: a run that "succeeds".
        raise WorkerError(
            "QUOTE_PIPELINE_DATABASE_URL (or --database-url) must name the data database every "
            "process shares: a worker writes its steps' rows and counts API calls there"
        )
    if concurrency is not None and concurrency < 1:
        raise WorkerError(f"--concurrency must be at least 1, not {concurrency}")
    node = name or f"quote_pipeline-{uuid.uuid4().hex[:6]}"
    if not _NAME.match(node):
        raise WorkerError(f"{node!r} is not a worker name (letters, digits, _ . -)")
    try:
        settings = CelerySettings.from_env(env)
    except ValueError as exc:
        raise WorkerError(str(exc)) from None

    folder = Path(home) / "dagster_celery"
    folder.mkdir(parents=True, exist_ok=True)
    yaml_path = folder / f"quote_pipeline_worker-{node}.yaml"
    _write_atomically(
        yaml_path,
        "# Written by `quote-pipeline worker` from quote_pipeline/celery_config.py; the broker\n"
        "# and result backend are given to Celery as CELERY_BROKER_URL / CELERY_RESULT_BACKEND.\n"
        + yaml.safe_dump(settings.worker_yaml_config(), sort_keys=False),
    )
    config_dir = Path(_dagster_celery_config_dir(yaml_path, home))

    argv = [
        sys.executable, "-m", "celery", "-A", CELERY_APP, "worker",
        "--prefetch-multiplier=1", "--loglevel", loglevel,
        # One comma-separated -Q: Celery 5 keeps only the last of several (which is what
        # `dagster-celery worker start -q a -q b` passes it).
        "-Q", ",".join(queues),
        "-I", PRELOADED_MODULE,
        "-n", f"{node}@%h",
        *(["-c", str(concurrency)] if concurrency else []),
    ]  # fmt: skip
    worker_env = {**env, **settings.worker_env()}
    # Celery's Django fix-up loads the Django project this variable names: a worker started
    # from a Django app's environment is not one.
    worker_env.pop("DJANGO_SETTINGS_MODULE", None)
    if database_url:
        worker_env["QUOTE_PIPELINE_DATABASE_URL"] = database_url
    worker_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(config_dir), env.get("PYTHONPATH", "")) if p
    )
    description = (
        f"quote-pipeline worker: Celery worker {node}@<host> on queue(s) {', '.join(queues)}, "
        f"concurrency {concurrency or 'one per CPU'}; {settings.describe()}; visibility "
        f"timeout {settings.visibility_timeout_seconds} s; instance {home}"
    )
    return WorkerLaunch(argv, worker_env, yaml_path, config_dir, description)


def exec_worker(launch: WorkerLaunch) -> None:
    """Replace this process with the Celery worker (never returns)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(launch.argv[0], launch.argv, launch.env)


def _dagster_celery_config_dir(yaml_path: Path, home: str) -> str:
    """dagster-celery's config module for ``yaml_path``, as `dagster-celery worker start`
    writes it (under the instance's directory, so it opens the instance: DAGSTER_HOME and its
    DAGSTER_PG_* variables must be right)."""
    saved = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = home
    try:
        from dagster_celery.cli import get_config_dir

        return get_config_dir(str(yaml_path))
    except ImportError:
        raise WorkerError(
            "dagster-celery is not installed: pip install 'dagster-celery[redis]' (see "
            "pyproject.toml for the version)"
        ) from None
    except Exception as exc:  # the instance would not open: say so in one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WorkerError(f"cannot open the Dagster instance in {home}: {first}") from None
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = saved


def _write_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(text)
    os.chmod(f.name, 0o600)
    os.replace(f.name, path)


__all__ = ["WorkerError", "WorkerLaunch", "exec_worker", "parse_queues", "prepare_worker"]
