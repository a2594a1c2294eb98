"""Ask the Dagster instance to refresh one ticker's quote: never do the work in the view.

A request is a ``refresh_quotes`` run launched through the webserver's GraphQL API with
dagster-graphql's client (``submit_job_execution``), its planning op told to fetch only that
symbol (:func:`quote_pipeline.run_policy.refresh_quotes_run_config`, the run config the retry
sensor sends for stragglers). It returns as soon as the run is queued, with the run's id and
its page in the Dagster UI.

At most one request per ticker is pending at a time, across every process of the site: the
unfinished runs tagged with the ticker are asked for before launching (a plain POST of a
GraphQL query to ``{QUOTE_PIPELINE_DAGSTER_URL}/graphql``), and again after launching; when
another process launched one at the same moment, the older run stands and the newer one is
terminated by the process that launched it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from quote_pipeline.run_policy import refresh_quotes_run_config

logger = logging.getLogger("market")

JOB_NAME = "refresh_quotes"
REQUESTED_TICKER_TAG = "quote_pipeline/requested_ticker"
REQUESTED_BY_TAG = "quote_pipeline/requested_by"
REQUESTED_BY = "django"
# A run in one of these states has not written its quote yet: a request is still pending.
PENDING_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")

PENDING_RUNS_QUERY = """
query PendingRefreshes($filter: RunsFilter!) {
  runsOrError(filter: $filter, limit: 20) {
    __typename
    ... on Runs { results { runId status creationTime } }
    ... on InvalidPipelineRunsFilterError { message }
    ... on PythonError { message }
  }
}
"""


class RefreshError(Exception):
    """The refresh was not launched; ``str()`` is one line for the page, ``status`` the HTTP
    status of the JSON answer."""

    status = 502


class DagsterUnreachable(RefreshError):
    """The webserver did not answer (not running, wrong URL, timed out)."""

    status = 503


class AlreadyPending(RefreshError):
    """A request for the ticker is still queued or running."""

    status = 409

    def __init__(self, ticker: str, run_id: str, run_status: str, run_url: str) -> None:
        super().__init__(
            f"a refresh of {ticker} is already pending: run {run_id} ({run_status.lower()})"
        )
        self.run_id, self.run_status, self.run_url = run_id, run_status, run_url


@dataclass(frozen=True)
class LaunchedRefresh:
    """A queued refresh run."""

    ticker: str
    run_id: str
    run_url: str


def tags_for(ticker: str) -> dict[str, str]:
    """The run's tags: which ticker was asked for, and by whom."""
    return {REQUESTED_TICKER_TAG: ticker, REQUESTED_BY_TAG: REQUESTED_BY}


def run_url(run_id: str) -> str:
    """The run's page in the Dagster UI."""
    return f"{settings.QUOTE_PIPELINE_DAGSTER_URL}/runs/{run_id}"


def _first_line(text: Any) -> str:
    lines = str(text).strip().splitlines()
    return lines[0].strip() if lines else ""


def _unreachable() -> DagsterUnreachable:
    return DagsterUnreachable(
        f"the Dagster webserver at {settings.QUOTE_PIPELINE_DAGSTER_URL} is unreachable: is "
        "`dagster dev` (or dagster-webserver) running?"
    )


def _graphql_error_message(error: Any) -> str:
    """The first line of a GraphQL ``errors`` entry (``{"message": ...}``)."""
    message = error.get("message") if isinstance(error, Mapping) else error
    return _first_line(message)


# --- the pending runs: a plain GraphQL POST --------------------------------------------------


