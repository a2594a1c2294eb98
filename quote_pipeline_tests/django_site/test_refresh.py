"""The "Refresh this ticker now" button and its JSON twin, against a fake Dagster GraphQL
server on loopback (the real webserver: e2e/test_webserver_daemon.py), on SQLite.

The fake answers the two documents the site sends — dagster-graphql's launch mutation and
the pending-runs query — after validating each, with its variables, against the pinned
dagster-graphql's own schema; a launched run stays pending until the test finishes it.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import dagster as dg
import pytest
import sqlalchemy as sa

from quote_pipeline.models import Quote
from quote_pipeline.storage import add_tickers, create_db_engine, write_quotes
from quote_pipeline_tests.conftest import SANDBOX_KEY
from quote_pipeline_tests.django_site.support import UNREACHABLE_DAGSTER_URL, django_site

pytestmark = [
    # dagster-graphql's client calls gql the way gql now deprecates; not ours to fix.
    pytest.mark.filterwarnings("ignore:Using variable_values and operation_name"),
]

TRACKED = ("AAPL", "MSFT")
UNTRACKED = "OLD"  # has a stored quote, but is not in the tickers table
QUOTED_AT = datetime(2026, 11, 27, 15, 30, 0, 123456, tzinfo=UTC)
PRICES = {"AAPL": Decimal("232.80"), "MSFT": Decimal("0.00001234"), UNTRACKED: Decimal("7.1000")}


@dataclass
class FakeDagster:
    """What the fake webserver was asked, and the runs it has 'queued'.

    ``launch_hook`` runs inside the launch, before the new run is made: a test adds what
    another process does meanwhile. ``launch_barrier`` holds every launch until as many have
    arrived (concurrent requests from several site processes). ``launch_answer`` replaces the
    launch's answer: an HTTP status with a body.
    """

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)
    refuse_launch: bool = False
    launch_hook: Callable[[FakeDagster], None] | None = None
    launch_barrier: threading.Barrier | None = None
    launch_answer: tuple[int, dict[str, Any]] | None = None
    runs_errors: list[dict[str, Any]] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def launches(self) -> list[dict[str, Any]]:
        return [r["variables"] for r in self.requests if "launchPipelineExecution" in r["query"]]

    @property
    def terminated(self) -> list[str]:
        return [r["variables"]["runId"] for r in self.requests if "terminateRun" in r["query"]]

    def finish(self, run_id: str) -> None:
        self.runs[run_id]["status"] = "SUCCESS"

    def add_run(self, ticker: str, *, status: str = "QUEUED") -> str:
        """A run as if launched by another site process."""
        with self.lock:
            return self._new_run({"quote_pipeline/requested_ticker": ticker}, status)

    def _new_run(self, tags: dict[str, str], status: str = "QUEUED") -> str:
        run_id = str(uuid.uuid4())
        self.runs[run_id] = {"status": status, "created": float(len(self.runs)), "tags": tags}
        return run_id

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append(body)
        self._validate(body)
        query, variables = body["query"], body.get("variables") or {}
        if "runsOrError" in query:
            if self.runs_errors is not None:
                return 200, {"errors": self.runs_errors}
            wanted = {(t["key"], t["value"]) for t in variables["filter"]["tags"]}
            statuses = set(variables["filter"]["statuses"])
            with self.lock:
                results = [
                    {"runId": run_id, "status": run["status"], "creationTime": run["created"]}
                    for run_id, run in self.runs.items()
                    if wanted <= set(run["tags"].items()) and run["status"] in statuses
                ]
            return 200, {"data": {"runsOrError": {"__typename": "Runs", "results": results}}}
        if "launchPipelineExecution" in query:
            return self._launch(variables)
        if "terminateRun" in query:
            with self.lock:
                run = self.runs.get(variables["runId"])
                if run is None:
                    answer = {"__typename": "RunNotFoundError", "runId": variables["runId"]}
                else:
                    run["status"] = "CANCELED"
                    answer = {
                        "__typename": "TerminateRunSuccess",
                        "run": {"runId": variables["runId"]},
                    }
            return 200, {"data": {"terminateRun": answer}}
        return 200, {"errors": [{"message": "the fake knows no such query"}]}

    def _launch(self, variables: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.launch_answer is not None:
            return self.launch_answer
        if self.refuse_launch:
            answer = {
                "__typename": "PipelineNotFoundError",
                "message": "Could not find Pipeline quote_pipeline.__repository__.x\nmore",
            }
            return 200, {"data": {"launchPipelineExecution": answer}}
        if self.launch_barrier is not None:
            self.launch_barrier.wait()
        if self.launch_hook is not None:
            self.launch_hook(self)
        params = variables["executionParams"]
        tags = {t["key"]: t["value"] for t in params["executionMetadata"]["tags"]}
        with self.lock:
            run_id = self._new_run(tags)
        answer = {"__typename": "LaunchRunSuccess", "run": {"runId": run_id}}
        return 200, {"data": {"launchPipelineExecution": answer}}

    def _validate(self, body: dict[str, Any]) -> None:
        """Record what the real schema would refuse: the document or its variables."""
        from dagster_graphql.schema import create_schema
        from graphql import OperationDefinitionNode, parse, validate
        from graphql.execution.values import get_variable_values

        schema = create_schema().graphql_schema
        document = parse(body["query"])
        errors = [e.message for e in validate(schema, document)]
        for node in document.definitions:
            if isinstance(node, OperationDefinitionNode):
                coerced = get_variable_values(
                    schema, node.variable_definitions or [], body.get("variables") or {}
                )
                if isinstance(coerced, list):
                    errors += [e.message for e in coerced]
        with self.lock:
            self.invalid += errors


@pytest.fixture
def fake_dagster() -> Iterator[FakeDagster]:
    fake = FakeDagster()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, answer = fake.answer(body)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(5)
    assert fake.invalid == [], "the site sent GraphQL the pinned Dagster would refuse"


@pytest.fixture
def sqlite_site_url(sqlite_url: str) -> str:
    """A SQLite database at the head revision with two tracked tickers and three quotes."""
    engine = create_db_engine(sqlite_url)
    add_tickers(engine, TRACKED, now=QUOTED_AT)
    quotes = [
        Quote(ticker, price, 1_000 + i, None if i else Decimal("-1.20"), QUOTED_AT, QUOTED_AT)
        for i, (ticker, price) in enumerate(PRICES.items())
    ]
    write_quotes(engine, quotes, written_at=QUOTED_AT)
    engine.dispose()
    return sqlite_url


@pytest.fixture
def site(sqlite_site_url: str, fake_dagster: FakeDagster) -> Iterator[Any]:
    with django_site(sqlite_site_url, dagster_url=fake_dagster.url) as client:
        yield client


def _post_json(client: Any, ticker: str) -> Any:
    return client.post(f"/api/ticker/{ticker}/refresh", content_type="application/json")


def test_a_json_refresh_queues_a_run_and_a_second_is_refused_while_it_is_pending(
    site: Any, fake_dagster: FakeDagster, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _post_json(site, "AAPL")
    assert first.status_code == 202, first.content
    body = first.json()
    run_id = body["run_id"]
    assert body["run_url"] == f"{fake_dagster.url}/runs/{run_id}"
    assert body["ticker"] == "AAPL" and body["status"] == "queued"
    # The page that waits for the run's price (see the button's test).
    page = urlsplit(body["page"])
    assert page.path == "/ticker/AAPL/"
    assert parse_qs(page.query)["run"] == [run_id]
    assert parse_qs(page.query)["awaiting"] == [QUOTED_AT.isoformat()]

    (launch,) = fake_dagster.launches
    params = launch["executionParams"]
    assert params["selector"] == {
        "repositoryLocationName": "quote_pipeline",
        "repositoryName": "__repository__",
        "pipelineName": "refresh_quotes",
        "solidSelection": None,
        "assetSelection": None,
    }
    tags = {t["key"]: t["value"] for t in params["executionMetadata"]["tags"]}
    assert tags == {
        "quote_pipeline/requested_ticker": "AAPL",
        "quote_pipeline/requested_by": "django",
    }
    # The run config fetches only AAPL, and the job accepts it as it stands.
    only = {"config": {"only_symbols": ["AAPL"]}}
    assert params["runConfigData"] == {"ops": {"raw_quotes": {"ops": {"plan_quote_batches": only}}}}
    from quote_pipeline.definitions import build_definitions

    monkeypatch.setenv("FMP_API_KEY", SANDBOX_KEY)
    job = build_definitions().resolve_job_def("refresh_quotes")
    dg.validate_run_config(job, params["runConfigData"])

    # Pending: refused, naming the run; nothing launched.
    second = _post_json(site, "AAPL")
    assert second.status_code == 409
    assert second.json()["error"] == "already_pending"
    assert second.json()["run_id"] == run_id and run_id in second.json()["message"]
    assert second.json()["run_url"] == body["run_url"]
    assert len(fake_dagster.launches) == 1
    # Per ticker: another one goes.
    assert _post_json(site, "MSFT").status_code == 202
    # Once the run has finished, AAPL may be asked for again.
    fake_dagster.finish(run_id)
    third = _post_json(site, "aapl")
    assert third.status_code == 202 and third.json()["run_id"] != run_id
    assert len(fake_dagster.launches) == 3


def _csrf_token(html: str) -> str:
    """The token of the page's refresh form, as a browser would send it."""
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def _status(html: str) -> str | None:
    """The refresh notice's state on a ticker page (waiting, written, given_up), if any."""
    match = re.search(r'id="refresh-status" data-state="(\w+)"', html)
    return match.group(1) if match else None


