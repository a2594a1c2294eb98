"""The Massive client against a small real HTTP server on loopback: where the key travels,
what each error form becomes, retries, redaction, and splitting long ticker lists.

The server is this module's own (``http.server`` in a thread), not the project's sandbox:
each test scripts exactly the answers it needs.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from string import Template
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from pydantic import ValidationError

from quote_pipeline.api_errors import ApiAuthError, ApiEndpointRestricted, ApiQuotaExhausted
from quote_pipeline.fetch_engine import FetchEngine, RetryBudget
from quote_pipeline.fmp.client import ClientSettings
from quote_pipeline.http_client import HttpClientSettings
from quote_pipeline.massive import (
    SNAPSHOT_PATH,
    MassiveAuthError,
    MassiveClient,
    MassiveEndpointRestricted,
    MassiveError,
    MassiveQuotaExhausted,
    MassiveSettings,
    MissingAPIKeyError,
    daily_aggs_request,
    grouped_daily,
    probe_snapshot,
    snapshot_request,
)
from quote_pipeline.models import FailureKind

KEY = "mk-LEAKCHECK-5e1f0c9d2b7a"  # distinctive, so a leak is easy to search for
GROUPED = "/v2/aggs/grouped/locale/us/market/stocks/2025-11-24"
AGGS = "/v2/aggs/ticker/AAPL/range/1/day/2025-11-01/2025-11-30"
ROW = Template(
    '{"ticker": "$ticker", "todaysChange": 1.25, "day": {"o": 10, "h": 11, "l": 9, "c": 10.50, '
    '"v": 1000}, "min": {"c": 10.55, "t": 1764000000000, "av": 1000}, "prevDay": {"c": 9.25}}'
)

Reply = tuple[int, str | bytes]  # status, body (JSON text unless it says otherwise)


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    target: str  # the request line's path and query, as sent
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class Loopback(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.route: Callable[[Seen], Reply] = lambda _: (200, '{"status": "OK"}')

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def script(self, *replies: Reply) -> None:
        """Answer with ``replies`` in turn, the last one from then on."""
        queue = list(replies)

        def route(_: Seen) -> Reply:
            with self.lock:
                return queue.pop(0) if len(queue) > 1 else queue[0]

        self.route = route


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API: the client's pool is used
    server: Loopback

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        seen = Seen(self.path, split.path, dict(parse_qsl(split.query, keep_blank_values=True)), {})
        seen.headers.update(self.headers.items())
        with self.server.lock:
            self.server.seen.append(seen)
        status, body = self.server.route(seen)
        data = body.encode() if isinstance(body, str) else body
        html = data.lstrip().startswith(b"<")
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if html else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Loopback]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = Loopback()
    # A short poll: shutdown() waits for it, and every test stops a server.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def client_for(api: Loopback, **settings: Any) -> MassiveClient:
    fast: dict[str, Any] = {
        "read_timeout": 2.0,
        "attempts": 3,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "rate_limit_pause": 0.01,
    }
    return MassiveClient(KEY, MassiveSettings(base_url=api.url, **{**fast, **settings}))


def snapshot_body(*tickers: str) -> str:
    rows = ",".join(ROW.substitute(ticker=t) for t in tickers)
    return f'{{"status": "DELAYED", "count": {len(tickers)}, "tickers": [{rows}]}}'


def failure_of(call: Callable[[], object]) -> MassiveError:
    with pytest.raises(MassiveError) as raised:
        call()
    return raised.value


# --- the key ---------------------------------------------------------------------------------


def test_the_key_travels_only_in_the_bearer_header(
    api: Loopback, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api.script((200, snapshot_body("AAPL", "BRK.B")))
    with client_for(api) as client:
        results = snapshot_request(client)(["AAPL", "BRK.B", "NOPE"])
    (seen,) = api.seen
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in seen.target
    assert seen.path == SNAPSHOT_PATH
    assert seen.query == {"tickers": "AAPL,BRK.B,NOPE", "include_otc": "false"}
    assert "tickers=AAPL,BRK.B,NOPE&" in seen.target  # the list stays readable
    assert [r.symbol for r in results] == ["AAPL", "BRK.B", "NOPE"]
    quote = results[0].value
    assert quote is not None and str(quote.price) == "10.55" and quote.source == "massive"
    assert results[2].failure is not None and results[2].failure.kind == FailureKind.NO_QUOTE
    assert KEY not in caplog.text


def test_a_missing_key_fails_before_any_request(api: Loopback) -> None:
    for key in (None, "", "   "):
        with pytest.raises(MissingAPIKeyError, match="set MASSIVE_API_KEY"):
            MassiveClient(key, MassiveSettings(base_url=api.url))
    assert api.seen == []


# --- error forms ---------------------------------------------------------------------------------

UNKNOWN_KEY = '{"status": "ERROR", "request_id": "r1", "error": "Unknown API Key"}'
NOT_ENTITLED = (
    '{"status": "NOT_AUTHORIZED", "request_id": "r2", "message": "You are not entitled to '
    'this data. Please upgrade your plan at https://massive.com/pricing"}'
)
BEFORE_CLOSE = (
    '{"status": "NOT_AUTHORIZED", "request_id": "r3", "message": "Attempted to request '
    "today's data before end of day. Please upgrade your plan at https://massive.com/pricing\"}"
)
TOO_MANY = (
    '{"status": "ERROR", "request_id": "r4", "error": "You\'ve exceeded the maximum requests '
    'per minute, please wait or upgrade your subscription to continue."}'
)


def test_an_unknown_key_is_an_auth_error_after_one_request(api: Loopback) -> None:
    api.script((401, UNKNOWN_KEY))
    with client_for(api) as client:
        error = failure_of(lambda: client.get_json(SNAPSHOT_PATH, {"tickers": "AAPL"}))
    assert isinstance(error, MassiveAuthError) and isinstance(error, ApiAuthError)
    assert error.kind == FailureKind.AUTH_ERROR and error.status == 401
    assert str(error) == f"{SNAPSHOT_PATH}: HTTP 401: Unknown API Key"
    assert len(api.seen) == 1


@pytest.mark.parametrize("path", [SNAPSHOT_PATH, GROUPED])
def test_not_entitled_on_a_whole_market_endpoint_restricts_the_endpoint(
    api: Loopback, path: str
) -> None:
    api.script((403, NOT_ENTITLED))
    with client_for(api) as client:
        error = failure_of(lambda: client.get_json(path, {}))
    assert isinstance(error, MassiveEndpointRestricted)
    assert isinstance(error, ApiEndpointRestricted)
    assert error.kind == FailureKind.NOT_IN_PLAN
    assert "You are not entitled to this data" in str(error) and path in str(error)
    assert len(api.seen) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (AGGS, NOT_ENTITLED),
        ("/v2/aggs/ticker/AAPL/prev", NOT_ENTITLED),
        (GROUPED, BEFORE_CLOSE),  # today before the close: another day would work
    ],
)
def test_not_entitled_for_one_ticker_or_day_is_that_requests_failure(
    api: Loopback, path: str, body: str
) -> None:
    api.script((403, body))
    with client_for(api) as client:
        error = failure_of(lambda: client.get_json(path, {}))
    assert type(error) is MassiveError
    assert error.kind == FailureKind.NOT_IN_PLAN
    assert len(api.seen) == 1


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ((404, '{"status": "NOT_FOUND", "message": "Not Found"}'), FailureKind.NO_QUOTE),
        ((404, "404 page not found"), FailureKind.NO_QUOTE),
        ((400, '{"status": "ERROR", "error": "bad date"}'), FailureKind.API_ERROR),
        ((200, '{"status": "ERROR", "error": "Something went wrong"}'), FailureKind.API_ERROR),
        ((200, '[{"ticker": "AAPL"}]'), FailureKind.BAD_RESPONSE),
        ((200, '"OK"'), FailureKind.BAD_RESPONSE),
        ((200, '{"status": "OK", "tickers": ['), FailureKind.BAD_RESPONSE),
        ((200, b"\xff\xfe"), FailureKind.BAD_RESPONSE),
    ],
)
def test_other_answers_are_classified_without_retrying(
    api: Loopback, reply: Reply, kind: FailureKind
) -> None:
    api.script(reply)
    with client_for(api) as client:
        error = failure_of(lambda: client.get_json(AGGS, {}))
    assert error.kind == kind
    assert not isinstance(error, ApiAuthError | ApiEndpointRestricted | ApiQuotaExhausted)
    assert str(error).startswith(f"{AGGS}: ")
    assert len(api.seen) == 1


def test_ok_and_delayed_are_answers(api: Loopback) -> None:
    api.script((200, '{"status": "OK", "results": []}'), (200, '{"status": "DELAYED"}'))
    with client_for(api) as client:
        assert client.get_json(AGGS, {})[0] == {"status": "OK", "results": []}
        assert client.get_json(AGGS, {})[0] == {"status": "DELAYED"}


@pytest.mark.parametrize("body", [TOO_MANY, ""])
def test_a_429_is_retried_and_noted_on_the_pacer(api: Loopback, body: str) -> None:
    api.script((429, body), (200, snapshot_body("AAPL")))
    with client_for(api) as client:
        payload, _ = client.get_json(SNAPSHOT_PATH, {"tickers": "AAPL"})
        assert payload["tickers"][0]["ticker"] == "AAPL"
        assert client.requests_made == 2
        assert not client.quota_exhausted
    assert len(api.seen) == 2


def test_429s_that_keep_coming_are_rate_limited_then_quota_exhausted(api: Loopback) -> None:
    api.script((429, TOO_MANY))
    with client_for(api, attempts=2) as client:
        error = failure_of(lambda: client.get_json(SNAPSHOT_PATH, {}))
        assert error.kind == FailureKind.RATE_LIMITED
        assert "exceeded the maximum requests per minute" in str(error)
    # A streak long enough (here: 3 in a row over 20 ms) means the quota is gone.
    settings = {"attempts": 10, "quota_exhausted_streak": 3, "quota_exhausted_after": 0.02}
    with client_for(api, **settings) as client:
        error = failure_of(lambda: client.get_json(SNAPSHOT_PATH, {}))
        assert isinstance(error, MassiveQuotaExhausted) and isinstance(error, ApiQuotaExhausted)
        assert error.kind == FailureKind.QUOTA_EXHAUSTED and client.quota_exhausted
        asked = len(api.seen)
        (result,) = snapshot_request(client)(["AAPL"])
    assert result.failure is not None and result.failure.kind == FailureKind.QUOTA_EXHAUSTED
    assert len(api.seen) == asked  # not asked again once the quota is gone


HTML_502 = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body>\n</html>\n"


def test_a_5xx_with_an_html_body_is_transient_and_retried(api: Loopback) -> None:
    api.script((502, HTML_502), (503, ""), (200, '{"status": "OK", "results": []}'))
    with client_for(api) as client:
        assert client.get_json(AGGS, {})[0]["status"] == "OK"
    assert len(api.seen) == 3

    api.seen.clear()
    api.script((502, HTML_502))
    with client_for(api) as client:
        error = failure_of(lambda: client.get_json(AGGS, {}))
    assert error.kind == FailureKind.SERVER_ERROR and error.status == 502
    assert str(error) == f"{AGGS}: HTTP 502: Bad Gateway"
    assert len(api.seen) == 3  # every attempt


def test_a_refused_connection_is_a_transport_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = MassiveSettings(base_url=f"http://127.0.0.1:{port}", attempts=2, backoff_initial=0)
    with MassiveClient(KEY, settings) as client:
        error = failure_of(lambda: client.get_json(SNAPSHOT_PATH, {"tickers": "AAPL"}))
        assert client.requests_made == 2
    assert error.kind == FailureKind.TRANSPORT_ERROR
    assert KEY not in str(error)


def test_the_key_is_in_no_message_or_log_record(
    api: Loopback, caplog: pytest.LogCaptureFixture
) -> None:
    """Even when the vendor's own text quotes it, or the URL asked for carried it."""
    caplog.set_level(logging.DEBUG)
    echoed = json.dumps(f"Unknown API Key {KEY}\nor Bearer {KEY}")  # a line break inside
    replies: list[Reply] = [
        (401, f'{{"status": "ERROR", "error": {echoed}}}'),
        (403, f'{{"status": "NOT_AUTHORIZED", "message": {echoed}}}'),
        (200, f'{{"status": "ERROR", "error": "key {KEY} refused"}}'),
        (200, f'["{KEY}"]'),
        (502, f"<html>{KEY}</html>"),
        (429, KEY),
    ]
    texts: list[str] = []
    for reply in replies:
        api.script(reply)
        with client_for(api, attempts=1) as client:
            error = failure_of(lambda: client.get_json(SNAPSHOT_PATH, {"apiKey": KEY}))
        texts.append(str(error))
        assert "\n" not in str(error)  # one line
    assert texts[0] == f"{SNAPSHOT_PATH}: HTTP 401: Unknown API Key *** or Bearer ***"
    for text in texts:
        assert KEY not in text
    assert KEY not in caplog.text
    assert all(KEY not in record.getMessage() for record in caplog.records)


