"""Celery settings of the deployment, read from the environment in one place: the celery
executor (``defs/executors.py``, in the run worker that submits steps) and the workers
(``quote-pipeline worker``, which execute them) both take broker, result backend and Celery
settings from here, so the two sides cannot disagree.

Plain Python, no Dagster and no Celery import: the worker command reads it before it starts
anything, and the definitions read it when they load.

The URLs may carry a password: what is shown (the launchpad, a log line) is the variable's
name or the URL masked (:func:`mask_url`), never the password.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BROKER_ENV = "QUOTE_PIPELINE_CELERY_BROKER"
BACKEND_ENV = "QUOTE_PIPELINE_CELERY_BACKEND"
VISIBILITY_TIMEOUT_ENV = "QUOTE_PIPELINE_CELERY_VISIBILITY_TIMEOUT_SECONDS"

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
# Results in another database of the same Redis: the queues (db 0) stay readable on their own
# (`redis-cli -n 0 llen fmp_api`), and the task results (db 1, kept a day) apart from them.
DEFAULT_BACKEND = "redis://127.0.0.1:6379/1"
# How long a step's task may stay unacknowledged before Redis hands it to another worker. It
# must exceed the longest step, or a step still running is started a second time elsewhere;
# and it is how long a step of a killed worker waits before it is re-run, which must come
# before run monitoring fails the run (run_policy.py: intraday_bars_job after 20 min). Ten
# minutes: a refresh's or a day's step takes seconds; raise it for backfills of years whose
# single step runs longer (and their runs' max runtime with it).
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 600

# dagster-celery's step tag naming the queue a step's task is sent to (step tags only: a
# run tag is ignored). Untagged steps go to DEFAULT_QUEUE.
QUEUE_TAG = "dagster-celery/queue"
FMP_QUEUE = "fmp_api"
"""Steps that call the FMP API. Their workers need little concurrency: each step already runs
its requests concurrently, and the plan's cap is counted in the data database."""
DEFAULT_QUEUE = "dagster"
"""Everything else: database writes, derivations, analytics (CPU)."""
WORKER_QUEUES = (FMP_QUEUE, DEFAULT_QUEUE)
# dagster-celery refuses a worker on more than four queues (a Celery 4 bug it guards against).
MAX_WORKER_QUEUES = 4


def fmp_queue_tags() -> dict[str, str]:
    """The op tags of a step that calls the FMP API: its task goes to the ``fmp_api`` queue
    (the in-process executor ignores them)."""
    return {QUEUE_TAG: FMP_QUEUE}


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (``redis://:***@host:6379/0``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


@dataclass(frozen=True, slots=True)
class CelerySettings:
    """The broker, the result backend and the Celery settings of this deployment."""

    broker: str = DEFAULT_BROKER
    backend: str = DEFAULT_BACKEND
    broker_from_env: bool = False
    """True when ``broker`` came from QUOTE_PIPELINE_CELERY_BROKER (then the executor's config
    names the variable, not the URL)."""
    backend_from_env: bool = False
    visibility_timeout_seconds: int = DEFAULT_VISIBILITY_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CelerySettings:
        env = os.environ if environ is None else environ
        broker = env.get(BROKER_ENV, "").strip()
        backend = env.get(BACKEND_ENV, "").strip()
        raw_timeout = env.get(VISIBILITY_TIMEOUT_ENV, "").strip()
        timeout = DEFAULT_VISIBILITY_TIMEOUT_SECONDS
        if raw_timeout:
            try:
                timeout = int(raw_timeout)
            except ValueError:
                timeout = 0
            if timeout < 1:
                raise ValueError(
                    f"{VISIBILITY_TIMEOUT_ENV} must be a positive whole number of seconds, "
                    f"not {raw_timeout!r}"
                )
        for name, url in ((BROKER_ENV, broker), (BACKEND_ENV, backend)):
            # The value is not echoed: it may hold a password.
            if url and "://" not in url:
                raise ValueError(f"{name} must be a URL like redis://host:6379/0")
            try:
                urlsplit(url).port  # noqa: B018 (a bad port raises here, not in a log line)
            except ValueError:
                raise ValueError(
                    f"{name} has an invalid port: expected redis://host:6379/0"
                ) from None
        return cls(
            broker=broker or DEFAULT_BROKER,
            backend=backend or DEFAULT_BACKEND,
            broker_from_env=bool(broker),
            backend_from_env=bool(backend),
            visibility_timeout_seconds=timeout,
        )

    def config_source(self) -> dict[str, Any]:
        """Celery settings of both sides, merged over dagster-celery's defaults.

        A worker killed mid-step (SIGKILL, a lost machine) must not lose the step, nor hang
        the run that waits for it: the task is acknowledged only when the step has finished
        (acks_late), a pool process dying rejects it back to the queue (reject_on_worker_lost),
        and a worker takes one task per pool process at a time (prefetch 1), so that what a
        dead worker held is only what it was running. Redis hands an unacknowledged task to
        another worker after ``visibility_timeout``; the restore is checked every 2 s.
        """
        return {
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "broker_connection_retry_on_startup": True,
            "broker_transport_options": {
                # dagster-celery's own (publish retries), kept: this dict replaces theirs.
                "max_retries": 3,
                "interval_start": 0,
                "interval_step": 0.2,
                "interval_max": 0.5,
                "visibility_timeout": self.visibility_timeout_seconds,
                "unacked_restore_interval": 2,
                "unacked_restore_throttle": 1,
            },
        }

    def executor_config(self) -> dict[str, Any]:
        """The celery executor's config (dagster-celery's schema): a URL that came from the
        environment is given as ``{"env": NAME}``, so neither the definitions nor the
        launchpad hold it, and each process resolves it from its own environment."""
        return {
            "broker": {"env": BROKER_ENV} if self.broker_from_env else self.broker,
            "backend": {"env": BACKEND_ENV} if self.backend_from_env else self.backend,
            "config_source": self.config_source(),
        }

    def worker_yaml_config(self) -> dict[str, Any]:
        """The ``-y`` file of ``dagster-celery worker start``: the Celery settings only.

        dagster-celery writes what this file holds into a Python module under DAGSTER_HOME;
        the URLs are not in it (see :meth:`worker_env`), so no password is written to disk.
        """
        return {"execution": {"config": {"config_source": self.config_source()}}}

    def worker_env(self) -> dict[str, str]:
        """The variables a worker's Celery reads its broker and result backend from (Celery
        prefers them to any setting in a file)."""
        return {"CELERY_BROKER_URL": self.broker, "CELERY_RESULT_BACKEND": self.backend}

    def describe(self) -> str:
        """Broker and backend for a log line, passwords masked."""
        return f"broker {mask_url(self.broker)}, results {mask_url(self.backend)}"


__all__ = [
    "BACKEND_ENV",
    "BROKER_ENV",
    "DEFAULT_BACKEND",
    "DEFAULT_BROKER",
    "DEFAULT_QUEUE",
    "DEFAULT_VISIBILITY_TIMEOUT_SECONDS",
    "FMP_QUEUE",
    "QUEUE_TAG",
    "VISIBILITY_TIMEOUT_ENV",
    "CelerySettings",
    "fmp_queue_tags",
    "mask_url",
]
