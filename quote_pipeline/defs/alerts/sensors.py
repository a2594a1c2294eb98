"""Two alert sensors: one message per failed run, and one per successful run whose blocking
asset checks failed. Formatting and posting are in :mod:`quote_pipeline.alerts`.

Why plain sensors rather than ``dg.run_failure_sensor``: a run-status sensor moves its cursor
past a run even when its function raised (Dagster writes the cursor of a failed run-status
tick, dagster-io/dagster#6807), so an alert the webhook refused would be lost. These keep
their own cursor (the storage id of the last run-status event handled) and move it only past
a run whose alert was delivered (or which needs none): a refused alert fails the tick, which
leaves the cursor where it was, and the next tick sends it again. Nothing is dropped, and
nothing already delivered is sent twice (bar a webhook that took a message but whose answer
was lost).

Which runs: those of this code location (as ``run_failure_sensor`` picks them; a run launched
outside any code location, from ``execute_in_process`` or ``dagster job execute``, when its
job is one of this location's). On its first tick a sensor starts from the newest event: runs
that failed before it was turned on are not announced. While no webhook is configured the
sensors skip and keep their cursor at the newest event, so setting the variable later does
not replay what failed meanwhile.

One alert per run: a failed run's alert names its failed blocking or error-severity checks;
the check sensor looks only at runs that succeeded, so a check failure that failed its run
(``coverage`` and ``api_quota_not_exhausted`` do) is announced once, by the run's alert. A
step retried by its RetryPolicy and then successful never fails its run: no alert.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import dagster as dg

from quote_pipeline import alerts

RUN_FAILURE_ALERTS = "run_failure_alerts"
CHECK_FAILURE_ALERTS = "check_failure_alerts"
TICK_INTERVAL_SECONDS = 30
FETCH_LIMIT = 100  # run-status events read per tick
MAX_ALERTS_PER_TICK = 20
# No new message is started after this long in a tick: with a post's 5 s + 10 s timeouts a tick
# ends well within Dagster's 60 s sensor evaluation timeout, whose failure would forget the
# cursor of alerts already sent (and send them again).
TICK_BUDGET_SECONDS = 20.0

Alert = alerts.RunFailure | alerts.CheckFailures
Describe = Callable[[dg.SensorEvaluationContext, dg.DagsterRun, dg.EventLogRecord], Alert | None]


class AlertNotDeliveredError(RuntimeError):
    """The webhook refused an alert; the tick fails and the next one sends it again."""


def _parse_cursor(cursor: str | None) -> int | None:
    try:
        return int(cursor) if cursor is not None else None
    except ValueError:
        return None


def _newest_storage_id(instance: dg.DagsterInstance, event_type: dg.DagsterEventType) -> int:
    records = instance.fetch_run_status_changes(event_type, limit=1).records
    return records[0].storage_id if records else -1


def in_this_code_location(context: dg.SensorEvaluationContext, run: dg.DagsterRun) -> bool:
    """Is ``run`` one of this code location's, as ``run_failure_sensor`` decides it?"""
    origin = run.remote_job_origin
    if origin is not None:
        repository = origin.repository_origin
        location = context.code_location_origin
        return (
            repository.code_location_origin.location_name,
            repository.repository_name,
        ) == (location.location_name if location else None, context.repository_name)
    definitions = context.repository_def
    return definitions is None or definitions.has_job(run.job_name)


