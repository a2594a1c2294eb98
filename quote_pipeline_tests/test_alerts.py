"""Failure alerts, end to end: real runs on a real Dagster instance, the alert sensors ticked as
the daemon ticks them (cursor kept between ticks), and a real HTTP receiver on 127.0.0.1
recording what the webhook was sent."""

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import pytest

from quote_pipeline import alerts
from quote_pipeline.defs.alerts.sensors import (
    CHECK_FAILURE_ALERTS,
    RUN_FAILURE_ALERTS,
    build_check_failure_alert_sensor,
    build_run_failure_alert_sensor,
)
from quote_pipeline.sandbox import FaultConfig
from quote_pipeline_tests.conftest import SANDBOX_KEY, SandboxFactory
from quote_pipeline_tests.helpers import pipeline_definitions, run_refresh

WEBHOOK_PATH = "/services/T0001/B0002/webhook-token-9d41"  # a Slack URL's path is its secret
UI = "http://dagster.example:3000"


# --- a real webhook receiver ---------------------------------------------------------------


@dataclass
class Post:
    path: str
    content_type: str
    body: bytes
    status: int

    @property
    def text(self) -> str:
        payload = json.loads(self.body)
        assert set(payload) == {"text"}  # Slack-compatible: {"text": "..."}
        return payload["text"]


@dataclass
class Receiver:
    url: str
    posts: list[Post] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # statuses for the next posts, then 200

    @property
    def delivered(self) -> list[str]:
        return [p.text for p in self.posts if p.status == 200]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                status = state.answers.pop(0) if state.answers else 200
                state.posts.append(
                    Post(self.path, self.headers.get("Content-Type", ""), body, status)
                )
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"error")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}{WEBHOOK_PATH}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> Receiver:
    """Alerts on: the receiver is the webhook, the UI at a recognisable address."""
    monkeypatch.setenv(alerts.WEBHOOK_URL_ENV, receiver.url)
    monkeypatch.setenv(alerts.UI_URL_ENV, UI + "/")
    return receiver


# --- the sensors, ticked as the daemon ticks them ------------------------------------------


class Daemon:
    """Ticks both alert sensors, keeping each one's cursor as the daemon does: a tick that
    raises keeps the previous cursor."""

    def __init__(self, instance: dg.DagsterInstance, definitions: dg.Definitions) -> None:
        self.instance, self.definitions = instance, definitions
        self.cursors: dict[str, str | None] = {}

    def tick(self, name: str) -> str | None:
        sensor = self.definitions.resolve_sensor_def(name)
        with dg.build_sensor_context(
            instance=self.instance, cursor=self.cursors.get(name), definitions=self.definitions
        ) as context:
            data = sensor.evaluate_tick(context)
        assert not data.run_requests
        self.cursors[name] = data.cursor
        return data.skip_message

    def tick_all(self) -> list[str | None]:
        return [self.tick(RUN_FAILURE_ALERTS), self.tick(CHECK_FAILURE_ALERTS)]


def alert_sensors() -> list[dg.SensorDefinition]:
    return [build_run_failure_alert_sensor(), build_check_failure_alert_sensor()]


def started(daemon: Daemon) -> Daemon:
    """The sensors' first ticks: from now on."""
    assert all(m and m.startswith("Started") for m in daemon.tick_all())
    return daemon


def lines(text: str) -> dict[str, str]:
    heading, *rest = text.splitlines()
    return {"heading": heading, **dict(line.split(": ", 1) for line in rest)}


# --- the project's real job against the sandbox --------------------------------------------

TICKERS = ["AAPL", "MSFT", "GONE1", "GONE2"]


def allow(share: float) -> dict[str, Any]:
    return {"ops": {"stocks_refresh_outcome": {"config": {"max_failed_share": share}}}}