META_REFRESH = '<meta http-equiv="refresh" content="5">'


def _write_quote(url: str, ticker: str, price: str, at: datetime) -> None:
    """What the refresh run does: a newer quote in stocks."""
    engine = create_db_engine(url, upgrade=False)
    try:
        write_quotes(engine, [Quote(ticker, Decimal(price), 5, None, at, at)], written_at=at)
    finally:
        engine.dispose()


def test_the_button_is_a_csrf_protected_post_and_the_page_waits_for_the_new_price(
    site: Any, fake_dagster: FakeDagster, sqlite_site_url: str
) -> None:
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    page = client.get("/ticker/AAPL/").content.decode()
    assert _status(page) is None and META_REFRESH not in page
    token = _csrf_token(page)
    assert client.post("/ticker/AAPL/refresh").status_code == 403  # no token
    assert fake_dagster.launches == []

    pressed = client.post("/ticker/AAPL/refresh", {"csrfmiddlewaretoken": token})
    assert pressed.status_code == 302
    (run_id,) = fake_dagster.runs
    location = urlsplit(pressed["Location"])
    assert location.path == "/ticker/AAPL/"
    query = parse_qs(location.query)
    # The stored row's updated_at when the button was pressed, and the run.
    assert query["awaiting"] == [QUOTED_AT.isoformat()] and query["run"] == [run_id]

    # The run has not written yet: the page says so, links the run, and reloads itself.
    waiting = client.get(pressed["Location"]).content.decode()
    run_link = f'<a href="{fake_dagster.url}/runs/{run_id}">{run_id}</a>'
    assert _status(waiting) == "waiting"
    assert f"Refresh requested (run {run_link}): waiting for the new price." in waiting
    assert META_REFRESH in waiting
    assert '<span class="price" id="price">232.80</span>' in waiting
    # The POST asked three things (the check, the launch, the check again); GETs nothing.
    assert len(fake_dagster.requests) == 3
    assert _status(client.get(pressed["Location"]).content.decode()) == "waiting"
    assert len(fake_dagster.requests) == 3

    # The run writes a newer quote: the same URL now shows it, and stops reloading.
    written_at = datetime(2026, 11, 27, 15, 31, 2, 500000, tzinfo=UTC)
    _write_quote(sqlite_site_url, "AAPL", "233.15", written_at)
    written = client.get(pressed["Location"]).content.decode()
    assert _status(written) == "written" and META_REFRESH not in written
    assert '<span class="price" id="price">233.15</span>' in written
    assert (
        "New price <strong>233.15</strong>, updated at "
        '<time datetime="2026-11-27T15:31:02.500000+00:00">2026-11-27 10:31:02 EST</time>'
    ) in written
    assert f"(refresh run {run_link})" in written

    # Pressed again while the run is pending: refused naming it, and waiting for it again.
    again = client.post("/ticker/AAPL/refresh", {"csrfmiddlewaretoken": token}, follow=True)
    html = again.content.decode()
    assert "A refresh of AAPL is already pending" in html
    assert f"{run_link} (queued)" in html
    assert _status(html) == "waiting"
    assert parse_qs(urlsplit(again.redirect_chain[-1][0]).query)["awaiting"] == [
        written_at.isoformat()
    ]
    assert len(fake_dagster.launches) == 1
    # GET does not launch anything.
    assert client.get("/ticker/AAPL/refresh").status_code == 405


