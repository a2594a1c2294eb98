"""The FMP client against the sandbox on loopback: shapes, error kinds, retries, redaction."""

import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests

from quote_pipeline.fetch_engine import FetchEngine, RetryBudget
from quote_pipeline.fmp import (
    ClientSettings,
    FMPAuthError,
    FMPClient,
    MissingAPIKeyError,
    QuoteFetchResult,
    fetch_quotes,
    parse_quote,
    probe,
)
from quote_pipeline.fmp.quotes import PROBE_PATIENCE_SECONDS
from quote_pipeline.models import FailureKind
from quote_pipeline.sandbox import FaultConfig, SandboxServer
from quote_pipeline_tests.conftest import SANDBOX_KEY, SandboxFactory

SYMBOLS = ["AAPL", "MSFT", "BRK.B", "BTCUSD", "^GSPC", "EURUSD=X", "PENNY", "XYZ-W"]


def client_for(sandbox: SandboxServer, key: str = SANDBOX_KEY, **settings: object) -> FMPClient:
    defaults: dict[str, object] = {"read_timeout": 2.0, "backoff_initial": 0.01}
    return FMPClient(key, ClientSettings(base_url=sandbox.url, **{**defaults, **settings}))  # type: ignore[arg-type]


def served(sandbox: SandboxServer, symbol: str) -> dict:
    """What the sandbox answers for one symbol, decoded exactly."""
    response = requests.get(
        f"{sandbox.url}/stable/quote-short",
        params={"symbol": symbol, "apikey": SANDBOX_KEY},
        timeout=5,
    )
    (row,) = json.loads(response.text, parse_float=Decimal)
    return row


def fetch(client: FMPClient, symbols: list[str], **options: object) -> QuoteFetchResult:
    """Quotes through the fetch engine, one pass (no retry budget), as a step asks them."""
    engine = FetchEngine(client, RetryBudget(extra_passes=0))
    return fetch_quotes(engine, client, symbols, **options)  # type: ignore[arg-type]


def by_symbol(items: list) -> dict:
    return {item.symbol: item for item in items}


def test_single_symbol_quotes_are_exact(sandbox: SandboxServer) -> None:
    before = datetime.now(UTC)
    with client_for(sandbox) as client:
        result = fetch(client, SYMBOLS, use_batch_endpoint=False)
    after = datetime.now(UTC)
    assert result.failures == []
    assert result.requests_made == len(SYMBOLS)
    quotes = by_symbol(result.quotes)
    for symbol in SYMBOLS:
        expected = served(sandbox, symbol)
        assert quotes[symbol].price == expected["price"]
        assert isinstance(quotes[symbol].price, Decimal)
        assert quotes[symbol].volume == expected["volume"]
        # quote-short serves no timestamp: the quote is as of when its answer arrived.
        assert "timestamp" not in expected
        assert quotes[symbol].quoted_at == quotes[symbol].fetched_at
        assert before <= quotes[symbol].quoted_at <= after
        assert quotes[symbol].quoted_at.utcoffset() == timedelta(0)
    assert any(q.volume > 2**31 for q in quotes.values())


def test_batch_endpoint_uses_one_request_per_chunk(start_sandbox: SandboxFactory) -> None:
    sandbox = start_sandbox(premium=True)
    symbols = [f"S{i:03d}" for i in range(250)]
    with client_for(sandbox, symbols_per_request=100) as client:
        assert probe(client, ["S000"], try_batch=True)
        result = fetch(client, symbols, use_batch_endpoint=True)
    assert result.used_batch_endpoint
    assert len(result.quotes) == 250 and not result.failures
    assert result.requests_made == 3
    paths = {r["path"] for r in sandbox.stats()["requests"]}
    assert paths == {"/stable/batch-quote-short"}


def test_batch_refused_with_402_falls_back_to_single_requests(sandbox: SandboxServer) -> None:
    told: list[str] = []
    with client_for(sandbox) as client:
        assert probe(client, ["AAPL"], try_batch=True) is False
        result = fetch(client, SYMBOLS, use_batch_endpoint=True, on_fallback=told.append)
    assert not result.used_batch_endpoint
    assert len(result.quotes) == len(SYMBOLS)
    assert told and "402" in told[0]


def test_unknown_symbol_is_a_no_quote_failure(start_sandbox: SandboxFactory) -> None:
    sandbox = start_sandbox(faults=FaultConfig(unknown_symbols={"GONE"}))
    for use_batch, premium_sandbox in ((False, sandbox), (True, start_sandbox(premium=True))):
        if use_batch:
            premium_sandbox = start_sandbox(
                premium=True, faults=FaultConfig(unknown_symbols={"GONE"})
            )
        with client_for(premium_sandbox) as client:
            result = fetch(client, ["AAPL", "GONE", "MSFT"], use_batch_endpoint=use_batch)
        assert sorted(by_symbol(result.quotes)) == ["AAPL", "MSFT"]
        (failure,) = result.failures
        assert (failure.symbol, failure.kind) == ("GONE", FailureKind.NO_QUOTE)