def test_a_failed_refresh_posts_one_message_and_a_successful_one_none(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
    webhook: Receiver,
) -> None:
    sandbox = start_sandbox(faults=FaultConfig(unknown_symbols={"GONE1", "GONE2"}))
    defs = pipeline_definitions(monkeypatch, sandbox, sqlite_url, TICKERS)
    daemon = started(Daemon(dagster_instance, defs))

    # Half the tickers unknown, but allowed: the run succeeds (fetch_failures warns; it is
    # not blocking), and nothing is posted.
    assert run_refresh(defs, dagster_instance, run_config=allow(1.0)).success
    assert daemon.tick_all() == ["No new failed runs.", "No new runs with failed blocking checks."]
    assert webhook.posts == []

    failed = run_refresh(defs, dagster_instance)  # 50 % > 5 %: coverage fails the run
    assert not failed.success
    daemon.tick_all()
    daemon.tick_all()  # later ticks send nothing more
    (post,) = webhook.posts
    assert post.path == WEBHOOK_PATH and post.content_type.startswith("application/json")
    assert SANDBOX_KEY.encode() not in post.body
    assert lines(post.text) == {
        "heading": "Dagster run failed: refresh_quotes",
        "Run": failed.run_id,
        "Failed step": "stocks_refresh_outcome",
        "Reason": "2 of 4 tickers got no quote (50.0% > 5%): GONE1 no_quote, GONE2 no_quote",
        "Failed checks": "coverage on stocks",  # named here; the check sensor stays silent
        "Open": f"{UI}/runs/{failed.run_id}",
    }


def test_a_refresh_the_api_refuses_alerts_with_its_reason_and_without_the_key(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
    webhook: Receiver,
) -> None:
    sandbox = start_sandbox(api_key="the-sandbox-wants-another-key")  # ours is invalid
    defs = pipeline_definitions(monkeypatch, sandbox, sqlite_url, TICKERS)
    daemon = started(Daemon(dagster_instance, defs))
    failed = run_refresh(defs, dagster_instance)
    assert not failed.success
    daemon.tick_all()
    (text,) = webhook.delivered
    fields = lines(text)
    assert fields["Run"] == failed.run_id and fields["Open"] == f"{UI}/runs/{failed.run_id}"
    assert fields["Failed step"] == "raw_quotes.plan_quote_batches"
    assert "Invalid API KEY" in fields["Reason"]
    assert SANDBOX_KEY not in text and "the-sandbox-wants-another-key" not in text


# --- small jobs for what the project's jobs cannot show ------------------------------------

attempts: Counter[str] = Counter()


class FlakyConfig(dg.Config):
    failures: int = 0
    message: str = "transient failure"


@dg.op(retry_policy=dg.RetryPolicy(max_retries=1))
def flaky(context: dg.OpExecutionContext, config: FlakyConfig) -> None:
    attempts[context.run_id] += 1
    if attempts[context.run_id] <= config.failures:
        raise RuntimeError(f"{config.message} (attempt {attempts[context.run_id]})")


@dg.job
def flaky_job() -> None:
    flaky()


@dg.job
def elsewhere_job() -> None:  # not in the definitions below: another code location's
    flaky()


@dg.asset
def checked_table() -> None:
    pass


@dg.asset_check(asset=checked_table, blocking=True)
def must_cover() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,  # blocking, but its failure does not fail the run
        description="3 of 40 rows missing: ZZZA, ZZZB, ZZZC\nsecond line not sent",
    )


@dg.asset_check(asset=checked_table, blocking=True)
def must_pass() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, description="fine")


@dg.asset_check(asset=checked_table)
def informative() -> dg.AssetCheckResult:  # failed and ERROR, but not blocking
    return dg.AssetCheckResult(passed=False, description="not worth a message")


@dg.asset
def guarded_table() -> None:
    pass


@dg.asset_check(asset=guarded_table, blocking=True)
def must_hold() -> dg.AssetCheckResult:  # blocking ERROR: fails its run
    return dg.AssetCheckResult(passed=False, description="the invariant broke")


checked_job = dg.define_asset_job("checked_job", selection=[checked_table])
guarded_job = dg.define_asset_job("guarded_job", selection=[guarded_table])

SMALL = dg.Definitions(
    jobs=[flaky_job, checked_job, guarded_job],
    assets=[checked_table, guarded_table],
    asset_checks=[must_cover, must_pass, informative, must_hold],
    sensors=alert_sensors(),
)


def run(job: str, instance: dg.DagsterInstance, **config: Any) -> dg.ExecuteInProcessResult:
    job_def = SMALL.resolve_job_def(job) if job != "elsewhere_job" else elsewhere_job
    run_config = {"ops": {"flaky": {"config": config}}} if config else None
    return job_def.execute_in_process(
        instance=instance, run_config=run_config, raise_on_error=False
    )


