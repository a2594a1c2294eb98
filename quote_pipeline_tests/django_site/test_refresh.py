"""The "Refresh this ticker now" button and its JSON twin, against a fake Dagster GraphQL
server on loopback (the real webserver: e2e/test_webserver_daemon.py), on SQLite.

The fake answers the two documents the site sends — dagster-graphql's launch mutation and
the pending-runs query — after validating each, with its variables, against the pinned
dagster-graphql's own schema; a launched run stays pending until the test finishes it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import pytest

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
    """What the fake webserver was asked, and the runs it has 'queued'."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)
    refuse_launch: bool = False

    @property
    def launches(self) -> list[dict[str, Any]]:
        return [r["variables"] for r in self.requests if "launchPipelineExecution" in r["query"]]

    def finish(self, run_id: str) -> None:
        self.runs[run_id]["status"] = "SUCCESS"

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(body)
        self._validate(body)
        query, variables = body["query"], body.get("variables") or {}
        if "runsOrError" in query:
            wanted = {(t["key"], t["value"]) for t in variables["filter"]["tags"]}
            statuses = set(variables["filter"]["statuses"])
            results = [
                {"runId": run_id, "status": run["status"], "creationTime": run["created"]}
                for run_id, run in self.runs.items()
                if wanted <= set(run["tags"].items()) and run["status"] in statuses
            ]
            return {"data": {"runsOrError": {"__typename": "Runs", "results": results}}}
        if "launchPipelineExecution" in query:
            if self.refuse_launch:
                answer = {
                    "__typename": "PipelineNotFoundError",
                    "message": "Could not find Pipeline quote_pipeline.__repository__.x\nmore",
                }
                return {"data": {"launchPipelineExecution": answer}}
            params = variables["executionParams"]
            run_id = str(uuid.uuid4())
            self.runs[run_id] = {
                "status": "QUEUED",
                "created": float(len(self.runs)),
                "tags": {t["key"]: t["value"] for t in params["executionMetadata"]["tags"]},
            }
            answer = {"__typename": "LaunchRunSuccess", "run": {"runId": run_id}}
            return {"data": {"launchPipelineExecution": answer}}
        return {"errors": [{"message": "the fake knows no such query"}]}

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
        self.invalid += errors


@pytest.fixture
def fake_dagster() -> Iterator[FakeDagster]:
    fake = FakeDagster()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            payload = json.dumps(fake.answer(body)).encode()
            self.send_response(200)
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


def test_the_button_is_a_csrf_protected_post_that_comes_back_with_the_run_link(
    site: Any, fake_dagster: FakeDagster
) -> None:
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    page = client.get("/ticker/AAPL/")
    token = page.context["csrf_token"]
    assert client.post("/ticker/AAPL/refresh").status_code == 403  # no token
    assert fake_dagster.launches == []

    pressed = client.post("/ticker/AAPL/refresh", {"csrfmiddlewaretoken": str(token)})
    assert pressed.status_code == 302 and pressed["Location"] == "/ticker/AAPL/"
    (run_id,) = fake_dagster.runs
    shown = client.get("/ticker/AAPL/").content.decode()
    assert f'Refresh of AAPL queued: run <a href="{fake_dagster.url}/runs/{run_id}">' in shown

    again = client.post(
        "/ticker/AAPL/refresh", {"csrfmiddlewaretoken": str(token)}, follow=True
    ).content.decode()
    assert "A refresh of AAPL is already pending" in again
    assert f'<a href="{fake_dagster.url}/runs/{run_id}">{run_id}</a> (queued)' in again
    assert len(fake_dagster.launches) == 1
    # GET does not launch anything.
    assert client.get("/ticker/AAPL/refresh").status_code == 405


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