# --- requests of the datasets ------------------------------------------------------------------


def test_long_ticker_lists_are_split_under_max_query_chars(api: Loopback) -> None:
    symbols = [f"SYM{i:03d}" for i in range(250)]

    def answer(seen: Seen) -> Reply:
        return 200, snapshot_body(*seen.query["tickers"].split(","))

    api.route = answer
    with client_for(api, max_query_chars=400, tickers_per_snapshot=100) as client:
        engine = FetchEngine(client, RetryBudget(extra_passes=0))
        report = engine.fetch(
            symbols,
            snapshot_request(client),
            symbols_per_request=client.settings.tickers_per_snapshot,
        )
    assert report.failures == []
    assert sorted(r.symbol for r in report.results) == symbols
    asked = [s for seen in api.seen for s in seen.query["tickers"].split(",")]
    assert sorted(asked) == symbols  # each ticker asked once
    assert all(len(urlsplit(seen.target).query) <= 400 for seen in api.seen)
    assert len(api.seen) >= 250 * len("SYM000,") // 400


def test_the_probe_raises_what_stops_a_run_and_returns_when_the_api_answers(
    api: Loopback,
) -> None:
    with client_for(api) as client:
        api.script((200, snapshot_body()))  # no quote for it: still an answer
        probe_snapshot(client, ["NOPE", "AAPL"])
        assert api.seen[-1].query["tickers"] == "NOPE"
        api.script((200, '{"status": "ERROR", "error": "odd"}'))
        probe_snapshot(client, ["AAPL"])
        for reply, expected in [
            ((401, UNKNOWN_KEY), MassiveAuthError),
            ((403, NOT_ENTITLED), MassiveEndpointRestricted),
        ]:
            api.script(reply)
            with pytest.raises(expected):
                probe_snapshot(client, ["AAPL"])
        api.script((503, HTML_502))
        error = failure_of(lambda: probe_snapshot(client, ["AAPL"]))
        assert error.kind == FailureKind.SERVER_ERROR
    asked = len(api.seen)
    with client_for(api) as client:
        probe_snapshot(client, [])
    assert len(api.seen) == asked