def _graphql(what: str, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """POST ``query`` to the webserver's ``/graphql`` and return its ``data``; its errors as
    :class:`RefreshError` (one line), no answer as :class:`DagsterUnreachable`."""
    import requests

    try:
        response = requests.post(
            f"{settings.QUOTE_PIPELINE_DAGSTER_URL}/graphql",
            json={"query": query, "variables": dict(variables)},
            timeout=settings.QUOTE_PIPELINE_DAGSTER_TIMEOUT,
        )
    except (requests.ConnectionError, requests.Timeout):
        raise _unreachable() from None
    except requests.RequestException as exc:
        raise RefreshError(f"Dagster refused to {what}: {_first_line(exc)}") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RefreshError(
            f"Dagster refused to {what}: HTTP {response.status_code} {response.reason}, "
            "not a GraphQL answer"
        )
    errors = body.get("errors")
    if errors:
        first = errors[0] if isinstance(errors, list) else errors
        raise RefreshError(f"Dagster refused to {what}: {_graphql_error_message(first)}")
    data = body.get("data")
    if response.status_code != 200 or not isinstance(data, dict):
        raise RefreshError(
            f"Dagster refused to {what}: HTTP {response.status_code} {response.reason}"
        )
    return data


def pending_runs(ticker: str) -> list[dict[str, Any]]:
    """The unfinished runs requested for ``ticker`` (runId, status, creationTime), oldest
    first (ties by run id, so that every process orders them the same way)."""
    variables = {
        "filter": {
            "tags": [{"key": REQUESTED_TICKER_TAG, "value": ticker}],
            "statuses": list(PENDING_STATUSES),
        }
    }
    answer = _graphql("list runs", PENDING_RUNS_QUERY, variables)["runsOrError"]
    if answer.get("__typename") != "Runs":
        raise RefreshError(
            f"Dagster refused to list runs: {answer.get('__typename')}: "
            f"{_first_line(answer.get('message', ''))}"
        )
    return sorted(answer["results"], key=lambda run: (run.get("creationTime") or 0.0, run["runId"]))


# --- the launch and the termination: dagster-graphql's client --------------------------------


def _client() -> Any:
    """dagster-graphql's client for ``QUOTE_PIPELINE_DAGSTER_URL`` (imported here: Dagster is
    heavy, and only the refresh POST needs it). The URL was checked with the settings:
    http(s), a host, no credentials."""
    from dagster_graphql import DagsterGraphQLClient

    parts = urlsplit(settings.QUOTE_PIPELINE_DAGSTER_URL)
    return DagsterGraphQLClient(
        parts.hostname or "",
        port_number=parts.port,
        use_https=parts.scheme == "https",
        path_prefix=parts.path.rstrip("/"),
        timeout=settings.QUOTE_PIPELINE_DAGSTER_TIMEOUT,
    )


def client_error_line(exc: BaseException) -> str:
    """A dagster-graphql client error as the real first line of what went wrong.

    The client wraps transport and GraphQL errors in a message of several lines quoting the
    whole query; the error it was raised from (``__cause__``) says what happened: the first
    GraphQL error's message, or the HTTP error. An error the client raised itself from a
    Dagster answer carries ``(kind, message)``: ``PipelineNotFoundError: Could not find...``.
    """
    cause = exc.__cause__
    if cause is not None:
        errors = getattr(cause, "errors", None)  # gql's TransportQueryError
        if errors:
            line = _graphql_error_message(errors[0] if isinstance(errors, list) else errors)
        else:
            line = _first_line(cause)
        return line or type(cause).__name__
    kind, *rest = exc.args or (type(exc).__name__,)
    detail = rest[0] if rest else None
    if isinstance(detail, list):  # RunConfigValidationInvalid: a list of errors
        detail = detail[0] if detail else None
    line = _graphql_error_message(detail) if detail is not None else ""
    return f"{_first_line(kind)}: {line}" if line else _first_line(kind) or type(exc).__name__


def _is_unreachable(exc: BaseException) -> bool:
    """Whether the error, or one it was raised from, is a failed connection or a timeout
    (not an HTTP error answer, which means something answered)."""
    import requests

    unreachable = (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, unreachable):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with the client's errors as :class:`RefreshError`."""
    from dagster_graphql import DagsterGraphQLClientError

    try:
        return fn(*args, **kwargs)
    except DagsterGraphQLClientError as exc:
        if _is_unreachable(exc):
            raise _unreachable() from None
        raise RefreshError(f"Dagster refused to {what}: {client_error_line(exc)}") from None


def launch(ticker: str) -> str:
    """Launch ``refresh_quotes`` for ``ticker`` alone; the run's id."""
    return _call(
        f"launch {JOB_NAME}",
        _client().submit_job_execution,
        JOB_NAME,
        repository_location_name=settings.QUOTE_PIPELINE_DAGSTER_LOCATION,
        repository_name=settings.QUOTE_PIPELINE_DAGSTER_REPOSITORY,
        run_config=refresh_quotes_run_config([ticker]),
        tags=tags_for(ticker),
    )


def terminate(run_id: str) -> None:
    """Terminate (cancel, while queued) the run ``run_id``."""
    _call(f"terminate run {run_id}", _client().terminate_run, run_id)


# --- one pending request per ticker ------------------------------------------------------------

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(ticker: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(ticker, threading.Lock())


def _already_pending(ticker: str, run: Mapping[str, Any]) -> AlreadyPending:
    return AlreadyPending(ticker, run["runId"], run["status"], run_url(run["runId"]))


def request_refresh(ticker: str) -> LaunchedRefresh:
    """Queue a ``refresh_quotes`` run for ``ticker`` (tracked, normalized) and return at once.

    Raises :class:`AlreadyPending` (naming the older run) when a requested run for it has
    not finished, :class:`DagsterUnreachable` when the webserver does not answer,
    :class:`RefreshError` when it refuses.

    Within this process a per-ticker lock serializes the check and the launch. Across
    processes (several workers, several hosts) two requests can both pass the check; so the
    pending runs are read again after the launch, and when ours is not the oldest, ours is
    terminated and the request refused naming the oldest: every process orders the runs the
    same way, so exactly one stands.
    """
    with _lock_for(ticker):
        pending = pending_runs(ticker)
        if pending:
            raise _already_pending(ticker, pending[0])
        run_id = launch(ticker)
        try:
            pending = pending_runs(ticker)
        except RefreshError as exc:
            # The run is queued; only the duplicate check could not be made.
            logger.warning("launched %s for %s, not checked for another: %s", run_id, ticker, exc)
            pending = []
        ours = [run for run in pending if run["runId"] == run_id]
        if ours and pending[0]["runId"] != run_id:
            oldest = pending[0]
            logger.info(
                "run %s for %s launched beside %s by another process: terminating ours",
                run_id,
                ticker,
                oldest["runId"],
            )
            try:
                terminate(run_id)
            except RefreshError as exc:
                logger.error("could not terminate duplicate run %s: %s", run_id, exc)
            raise _already_pending(ticker, oldest)
    return LaunchedRefresh(ticker=ticker, run_id=run_id, run_url=run_url(run_id))