def test_the_waiting_page_without_a_stored_quote_gives_up_and_ignores_bad_parameters(
    site: Any, sqlite_site_url: str
) -> None:
    engine = create_db_engine(sqlite_site_url, upgrade=False)
    add_tickers(engine, ["NVDA"], now=QUOTED_AT)  # tracked, no quote yet
    engine.dispose()
    run_id = str(uuid.uuid4())
    now = datetime.now(UTC)

    def page(ticker: str, **params: str) -> str:
        return site.get(f"/ticker/{ticker}/?{urlencode(params)}").content.decode()

    just_asked = {"run": run_id, "asked": now.isoformat()}
    assert _status(page("NVDA", awaiting="none", **just_asked)) == "waiting"
    _write_quote(sqlite_site_url, "NVDA", "140.00", now)
    assert _status(page("NVDA", awaiting="none", **just_asked)) == "written"
    # Still no newer quote ten minutes on: say so, and stop reloading.
    late = page(
        "AAPL",
        awaiting=QUOTED_AT.isoformat(),
        run=run_id,
        asked=(now - timedelta(minutes=11)).isoformat(),
    )
    assert _status(late) == "given_up" and META_REFRESH not in late
    assert "No new price yet" in late and f"/runs/{run_id}" in late
    # Parameters that are not a run id and an aware time are ignored.
    for params in (
        {"awaiting": QUOTED_AT.isoformat(), "run": "not-a-run"},
        {"awaiting": "2026-11-27T15:30:00", "run": run_id},  # naive
        {"awaiting": "yesterday", "run": run_id},
        {"run": run_id},
    ):
        html = page("AAPL", **params)
        assert _status(html) is None and META_REFRESH not in html, params