def test_per_ticker_failures_stay_with_their_ticker(api: Loopback) -> None:
    def answer(seen: Seen) -> Reply:
        if "/NOPE/" in seen.path:
            return 403, NOT_ENTITLED
        return 200, (
            '{"ticker": "AAPL", "status": "OK", "resultsCount": 1, "results": [{"o": 1, '
            '"h": 2, "l": 1, "c": 1.5, "v": 10, "vw": 1.2, "t": 1763960400000}]}'
        )

    api.route = answer
    with client_for(api) as client:
        engine = FetchEngine(client, RetryBudget(extra_passes=0))
        report = engine.fetch(
            ["AAPL", "NOPE"], daily_aggs_request(client, date(2025, 11, 1), date(2025, 11, 30))
        )
    by_symbol = {r.symbol: r for r in report.results}
    assert by_symbol["AAPL"].value is not None
    assert [b.day for b in by_symbol["AAPL"].value.bars] == [date(2025, 11, 24)]
    nope = by_symbol["NOPE"].failure
    assert nope is not None and nope.kind == FailureKind.NOT_IN_PLAN
    assert {seen.query["adjusted"] for seen in api.seen} == {"false"}


def test_a_grouped_day_refused_by_the_plan_stops_with_endpoint_restricted(
    api: Loopback,
) -> None:
    api.script((403, NOT_ENTITLED))
    with client_for(api) as client, pytest.raises(MassiveEndpointRestricted):
        grouped_daily(client, date(2025, 11, 24))
    api.script((403, BEFORE_CLOSE))
    with client_for(api) as client:
        error = failure_of(lambda: grouped_daily(client, date(2025, 11, 24)))
    assert type(error) is MassiveError and error.kind == FailureKind.NOT_IN_PLAN


