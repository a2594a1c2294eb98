"""The executor is chosen by configuration (QUOTE_PIPELINE_EXECUTOR, or per run), the FMP
steps are queued apart, and `quote-pipeline worker` writes its config without a secret.

No service is started here (the workers' tests are beside this file).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from quote_pipeline.celery_config import (
    DEFAULT_BACKEND,
    DEFAULT_BROKER,
    DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
    FMP_QUEUE,
    QUEUE_TAG,
    CelerySettings,
    mask_url,
)
from quote_pipeline.celery_worker import WorkerError, parse_queues, prepare_worker
from quote_pipeline.definitions import build_definitions
from quote_pipeline.defs.executors import EXECUTOR_NAME
from quote_pipeline.defs.settings import DeploymentSettings
from quote_pipeline.run_policy import (
    DAILY_PRICES_POLICY,
    INTRADAY_BARS_POLICY,
    REFRESH_NEWS_POLICY,
    REFRESH_QUOTES_POLICY,
)

BIN = Path(sys.executable).parent
SECRET = "s3cret-broker-pw"


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMP_API_KEY", "test-key")  # resolved with the rest of a run's config


def executor_default(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, object]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    job = build_definitions().resolve_job_def("refresh_quotes")
    assert job.executor_def.name == EXECUTOR_NAME
    return job.executor_def.config_schema.default_value


def resolved_execution(job: dg.JobDefinition, run_config: dict[str, object]) -> dict[str, object]:
    return dg.validate_run_config(job, run_config)["execution"][EXECUTOR_NAME]


def test_in_process_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert executor_default(monkeypatch) == {"in_process": {}}
    job = build_definitions().resolve_job_def("refresh_quotes")
    # Exactly Dagster's in_process executor config, retries enabled, as before.
    assert resolved_execution(job, {}) == {"in_process": {"retries": {"enabled": {}}}}
    assert job.executor_def.get_requirements({"in_process": {}}) == []


def test_quote_pipeline_executor_celery_makes_celery_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert executor_default(monkeypatch, QUOTE_PIPELINE_EXECUTOR="celery") == {"celery": {}}
    job = build_definitions().resolve_job_def("daily_prices_job")
    celery = resolved_execution(job, {})["celery"]
    assert celery["broker"] == DEFAULT_BROKER
    assert celery["backend"] == DEFAULT_BACKEND
    source = celery["config_source"]
    assert source["task_acks_late"] is True
    assert source["task_reject_on_worker_lost"] is True
    assert source["worker_prefetch_multiplier"] == 1
    assert (
        source["broker_transport_options"]["visibility_timeout"]
        == DEFAULT_VISIBILITY_TIMEOUT_SECONDS
    )
    # Celery needs a reconstructable job, a persistent instance, outputs on disk.
    assert job.executor_def.get_requirements({"celery": celery}) == (
        dg.multiple_process_executor_requirements()
    )


def test_a_broker_url_from_the_environment_stays_there(monkeypatch: pytest.MonkeyPatch) -> None:
    """The executor's default names the variable: the URL (and its password) is in neither
    the definitions nor the launchpad, and each process reads it from its environment."""
    executor_default(
        monkeypatch,
        QUOTE_PIPELINE_EXECUTOR="celery",
        QUOTE_PIPELINE_CELERY_BROKER=f"redis://:{SECRET}@10.1.2.3:6379/0",
        QUOTE_PIPELINE_CELERY_BACKEND=f"redis://:{SECRET}@10.1.2.3:6379/1",
    )
    job = build_definitions().resolve_job_def("refresh_quotes")
    fields = job.executor_def.config_schema.config_type.fields["celery"].config_type.fields
    assert fields["broker"].default_value == {"env": "QUOTE_PIPELINE_CELERY_BROKER"}
    assert fields["backend"].default_value == {"env": "QUOTE_PIPELINE_CELERY_BACKEND"}
    assert SECRET not in repr(job.executor_def.config_schema.default_value)
    assert SECRET not in repr(fields["config_source"].default_value)


def test_a_run_picks_either_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    job = build_definitions().resolve_job_def("refresh_quotes")  # default: in_process
    celery = resolved_execution(job, {"execution": {"config": {"celery": {}}}})["celery"]
    assert celery["broker"] == DEFAULT_BROKER
    custom = resolved_execution(
        job,
        {"execution": {"config": {"celery": {"broker": "redis://broker.internal:6379/3"}}}},
    )
    assert custom["celery"]["broker"] == "redis://broker.internal:6379/3"
    monkeypatch.setenv("QUOTE_PIPELINE_EXECUTOR", "celery")
    job = build_definitions().resolve_job_def("refresh_quotes")
    back = resolved_execution(
        job, {"execution": {"config": {"in_process": {"retries": {"disabled": {}}}}}}
    )
    assert back == {"in_process": {"retries": {"disabled": {}}}}


def test_an_unknown_executor_is_refused() -> None:
    with pytest.raises(ValueError, match="QUOTE_PIPELINE_EXECUTOR must be one of"):
        DeploymentSettings.from_env({"QUOTE_PIPELINE_EXECUTOR": "multiprocess"})
    assert DeploymentSettings.from_env({"QUOTE_PIPELINE_EXECUTOR": "Celery"}).executor == "celery"
    assert DeploymentSettings.from_env({}).executor == "in_process"


def test_the_steps_that_call_the_api_go_to_the_fmp_api_queue() -> None:
    repository = build_definitions().get_repository_def()
    tagged: dict[str, str | None] = {}
    for job in repository.get_all_jobs():
        for node in job.graph.iterate_op_defs():
            tagged[node.name] = node.tags.get(QUEUE_TAG)
            # Every step in the fmp_api pool calls the API, and is queued with it.
            if node.pool == "fmp_api":
                assert tagged[node.name] == FMP_QUEUE, node.name
    assert {name for name, queue in tagged.items() if queue == FMP_QUEUE} == {
        "plan_quote_batches",  # the plan probe
        "fetch_quote_batch",
        "daily_prices",
        "intraday_bars",
        "news_articles",
        "company_profiles",
        "stock_splits",
        "dividends",
    }
    # The database and CPU steps stay on the default queue.
    for name in ("stocks", "daily_prices_adjusted", "daily_metrics", "daily_sentiment"):
        assert tagged[name] is None, name


def test_settings_from_the_environment() -> None:
    settings = CelerySettings.from_env({})
    assert (settings.broker, settings.backend) == (DEFAULT_BROKER, DEFAULT_BACKEND)
    # A killed worker's step is handed on before the shortest run limit fails its run
    # (intraday_bars_job: 20 min), and long enough for any refresh or daily step.
    shortest = min(
        p.max_runtime_seconds
        for p in (
            REFRESH_QUOTES_POLICY,
            DAILY_PRICES_POLICY,
            INTRADAY_BARS_POLICY,
            REFRESH_NEWS_POLICY,
        )
    )
    assert 300 <= settings.visibility_timeout_seconds < shortest
    short = CelerySettings.from_env({"QUOTE_PIPELINE_CELERY_VISIBILITY_TIMEOUT_SECONDS": "15"})
    assert short.config_source()["broker_transport_options"]["visibility_timeout"] == 15
    for bad in ("0", "-3", "soon"):
        with pytest.raises(ValueError, match="VISIBILITY_TIMEOUT"):
            CelerySettings.from_env({"QUOTE_PIPELINE_CELERY_VISIBILITY_TIMEOUT_SECONDS": bad})
    with pytest.raises(ValueError, match="must be a URL"):
        CelerySettings.from_env({"QUOTE_PIPELINE_CELERY_BROKER": "localhost:6379"})


def test_mask_url() -> None:
    assert mask_url(f"redis://:{SECRET}@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url(f"amqp://guest:{SECRET}@rabbit:5672//") == "amqp://guest:***@rabbit:5672//"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_queues_are_checked() -> None:
    assert parse_queues(None) == ("fmp_api", "dagster")
    assert parse_queues(" fmp_api , fmp_api,cpu") == ("fmp_api", "cpu")
    with pytest.raises(WorkerError, match="at most 4"):
        parse_queues("a,b,c,d,e")
    with pytest.raises(WorkerError, match="no queue"):
        parse_queues(",")
    with pytest.raises(WorkerError, match="not a queue name"):
        parse_queues("fmp api")


@pytest.fixture
def sqlite_home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME whose instance opens without a server (SQLite storage)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def test_the_worker_command_writes_its_config_without_the_password(
    sqlite_home: Path, tmp_path: Path
) -> None:
    env = {
        "PATH": str(BIN),
        "DAGSTER_HOME": str(sqlite_home),
        "QUOTE_PIPELINE_CELERY_BROKER": f"redis://:{SECRET}@127.0.0.1:6390/0",
        "QUOTE_PIPELINE_CELERY_VISIBILITY_TIMEOUT_SECONDS": "900",
        "QUOTE_PIPELINE_DATABASE_URL": "postgresql://app@db/quotes",
    }
    result = subprocess.run(
        [str(BIN / "quote-pipeline"), "worker", "--dry-run", "--name", "w7", "--concurrency", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert SECRET not in output
    assert "redis://:***@127.0.0.1:6390/0" in output
    argv = result.stdout.splitlines()[0].split()
    assert argv[1:6] == ["-m", "celery", "-A", "dagster_celery.app", "worker"]
    # One comma-separated -Q: Celery keeps only the last of several.
    assert argv.count("-Q") == 1 and argv[argv.index("-Q") + 1] == "fmp_api,dagster"
    assert argv[argv.index("-n") + 1] == "w7@%h"
    assert argv[argv.index("-c") + 1] == "3"

    written = list((sqlite_home / "dagster_celery").rglob("*"))
    files = [p for p in written if p.is_file()]
    assert files and all(SECRET not in p.read_text() for p in files)
    (config_yaml,) = [p for p in files if p.suffix == ".yaml"]
    source = yaml.safe_load(config_yaml.read_text())["execution"]["config"]["config_source"]
    assert source == CelerySettings.from_env(env).config_source()
    assert source["broker_transport_options"]["visibility_timeout"] == 900
    (module,) = [p for p in files if p.name == "dagster_celery_config.py"]
    assert "task_acks_late = True" in module.read_text()


def test_the_worker_broker_reaches_celery_through_its_environment(sqlite_home: Path) -> None:
    launch = prepare_worker(
        queues=("cpu",),
        name="w9",
        environ={
            "DAGSTER_HOME": str(sqlite_home),
            "QUOTE_PIPELINE_CELERY_BROKER": f"redis://:{SECRET}@127.0.0.1:6390/4",
            "PYTHONPATH": "/opt/extra",
        },
        database_url="postgresql://app@db/quotes",
    )
    assert launch.env["CELERY_BROKER_URL"] == f"redis://:{SECRET}@127.0.0.1:6390/4"
    assert launch.env["CELERY_RESULT_BACKEND"] == DEFAULT_BACKEND
    assert launch.env["QUOTE_PIPELINE_DATABASE_URL"] == "postgresql://app@db/quotes"
    assert launch.env["PYTHONPATH"] == f"{launch.config_dir}:/opt/extra"
    assert "-c" not in launch.argv  # Celery's default: one pool process per CPU
    assert SECRET not in launch.description


def test_the_worker_needs_dagster_home(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "quote-pipeline"), "worker", "--dry-run"],
        env={"PATH": str(BIN)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "DAGSTER_HOME must name the production instance" in result.stderr
    with pytest.raises(WorkerError, match="not a directory"):
        prepare_worker(environ={"DAGSTER_HOME": str(tmp_path / "missing")})


def test_the_worker_needs_the_shared_data_database(sqlite_home: Path) -> None:
    with pytest.raises(WorkerError, match="QUOTE_PIPELINE_DATABASE_URL"):
        prepare_worker(environ={"DAGSTER_HOME": str(sqlite_home)})


def test_a_bad_broker_is_one_line_without_its_password() -> None:
    for bad in (f"user:{SECRET}@redis:6379/0", f"redis://:{SECRET}@host:abc/0"):
        with pytest.raises(ValueError) as raised:
            CelerySettings.from_env({"QUOTE_PIPELINE_CELERY_BROKER": bad})
        assert SECRET not in str(raised.value)
        assert "QUOTE_PIPELINE_CELERY_BROKER" in str(raised.value)