def alert_tick(
    context: dg.SensorEvaluationContext,
    event_type: dg.DagsterEventType,
    describe: Describe,
    what: str,
) -> dg.SensorResult:
    """Send the alerts for the ``event_type`` run-status events after the cursor, in order."""
    instance = context.instance
    cursor = _parse_cursor(context.cursor)
    if cursor is None:
        newest = _newest_storage_id(instance, event_type)
        return dg.SensorResult(
            skip_reason=f"Started: alerts for {what} from now on.", cursor=str(newest)
        )
    url = alerts.webhook_url()
    if url is None:
        newest = max(cursor, _newest_storage_id(instance, event_type))
        return dg.SensorResult(
            skip_reason=f"No webhook configured ({alerts.WEBHOOK_URL_ENV} is not set): "
            "no alert is sent.",
            cursor=str(newest),
        )
    records = instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(event_type=event_type, after_storage_id=cursor),
        limit=FETCH_LIMIT,
        ascending=True,
    ).records
    base_url, secrets = alerts.ui_url(), alerts.known_secrets()
    started = time.monotonic()
    sent: list[str] = []
    for record in records:
        if len(sent) >= MAX_ALERTS_PER_TICK or time.monotonic() - started > TICK_BUDGET_SECONDS:
            break  # the rest at the next tick
        run_id = record.event_log_entry.run_id
        try:
            run = instance.get_run_by_id(run_id)
            alert = (
                describe(context, run, record)
                if run is not None and run_id not in sent and in_this_code_location(context, run)
                else None
            )
            if alert is not None:
                alerts.post_alert(url, alert.text(base_url, secrets))
        except alerts.AlertRejectedError as exc:
            # Refused for good: logged, and the next alerts are not held back behind it.
            context.log.error(f"The alert for run {run_id} was refused and is dropped: {exc}")
            cursor = record.storage_id
            continue
        except Exception as exc:
            cause = str(exc) if isinstance(exc, alerts.AlertDeliveryError) else type(exc).__name__
            problem = (
                f"The alert for run {run_id} was not delivered ({cause}); the next tick tries "
                "again."
            )
            context.log.error(problem)
            if not sent:
                # A failed tick keeps the cursor where it was: the same alert is tried again.
                raise AlertNotDeliveredError(problem) from exc
            # Keep the cursor of what was delivered (a failed tick would forget it, and the
            # next tick would send those again).
            return dg.SensorResult(
                skip_reason=f"{_sent_summary(sent)} {problem}", cursor=str(cursor)
            )
        if alert is not None:
            sent.append(run_id)
            context.log.info(f"Alert sent for run {run_id} ({alert.job}).")
        cursor = record.storage_id
    return dg.SensorResult(
        skip_reason=_sent_summary(sent) if sent else f"No new {what}.", cursor=str(cursor)
    )


def _sent_summary(sent: Sequence[str]) -> str:
    return f"Sent {len(sent)} alert(s): runs {alerts.listed(list(sent))}."


# --- what a failed run says -------------------------------------------------------------


def job_label(run: dg.DagsterRun) -> str:
    """The job's name; for an ad-hoc materialization (``__ASSET_JOB``), its assets."""
    if not run.job_name.startswith("__ASSET_JOB"):
        return run.job_name
    assets = sorted(key.to_user_string() for key in run.asset_selection or ())
    return f"materialization of {alerts.listed(assets)}" if assets else "asset materialization"


def partition_label(run: dg.DagsterRun) -> str | None:
    tags = run.tags
    if tags.get("dagster/partition"):
        return tags["dagster/partition"]
    start, end = (tags.get(f"dagster/asset_partition_range_{e}") for e in ("start", "end"))
    return f"{start}…{end}" if start and end else None


_WRAPPERS = ("Dagster", "RetryRequested")  # class-name prefixes of Dagster's wrapping errors


def _error_reason(error: object) -> str:
    """The user's exception under Dagster's wrapping (``DagsterExecutionStepExecutionError``,
    ``RetryRequestedFromPolicy`` "Exceeded max_retries" → the op's ``RuntimeError``), as one
    line."""
    while getattr(error, "cause", None) is not None and str(
        getattr(error, "cls_name", "")
    ).startswith(_WRAPPERS):
        error = error.cause  # type: ignore[attr-defined]
    return alerts.error_reason(getattr(error, "cls_name", None), getattr(error, "message", ""))


def _step_failure_reason(event: dg.DagsterEvent) -> str:
    data = event.event_specific_data
    user = getattr(data, "user_failure_data", None)
    if user is not None and user.description:
        return alerts.first_line(user.description)  # dg.Failure: its description, no class
    error = getattr(data, "error", None)
    return _error_reason(error) if error is not None else alerts.first_line(event.message)


def _is_blocking(context: dg.SensorEvaluationContext, key: dg.AssetCheckKey) -> bool | None:
    """Whether the check is blocking, per this code location's definitions (None: unknown)."""
    definitions = context.repository_def
    if definitions is None or key not in definitions.asset_graph.asset_check_keys:
        return None
    return definitions.asset_graph.get(key).blocking


