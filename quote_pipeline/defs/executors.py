"""The executor of every job: in process (the default), or Celery workers on any number of
machines (`dagster-celery`), chosen per deployment and per run.

``execution: config: in_process: {}`` is Dagster's in-process executor, as before: one run
process executes every step (right for the quote refresh, whose work is HTTP waiting inside
each step). ``execution: config: celery: {}`` submits each step as a Celery task to a broker,
executed by ``quote-pipeline worker`` processes (wrapping ``dagster-celery worker start``):
a step tagged ``dagster-celery/queue: fmp_api`` (the steps that call the FMP API) goes to the
``fmp_api`` queue, every other step to ``dagster``.

The default of both is chosen by ``QUOTE_PIPELINE_EXECUTOR`` (``in_process`` unless set to
``celery``) when the definitions load; the launchpad picks either one for a run. Broker,
result backend and Celery settings come from :mod:`quote_pipeline.celery_config`, the same
module the workers read: a URL set by ``QUOTE_PIPELINE_CELERY_BROKER`` / ``_BACKEND`` is given
to the executor as ``{"env": NAME}`` (never the URL itself, which may hold a password).

Celery needs what Dagster requires of any executor that leaves the run process: a
reconstructable job (every launch through the webserver, the daemon or `dagster job execute`;
not ``execute_in_process``), an instance that is not ephemeral (DAGSTER_HOME: the production
instance on PostgreSQL) and outputs that outlive a process (the project's IO manager pickles
them under the instance's storage directory, which must then be one directory every worker
reads: the same machine, or a shared file system).
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    _core_in_process_executor_creation,
)
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.executor.base import Executor
from dagster._core.executor.init import InitExecutorContext

from quote_pipeline.celery_config import CelerySettings
from quote_pipeline.defs.settings import DeploymentSettings

EXECUTOR_NAME = "in_process_or_celery"


def celery_config_schema(celery: CelerySettings) -> dict[str, dg.Field]:
    """dagster-celery's executor config, with this deployment's broker, backend and Celery
    settings as defaults (editable per run in the launchpad)."""
    defaults = celery.executor_config()
    return {
        "broker": dg.Field(
            dg.StringSource,
            default_value=defaults["broker"],
            description="The Celery broker's URL (the workers' too). Default: the "
            "QUOTE_PIPELINE_CELERY_BROKER variable, else redis://127.0.0.1:6379/0.",
        ),
        "backend": dg.Field(
            dg.StringSource,
            default_value=defaults["backend"],
            description="The Celery result backend's URL (the workers' too). Default: the "
            "QUOTE_PIPELINE_CELERY_BACKEND variable, else redis://127.0.0.1:6379/1.",
        ),
        "include": dg.Field(
            [str], is_required=False, description="Modules every worker should import."
        ),
        "config_source": dg.Field(
            dg.Permissive(),
            default_value=defaults["config_source"],
            description="Celery settings, merged over dagster-celery's. The default is the "
            "workers' (quote_pipeline/celery_config.py): acknowledge a step's task when it "
            "ends, re-queue what a dead worker held after broker_transport_options."
            "visibility_timeout (QUOTE_PIPELINE_CELERY_VISIBILITY_TIMEOUT_SECONDS).",
        ),
        "retries": get_retries_config(),
    }


def build_executor(
    settings: DeploymentSettings, celery: CelerySettings | None = None
) -> dg.ExecutorDefinition:
    """The executor of every job, defaulting to ``settings.executor``."""
    celery = celery or CelerySettings.from_env()

    @dg.executor(
        name=EXECUTOR_NAME,
        config_schema=dg.Field(
            dg.Selector(
                {
                    "in_process": IN_PROC_CONFIG,
                    "celery": dg.Field(
                        celery_config_schema(celery),
                        description="Execute each step as a Celery task on the workers "
                        "(`quote-pipeline worker`), queue by the step's dagster-celery/queue "
                        "tag (fmp_api for the steps that call the API, else dagster).",
                    ),
                }
            ),
            default_value={settings.executor: {}},
        ),
        requirements=lambda config: (
            dg.multiple_process_executor_requirements() if "celery" in config else []
        ),
    )
    def in_process_or_celery(init_context: InitExecutorContext) -> Executor:
        """In process (Dagster's in_process executor), or Celery workers (dagster-celery)."""
        config: dict[str, Any] = dict(init_context.executor_config)
        if "celery" not in config:
            return _core_in_process_executor_creation(config["in_process"])
        # Imported here: celery and kombu are loaded by runs that use them, not by every
        # process that loads the definitions.
        from dagster_celery.executor import CeleryExecutor

        chosen = config["celery"]
        return CeleryExecutor(
            broker=chosen["broker"],
            backend=chosen["backend"],
            include=chosen.get("include"),
            config_source=chosen.get("config_source"),
            retries=RetryMode.from_config(chosen["retries"]),
        )

    return in_process_or_celery


__all__ = ["EXECUTOR_NAME", "build_executor", "celery_config_schema"]