def test_next_url_on_the_same_host_goes_through_the_client(api: Loopback) -> None:
    def answer(seen: Seen) -> Reply:
        if seen.query.get("cursor") == "p2":
            return 200, (
                '{"ticker": "AAPL", "status": "OK", "results": [{"o": 1, "h": 2, "l": 1, '
                '"c": 1.5, "v": 10, "t": 1764046800000}]}'
            )
        return 200, (
            '{"ticker": "AAPL", "status": "OK", "results": [{"o": 1, "h": 2, "l": 1, "c": 1.5, '
            '"v": 10, "t": 1763960400000}], "next_url": "'
            + api.url
            + '/v2/aggs/ticker/AAPL/range/1/day/2025-11-01/2025-11-30?cursor=p2"}'
        )

    api.route = answer
    with client_for(api) as client:
        (result,) = daily_aggs_request(client, date(2025, 11, 1), date(2025, 11, 30))(["AAPL"])
    assert [b.day for b in result.value.bars] == [date(2025, 11, 24), date(2025, 11, 25)]
    assert len(api.seen) == 2
    assert all(seen.headers["Authorization"] == f"Bearer {KEY}" for seen in api.seen)


# --- the settings ---------------------------------------------------------------------------------


def test_the_settings_share_the_generic_fields() -> None:
    generic = set(HttpClientSettings.model_fields)
    assert set(ClientSettings.model_fields) == generic  # FMP's resource inherits exactly these
    assert set(MassiveSettings.model_fields) == generic | {
        "tickers_per_snapshot",
        "max_query_chars",
    }
    assert MassiveSettings().base_url == "https://api.massive.com"
    assert ClientSettings().base_url == "https://financialmodelingprep.com"
    assert MassiveSettings().tickers_per_snapshot == 1000
    assert MassiveSettings().max_query_chars == 6000
    with pytest.raises(ValidationError):  # frozen, like FMP's
        MassiveSettings().base_url = "x"  # type: ignore[misc]