def test_a_step_retried_then_successful_does_not_alert(
    dagster_instance: dg.DagsterInstance, webhook: Receiver
) -> None:
    daemon = started(Daemon(dagster_instance, SMALL))
    retried = run("flaky_job", dagster_instance, failures=1)
    assert retried.success
    assert [e.event_type_value for e in retried.all_events].count("STEP_UP_FOR_RETRY") == 1
    daemon.tick_all()
    assert webhook.posts == []

    # The same step out of retries fails the run: one message, naming the step.
    exhausted = run("flaky_job", dagster_instance, failures=2)
    assert not exhausted.success
    daemon.tick_all()
    (text,) = webhook.delivered
    assert lines(text) == {
        "heading": "Dagster run failed: flaky_job",
        "Run": exhausted.run_id,
        "Failed step": "flaky",
        "Reason": "RuntimeError: transient failure (attempt 2)",
        "Open": f"{UI}/runs/{exhausted.run_id}",
    }


def test_no_secret_reaches_the_webhook_even_when_the_failure_quotes_one(
    monkeypatch: pytest.MonkeyPatch, dagster_instance: dg.DagsterInstance, webhook: Receiver
) -> None:
    monkeypatch.setenv("FMP_API_KEY", SANDBOX_KEY)
    daemon = started(Daemon(dagster_instance, SMALL))
    leaky = (
        f"GET http://127.0.0.1:9/stable/quote?symbol=AAPL&apikey={SANDBOX_KEY} failed; "
        f"key {SANDBOX_KEY} refused, db postgresql://quotes:s3cret-pw@db:5432/quotes, "
        f"hook {webhook.url}"
    )
    assert not run("flaky_job", dagster_instance, failures=2, message=leaky).success
    daemon.tick_all()
    (post,) = webhook.posts
    for secret in (SANDBOX_KEY, "s3cret-pw", "webhook-token-9d41"):
        assert secret.encode() not in post.body, secret
    reason = lines(post.text)["Reason"]
    assert reason.startswith("RuntimeError: GET http://127.0.0.1:9/stable/quote?symbol=AAPL")
    assert "apikey=***" in reason and "postgresql://quotes:***@db:5432/quotes" in reason