def failed_checks(
    context: dg.SensorEvaluationContext,
    run_id: str,
    *,
    include: Callable[[dg.AssetCheckEvaluation, bool | None], bool],
) -> list[alerts.FailedCheck]:
    """The run's failed check evaluations that ``include`` (evaluation, is blocking) keeps."""
    records = context.instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    found: list[alerts.FailedCheck] = []
    for record in records:
        event = record.event_log_entry.dagster_event
        evaluation = event.event_specific_data if event else None
        if not isinstance(evaluation, dg.AssetCheckEvaluation) or evaluation.passed:
            continue
        if include(evaluation, _is_blocking(context, evaluation.asset_check_key)):
            check = alerts.FailedCheck(
                asset=evaluation.asset_key.to_user_string(),
                check=evaluation.check_name,
                description=evaluation.description or "",
            )
            if check not in found:
                found.append(check)
    return found


def named_in_run_alert(evaluation: dg.AssetCheckEvaluation, blocking: bool | None) -> bool:
    """A failed check a failed run's alert names: blocking, or of error severity."""
    return bool(blocking) or evaluation.severity == dg.AssetCheckSeverity.ERROR


def alerted_on_its_own(evaluation: dg.AssetCheckEvaluation, blocking: bool | None) -> bool:
    """A failed check that alerts in a successful run: a blocking one. Where the definitions
    are not at hand, a failure of error severity counts as blocking."""
    return blocking if blocking is not None else evaluation.severity == dg.AssetCheckSeverity.ERROR


def describe_run_failure(
    context: dg.SensorEvaluationContext, run: dg.DagsterRun, record: dg.EventLogRecord
) -> alerts.RunFailure:
    """Job, run, the steps that failed (after their retries), the first one's reason, and the
    failed checks worth naming (blocking, or of error severity)."""
    step_failures = [
        r.event_log_entry.dagster_event
        for r in context.instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
        ).records
        if r.event_log_entry.dagster_event is not None
    ]
    steps = list(dict.fromkeys(e.step_key for e in step_failures if e.step_key))
    if step_failures:
        reason = _step_failure_reason(step_failures[0])
    else:  # failed outside a step: at launch, a crashed run worker, a run marked failed
        event = record.event_log_entry.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event else None
        reason = (
            _error_reason(error)
            if error is not None
            else alerts.first_line(event.message if event else record.event_log_entry.message)
        )
    return alerts.RunFailure(
        job=job_label(run),
        run_id=run.run_id,
        steps=steps,
        reason=reason,
        failed_checks=failed_checks(
            context,
            run.run_id,
            include=named_in_run_alert,
        ),
        partition=partition_label(run),
    )


def describe_check_failures(
    context: dg.SensorEvaluationContext, run: dg.DagsterRun, record: dg.EventLogRecord
) -> alerts.CheckFailures | None:
    """The failed blocking checks of a run that succeeded (none: no alert)."""
    checks = failed_checks(
        context,
        run.run_id,
        include=alerted_on_its_own,
    )
    if not checks:
        return None
    return alerts.CheckFailures(job=job_label(run), run_id=run.run_id, checks=checks)


def _alert_sensor(
    name: str,
    description: str,
    event_type: dg.DagsterEventType,
    describe: Describe,
    what: str,
) -> dg.SensorDefinition:
    """A running-by-default sensor that posts an alert for each run ending in
    ``event_type`` that ``describe`` finds worth one (see :func:`alert_tick`)."""

    @dg.sensor(
        name=name,
        minimum_interval_seconds=TICK_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=description,
    )
    def alert_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        return alert_tick(context, event_type, describe, what)

    return alert_sensor


def build_run_failure_alert_sensor() -> dg.SensorDefinition:
    return _alert_sensor(
        RUN_FAILURE_ALERTS,
        "Post one short message per failed run of this code location (job, run, failed "
        "step, reason, link) to the webhook in QUOTE_PIPELINE_ALERT_WEBHOOK_URL; nothing "
        "while it is unset. An alert the webhook refuses is sent again at the next tick.",
        dg.DagsterEventType.RUN_FAILURE,
        describe_run_failure,
        "failed runs",
    )


def build_check_failure_alert_sensor() -> dg.SensorDefinition:
    return _alert_sensor(
        CHECK_FAILURE_ALERTS,
        "Post one message per successful run whose blocking asset checks failed (such as "
        "coverage or api_quota_not_exhausted) to the webhook in "
        "QUOTE_PIPELINE_ALERT_WEBHOOK_URL. A failed run's checks are in its run alert.",
        dg.DagsterEventType.RUN_SUCCESS,
        describe_check_failures,
        "runs with failed blocking checks",
    )
