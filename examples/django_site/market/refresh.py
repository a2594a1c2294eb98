"""Ask the Dagster instance to refresh one ticker's quote: never do the work in the view.

A request is a ``refresh_quotes`` run launched through the webserver's GraphQL API with
dagster-graphql's client, its planning op told to fetch only that symbol (the run config the
retry sensor uses for stragglers). It returns as soon as the run is queued, with the run's id
and its page in the Dagster UI. At most one request per ticker is pending at a time: the
runs tagged with the ticker that have not finished are asked for first.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

JOB_NAME = "refresh_quotes"
REQUESTED_TICKER_TAG = "quote_pipeline/requested_ticker"
REQUESTED_BY_TAG = "quote_pipeline/requested_by"
REQUESTED_BY = "django"
# A run in one of these states has not written its quote yet: a request is still pending.
PENDING_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")

PENDING_RUNS_QUERY = """
query PendingRefreshes($filter: RunsFilter!) {
  runsOrError(filter: $filter, limit: 5) {
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


def run_config_for(ticker: str) -> dict[str, Any]:
    """``refresh_quotes``' run config fetching only ``ticker``: the planning op's
    ``only_symbols`` (``QuoteBatchingConfig``), as the retry sensor sets it."""
    batches = {"config": {"only_symbols": [ticker]}}
    return {"ops": {"raw_quotes": {"ops": {"plan_quote_batches": batches}}}}


def tags_for(ticker: str) -> dict[str, str]:
    """The run's tags: which ticker was asked for, and by whom."""
    return {REQUESTED_TICKER_TAG: ticker, REQUESTED_BY_TAG: REQUESTED_BY}


def run_url(run_id: str) -> str:
    """The run's page in the Dagster UI."""
    return f"{settings.QUOTE_PIPELINE_DAGSTER_URL}/runs/{run_id}"


def _client() -> Any:
    """dagster-graphql's client for ``QUOTE_PIPELINE_DAGSTER_URL`` (imported here: Dagster is
    heavy, and only this POST needs it)."""
    from dagster_graphql import DagsterGraphQLClient

    parts = urlsplit(settings.QUOTE_PIPELINE_DAGSTER_URL)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise RefreshError(
            f"QUOTE_PIPELINE_DAGSTER_URL is not an http(s) URL: "
            f"{settings.QUOTE_PIPELINE_DAGSTER_URL!r}"
        )
    return DagsterGraphQLClient(
        parts.hostname,
        port_number=parts.port,
        use_https=parts.scheme == "https",
        path_prefix=parts.path.rstrip("/"),
        timeout=settings.QUOTE_PIPELINE_DAGSTER_TIMEOUT,
    )


def _one_line(exc: BaseException) -> str:
    """A client error as one line: its kind and the first line of its message."""
    parts = [str(a).strip().splitlines()[0] for a in exc.args if str(a).strip()]
    return ": ".join(parts[:2]) or type(exc).__name__


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
            raise DagsterUnreachable(
                f"the Dagster webserver at {settings.QUOTE_PIPELINE_DAGSTER_URL} is "
                "unreachable: is `dagster dev` (or dagster-webserver) running?"
            ) from None
        raise RefreshError(f"Dagster refused to {what}: {_one_line(exc)}") from None


def pending_run(ticker: str) -> Mapping[str, Any] | None:
    """The newest unfinished run requested for ``ticker`` (runId, status), if any."""
    client = _client()
    variables = {
        "filter": {
            "tags": [{"key": REQUESTED_TICKER_TAG, "value": ticker}],
            "statuses": list(PENDING_STATUSES),
        }
    }
    # The client's own query helper: same transport, timeout and error wrapping as the launch.
    data = _call("list runs", client._execute, PENDING_RUNS_QUERY, variables)
    answer = data["runsOrError"]
    if answer["__typename"] != "Runs":
        raise RefreshError(f"Dagster refused to list runs: {answer.get('message', '')[:200]}")
    runs = sorted(answer["results"], key=lambda r: r.get("creationTime") or 0, reverse=True)
    return runs[0] if runs else None


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(ticker: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(ticker, threading.Lock())


def request_refresh(ticker: str) -> LaunchedRefresh:
    """Queue a ``refresh_quotes`` run for ``ticker`` (tracked, normalized) and return at once.

    Raises :class:`AlreadyPending` when a requested run for it has not finished,
    :class:`DagsterUnreachable` when the webserver does not answer, :class:`RefreshError`
    when it refuses. The check and the launch hold a per-ticker lock, so concurrent requests
    to this process cannot both launch.
    """
    with _lock_for(ticker):
        pending = pending_run(ticker)
        if pending is not None:
            raise AlreadyPending(
                ticker, pending["runId"], pending["status"], run_url(pending["runId"])
            )
        client = _client()
        run_id = _call(
            f"launch {JOB_NAME}",
            client.submit_job_execution,
            JOB_NAME,
            repository_location_name=settings.QUOTE_PIPELINE_DAGSTER_LOCATION,
            repository_name=settings.QUOTE_PIPELINE_DAGSTER_REPOSITORY,
            run_config=run_config_for(ticker),
            tags=tags_for(ticker),
        )
    return LaunchedRefresh(ticker=ticker, run_id=run_id, run_url=run_url(run_id))