def test_two_site_processes_asking_at_once_launch_one_run(
    site: Any, fake_dagster: FakeDagster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes' requests both pass the check before either launches: each launches,
    sees both runs pending, and the one whose run is newer terminates it and answers 409
    naming the older run."""
    from django.db import connections
    from django.test import Client
    from market import refresh

    # Two processes share no lock: one per request, as if each were another process.
    monkeypatch.setattr(refresh, "_lock_for", lambda ticker: threading.Lock())
    fake_dagster.launch_barrier = threading.Barrier(2, timeout=30)
    answers: list[Any] = []

    def press() -> None:
        try:
            answers.append(_post_json(Client(), "AAPL"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=press) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(a.status_code for a in answers) == [202, 409], [a.content for a in answers]
    accepted = next(a.json() for a in answers if a.status_code == 202)
    refused = next(a.json() for a in answers if a.status_code == 409)
    older, newer = sorted(fake_dagster.runs, key=lambda r: fake_dagster.runs[r]["created"])
    assert accepted["run_id"] == older and refused["run_id"] == older
    assert refused["error"] == "already_pending" and older in refused["message"]
    assert fake_dagster.terminated == [newer]
    assert fake_dagster.runs[newer]["status"] == "CANCELED"
    assert fake_dagster.runs[older]["status"] == "QUEUED"


def test_a_run_launched_elsewhere_meanwhile_decides_by_age(
    site: Any, fake_dagster: FakeDagster
) -> None:
    # Another process launched just before ours: ours is terminated, the other named.
    other: list[str] = []
    fake_dagster.launch_hook = lambda fake: other.append(fake.add_run("AAPL"))
    refused = _post_json(site, "AAPL")
    assert refused.status_code == 409 and refused.json()["run_id"] == other[0]
    (ours,) = set(fake_dagster.runs) - set(other)
    assert fake_dagster.terminated == [ours]
    assert fake_dagster.runs[ours]["status"] == "CANCELED"

    # Another process launches just after ours (MSFT): ours stands; the other terminates its.
    fake_dagster.launch_hook = None
    real_answer = fake_dagster._launch

    def then_another(variables: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        answer = real_answer(variables)
        other.append(fake_dagster.add_run("MSFT"))
        return answer

    fake_dagster._launch = then_another  # type: ignore[method-assign]
    accepted = _post_json(site, "MSFT")
    assert accepted.status_code == 202
    assert fake_dagster.runs[accepted.json()["run_id"]]["status"] == "QUEUED"
    assert fake_dagster.terminated == [ours]  # nothing more


def test_an_unreachable_webserver_is_refused_in_one_clear_line(sqlite_site_url: str) -> None:
    with django_site(sqlite_site_url, dagster_url=UNREACHABLE_DAGSTER_URL) as client:
        response = _post_json(client, "AAPL")
        assert response.status_code == 503
        body = response.json()
        assert body["error"] == "dagster_unreachable"
        assert body["message"] == (
            f"the Dagster webserver at {UNREACHABLE_DAGSTER_URL} is unreachable: is "
            "`dagster dev` (or dagster-webserver) running?"
        )
        page = client.post("/ticker/AAPL/refresh", follow=True)
        assert page.status_code == 200
        html = page.content.decode()
        assert f"Refresh not requested: {body['message']}" in html
        assert "Traceback" not in html


def test_what_is_refused_before_asking_dagster(site: Any, fake_dagster: FakeDagster) -> None:
    # A stored quote is not enough: the refresh fetches only tracked tickers.
    untracked = _post_json(site, UNTRACKED)
    assert untracked.status_code == 404 and untracked.json()["error"] == "not_tracked"
    assert "quote-pipeline tickers add OLD" in untracked.json()["message"]
    page = site.post(f"/ticker/{UNTRACKED}/refresh", follow=True).content.decode()
    assert "OLD is not tracked (not in the tickers table)" in page
    assert _post_json(site, "ZZZZ").status_code == 404
    assert _post_json(site, "%24%24").json()["error"] == "invalid_symbol"
    assert site.post("/ticker/ZZZZ/refresh").status_code == 404
    assert site.get("/api/ticker/AAPL/refresh").status_code == 405
    wrong_type = site.post("/api/ticker/AAPL/refresh", {"a": "b"})  # a form, not JSON
    assert wrong_type.status_code == 415
    assert fake_dagster.requests == []


def test_a_launch_dagster_refuses_is_one_line(site: Any, fake_dagster: FakeDagster) -> None:
    fake_dagster.refuse_launch = True
    response = _post_json(site, "AAPL")
    assert response.status_code == 502
    assert response.json() == {
        "error": "dagster_refused",
        "message": "Dagster refused to launch refresh_quotes: PipelineNotFoundError: "
        "Could not find Pipeline quote_pipeline.__repository__.x",
    }


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        # GraphQL errors: the first error's first line, not the client's multi-line wrapper
        # quoting the whole query.
        (
            (200, {"errors": [{"message": "Variable got invalid value\nat line 2"}, {"m": 2}]}),
            "Variable got invalid value",
        ),
        # An HTTP error without a GraphQL answer: the HTTP error's first line.
        ((500, {"detail": "boom"}), "500 Server Error: Internal Server Error for url: "),
    ],
    ids=["graphql-errors", "http-500"],
)
def test_a_failing_launch_reports_the_real_first_line(
    site: Any, fake_dagster: FakeDagster, answer: tuple[int, dict[str, Any]], message: str
) -> None:
    fake_dagster.launch_answer = answer
    body = _post_json(site, "AAPL").json()
    assert body["error"] == "dagster_refused"
    assert body["message"].startswith(f"Dagster refused to launch refresh_quotes: {message}")
    assert "\n" not in body["message"] and "query" not in body["message"]
    page = site.post("/ticker/AAPL/refresh", follow=True).content.decode()
    assert f"Refresh not requested: Dagster refused to launch refresh_quotes: {message}" in page


def test_a_failing_pending_runs_query_is_one_line(site: Any, fake_dagster: FakeDagster) -> None:
    fake_dagster.runs_errors = [{"message": "Cannot query field\nsecond line"}]
    response = _post_json(site, "AAPL")
    assert response.status_code == 502
    assert response.json()["message"] == "Dagster refused to list runs: Cannot query field"
    assert fake_dagster.launches == []


def test_sqlite_prices_and_times_read_exactly(site: Any, sqlite_site_url: str) -> None:
    """SQLite stores exact prices as text and times as naive UTC text: both read back as the
    pipeline wrote them (Decimal digits kept, aware UTC), and the connection is read-only."""
    from django.db import DatabaseError
    from market.models import Stock

    for ticker, price in PRICES.items():
        stock = Stock.objects.get(ticker=ticker)
        assert type(stock.price) is Decimal and str(stock.price) == str(price)
        assert stock.quoted_at == QUOTED_AT and stock.quoted_at.utcoffset() is not None
        body = site.get(f"/api/ticker/{ticker}/").json()
        assert body["stock"]["price"] == format(price, "f")
        assert body["stock"]["quoted_at"] == "2026-11-27T15:30:00.123456+00:00"
    html = site.get("/").content.decode()
    assert ">232.80<" in html and ">0.00001234<" in html and ">7.1000<" in html
    assert "2026-11-27 10:30:00 EST" in html  # 15:30 UTC in New York
    with pytest.raises(DatabaseError, match="readonly"):
        Stock.objects.filter(ticker="AAPL").update(volume=1)
    # The SQLAlchemy engine of the chart and the revision check is read-only too.
    from market.engine import site_engine

    with (
        pytest.raises(sa.exc.OperationalError, match="readonly"),
        site_engine().begin() as conn,
    ):
        conn.execute(sa.text("UPDATE stocks SET volume = 1"))