def test_nothing_is_posted_while_no_webhook_is_configured(
    monkeypatch: pytest.MonkeyPatch, dagster_instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    daemon = started(Daemon(dagster_instance, SMALL))
    assert not run("flaky_job", dagster_instance, failures=2).success
    assert run("checked_job", dagster_instance).success  # a failed blocking check
    for message in daemon.tick_all():
        assert message and "No webhook configured" in message
    # Configured later: what failed while alerts were off is not replayed.
    monkeypatch.setenv(alerts.WEBHOOK_URL_ENV, receiver.url)
    daemon.tick_all()
    assert receiver.posts == []
    failed = run("flaky_job", dagster_instance, failures=2)
    daemon.tick_all()
    (text,) = receiver.delivered
    assert lines(text)["Run"] == failed.run_id


def test_runs_of_other_code_locations_are_not_announced(
    dagster_instance: dg.DagsterInstance, webhook: Receiver
) -> None:
    daemon = started(Daemon(dagster_instance, SMALL))
    assert not run("elsewhere_job", dagster_instance, failures=2).success
    daemon.tick_all()
    assert webhook.posts == []


def test_a_refused_alert_is_sent_again_at_the_next_tick_and_never_twice(
    dagster_instance: dg.DagsterInstance, webhook: Receiver
) -> None:
    daemon = started(Daemon(dagster_instance, SMALL))
    first = run("flaky_job", dagster_instance, failures=2)
    webhook.answers = [500]
    with pytest.raises(Exception, match="not delivered") as refused:
        daemon.tick(RUN_FAILURE_ALERTS)  # the tick fails; its cursor is not kept
    assert "127.0.0.1" in str(refused.value) and "webhook-token" not in str(refused.value)
    daemon.tick(RUN_FAILURE_ALERTS)
    assert [lines(t)["Run"] for t in webhook.delivered] == [first.run_id]

    # Two failed runs, the second alert refused: the first is kept, the second sent next.
    second = run("flaky_job", dagster_instance, failures=2)
    third = run("flaky_job", dagster_instance, failures=2)
    webhook.answers = [200, 503]
    message = daemon.tick(RUN_FAILURE_ALERTS)
    assert message and message.startswith("Sent 1 alert(s)") and "not delivered" in message
    daemon.tick(RUN_FAILURE_ALERTS)
    daemon.tick(RUN_FAILURE_ALERTS)
    delivered = [lines(t)["Run"] for t in webhook.delivered]
    assert delivered == [first.run_id, second.run_id, third.run_id]
    assert len(webhook.posts) == 5  # 3 delivered, 2 refused


def test_an_alert_the_webhook_refuses_for_good_holds_back_no_other(
    dagster_instance: dg.DagsterInstance, webhook: Receiver
) -> None:
    """A 4xx (other than 408/429) will be refused again: it is logged and dropped, and the
    next run's alert goes out in the same tick."""
    daemon = started(Daemon(dagster_instance, SMALL))
    run("flaky_job", dagster_instance, failures=2)
    second = run("flaky_job", dagster_instance, failures=2)
    webhook.answers = [400]
    daemon.tick(RUN_FAILURE_ALERTS)
    daemon.tick(RUN_FAILURE_ALERTS)
    assert [lines(t)["Run"] for t in webhook.delivered] == [second.run_id]
    assert len(webhook.posts) == 2  # the refused one was not posted again


def test_failed_blocking_checks_alert_once_per_run(
    dagster_instance: dg.DagsterInstance, webhook: Receiver
) -> None:
    daemon = started(Daemon(dagster_instance, SMALL))
    # A run that succeeds with a failed blocking check: the check sensor's message.
    checked = run("checked_job", dagster_instance)
    assert checked.success
    # A blocking check of error severity fails its run: one message, the run's.
    guarded = run("guarded_job", dagster_instance)
    assert not guarded.success
    daemon.tick_all()
    daemon.tick_all()
    check_alert, run_alert = sorted(webhook.delivered)  # "…asset check…" < "…run failed…"
    assert check_alert.splitlines() == [
        "Dagster asset check failed: must_cover on checked_table",
        f"Run: {checked.run_id} (checked_job, the run itself succeeded)",
        "must_cover on checked_table: 3 of 40 rows missing: ZZZA, ZZZB, ZZZC",
        f"Open: {UI}/runs/{checked.run_id}",
    ]  # not the passing blocking check, nor the failed check that is not blocking
    fields = lines(run_alert)
    assert fields["Run"] == guarded.run_id
    assert fields["Failed checks"] == "must_hold on guarded_table"


def test_the_projects_blocking_checks_are_coverage_and_quota() -> None:
    from quote_pipeline.definitions import build_definitions

    defs = build_definitions()
    graph = defs.get_repository_def().asset_graph
    blocking = {key.name for key in graph.asset_check_keys if graph.get(key).blocking}
    assert blocking == {"coverage", "api_quota_not_exhausted"}
    for name in (RUN_FAILURE_ALERTS, CHECK_FAILURE_ALERTS):
        sensor = defs.resolve_sensor_def(name)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING  # off = no webhook


def test_a_message_masks_what_looks_like_a_secret() -> None:
    env = {
        "FMP_API_KEY": "k-123456789",
        "QUOTE_PIPELINE_DATABASE_URL": "postgresql://app:pg-pass-77@db/quotes",
        alerts.WEBHOOK_URL_ENV: "https://hooks.slack.com/services/T1/B2/tok3n",
    }
    text = alerts.RunFailure(
        job="refresh_quotes",
        run_id="r1",
        steps=["s"],
        reason=(
            "k-123456789 pg-pass-77 https://hooks.slack.com/services/T1/B2/tok3n "
            "redis://:broker-pw@q:6379/0 password=hunter22 Authorization: Bearer abc.def"
        ),
    ).text(UI, alerts.known_secrets(env))
    for secret in ("k-123456789", "pg-pass-77", "tok3n", "broker-pw", "hunter22", "abc.def"):
        assert secret not in text, secret
    with pytest.raises(alerts.AlertDeliveryError, match="unreachable") as caught:
        alerts.post_alert("http://127.0.0.1:9/services/T1/B2/tok3n", "x", timeout=2)
    assert str(caught.value).startswith("http://127.0.0.1 unreachable (")  # no path, no token