def test_invalid_key_fails_fast_without_leaking_it(sandbox: SandboxServer) -> None:
    wrong = "wrong-key-0123456789"
    with client_for(sandbox, key=wrong) as client:
        with pytest.raises(FMPAuthError) as caught:
            probe(client, ["AAPL"], try_batch=False)
        assert client.requests_made == 1
    assert caught.value.status == 401
    assert "Invalid API KEY" in str(caught.value)
    assert wrong not in str(caught.value)


def test_missing_key_is_refused_before_any_request() -> None:
    with pytest.raises(MissingAPIKeyError, match="FMP_API_KEY"):
        FMPClient("  ", ClientSettings(base_url="http://127.0.0.1:9"))


def test_transport_errors_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # Nothing listens on port 9 of loopback: connection refused on every attempt.
    with FMPClient(
        SANDBOX_KEY, ClientSettings(base_url="http://127.0.0.1:9", attempts=2, backoff_initial=0.01)
    ) as client:
        result = fetch(client, ["AAPL"], use_batch_endpoint=False)
    (failure,) = result.failures
    assert failure.kind == FailureKind.TRANSPORT_ERROR
    assert "Connection refused" in failure.message
    assert SANDBOX_KEY not in failure.message
    assert SANDBOX_KEY not in caplog.text


def test_library_debug_logs_of_successful_requests_carry_no_key(
    sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with client_for(sandbox) as client:
        assert len(fetch(client, ["AAPL", "MSFT"], use_batch_endpoint=False).quotes) == 2
    assert "/stable/quote-short?symbol=AAPL&apikey=***" in caplog.text  # urllib3 logged it
    assert SANDBOX_KEY not in caplog.text


def test_a_timestamp_out_of_range_is_a_bad_row_not_a_crash() -> None:
    row = {"symbol": "X", "price": Decimal(1), "volume": 1, "timestamp": 10**20}
    with pytest.raises(ValueError, match="out of range"):
        parse_quote(row, datetime.now(UTC))


def test_parse_quote_uses_the_api_timestamp_when_given() -> None:
    fetched = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
    row = json.loads(
        '{"symbol": "aapl", "price": 232.80, "volume": 44489128, "change": 2.64, '
        '"timestamp": 1764000000}',
        parse_float=Decimal,
    )
    quote = parse_quote(row, fetched)
    assert quote.symbol == "AAPL"
    assert str(quote.price) == "232.80"
    assert quote.quoted_at == datetime.fromtimestamp(1764000000, tz=UTC)
    assert parse_quote({**row, "timestamp": None}, fetched).quoted_at == fetched


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"symbol": "X", "price": Decimal(0), "volume": 1}, "price must be positive, got 0"),
        (
            {"symbol": "X", "price": Decimal("-1.5"), "volume": 1},
            "price must be positive, got -1.5",
        ),
        ({"symbol": "X", "price": "n/a", "volume": 1}, "price must be a number, got 'n/a'"),
        ({"symbol": "X", "volume": 1}, "missing 'price'"),
        (
            {"symbol": "X", "price": Decimal(1), "volume": -1},
            "volume must not be negative, got -1",
        ),
        (
            {"symbol": "X", "price": Decimal(1), "volume": Decimal("1.5")},
            "volume must be a whole number, got 1.5",
        ),
        ({"symbol": "X", "price": Decimal(1), "volume": True}, "volume must be a number, got True"),
        ({"symbol": "X", "price": Decimal(1)}, "missing 'volume'"),
    ],
)
def test_parse_quote_refuses_bad_rows(row: dict, message: str) -> None:
    # The whole message, so a row refused for another reason than the one meant fails.
    with pytest.raises(ValueError, match=f"^{re.escape(f'X: {message}')}$"):
        parse_quote(row, datetime.now(UTC))


def test_a_proxy_from_the_environment_is_used(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client reads proxy settings once, when it is made, rather than on every request;
    # they must still apply. The sandbox stands in for the proxy: it is sent the request for
    # a host that does not resolve, so only the proxy route can answer it.
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", sandbox.url)
    monkeypatch.setenv("http_proxy", sandbox.url)
    settings = ClientSettings(base_url="http://fmp.invalid", attempts=1, read_timeout=2.0)
    with FMPClient(SANDBOX_KEY, settings) as client:
        result = fetch(client, ["AAPL"], use_batch_endpoint=False)
    assert [q.symbol for q in result.quotes] == ["AAPL"], result.failures


def test_a_hanging_first_symbol_costs_the_probe_a_moment_not_a_timeout(
    start_sandbox: SandboxFactory,
) -> None:
    sandbox = start_sandbox(faults=FaultConfig(hang_symbols={"HANG"}, hang_seconds=5))
    with client_for(sandbox, read_timeout=10.0) as client:
        started = time.monotonic()
        assert probe(client, ["HANG", "AAPL", "MSFT"], try_batch=False) is False
        waited = time.monotonic() - started
    # The patience for the first symbol, then the first of the others to answer.
    assert PROBE_PATIENCE_SECONDS <= waited < PROBE_PATIENCE_SECONDS + 1.5


def test_the_probe_tries_known_stragglers_last(sandbox: SandboxServer) -> None:
    with client_for(sandbox) as client:
        probe(client, ["AAPL", "MSFT"], try_batch=False, ask_last={"AAPL"})
        assert client.requests_made == 1
    (asked,) = sandbox.stats()["requests"]
    assert asked["symbols"] == ["MSFT"]
