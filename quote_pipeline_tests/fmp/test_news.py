"""FMP stock news: parsing (New York time, malformed rows, dedupe), paging, plan refusal.

The request tests run twice over: against a scripted client (exact parameters, paging limits)
and against the sandbox's ``/stable/news/stock`` (``news_plan=True``; 402 without it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from quote_pipeline.fetch_engine import FetchEngine, FetchReport, RetryBudget
from quote_pipeline.fmp import (
    NEWS_PATH,
    ClientSettings,
    FMPAuthError,
    FMPClient,
    FMPEndpointRestrictedError,
    FMPError,
    NewsArticle,
    TickerNews,
    news_request,
    parse_news_rows,
    probe_news,
)
from quote_pipeline.models import FailureKind
from quote_pipeline.sandbox import SandboxServer
from quote_pipeline_tests.conftest import SANDBOX_KEY, SandboxFactory


def row(
    symbol: str | None = "AAPL",
    published: Any = "2025-07-15 09:30:00",
    url: Any = "https://news.test/a",
    title: Any = "Apple beats estimates",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "publishedDate": published,
        "publisher": "Wire",
        "title": title,
        "image": "https://img.test/a.jpg",
        "site": "news.test",
        "text": "Revenue rose. Margins widened.",
        "url": url,
        **extra,
    }


# --- parsing ---------------------------------------------------------------------------------


def test_published_date_is_new_york_wall_time_across_dst() -> None:
    payload = [
        row(published="2025-07-15 09:30:00", url="https://news.test/july"),
        row(published="2025-01-15 09:30:00", url="https://news.test/january"),
    ]
    articles, problems = parse_news_rows(payload, ["AAPL"])
    assert problems == []
    july, january = articles["AAPL"]
    assert july.published_at == datetime(2025, 7, 15, 13, 30, tzinfo=UTC)  # EDT, UTC-4
    assert january.published_at == datetime(2025, 1, 15, 14, 30, tzinfo=UTC)  # EST, UTC-5
    assert july.published_at.utcoffset() == timedelta(0)
    assert july == NewsArticle(
        url="https://news.test/july",
        published_at=datetime(2025, 7, 15, 13, 30, tzinfo=UTC),
        publisher="Wire",
        site="news.test",
        title="Apple beats estimates",
        text="Revenue rose. Margins widened.",
        image="https://img.test/a.jpg",
    )


def test_malformed_rows_are_skipped_and_described_the_rest_kept() -> None:
    payload = [
        row(url="https://news.test/good-1"),
        row(url=None),
        row(url="https://news.test/no-title", title=""),
        row(url="https://news.test/no-date", published=None),
        row(url="https://news.test/bad-date", published="2025-13-45 10:00:00"),
        row(url="https://news.test/bare-date", published="2025-07-15"),
        row(url="https://news.test/offset", published="2025-07-15T09:30:00+00:00"),
        # 02:30 on 2025-03-09 was skipped by the spring-forward change in New York.
        row(url="https://news.test/gap", published="2025-03-09 02:30:00"),
        row(symbol="MSFT", url="https://news.test/msft-no-title", title=None),
        "not an object",
        row(symbol=None, url="https://news.test/no-symbol", title=None),  # no symbol: ignored
        row(url="https://news.test/good-2", published="2025-07-14 16:05:00"),
    ]
    articles, problems = parse_news_rows(payload, ["AAPL", "MSFT"])
    assert [a.url for a in articles["AAPL"]] == [
        "https://news.test/good-1",
        "https://news.test/good-2",
    ]
    assert articles["MSFT"] == []
    assert len(problems) == 9
    text = "\n".join(problems)
    for needle in (
        "missing url",
        "missing title",
        "publishedDate",
        "2025-13-45",
        "2025-07-15'",
        "offset",
        "daylight-saving gap",
        "MSFT: ",
        "expected an object",
    ):
        assert needle in text, needle


def test_articles_are_deduplicated_by_url_per_symbol() -> None:
    shared = "https://news.test/sector-piece"
    payload = [
        row(symbol="AAPL", url=shared),
        row(symbol="MSFT", url=shared),
        row(symbol="AAPL", url=shared),  # the same pair again (pages that shifted)
        row(symbol="AAPL", url="https://news.test/own"),
    ]
    articles, problems = parse_news_rows(payload, ["AAPL", "MSFT"])
    assert problems == []
    assert [a.url for a in articles["AAPL"]] == [shared, "https://news.test/own"]
    assert [a.url for a in articles["MSFT"]] == [shared]  # an article about both is in both


def test_unrequested_symbols_are_ignored_and_symbols_upper_cased() -> None:
    payload = [
        row(symbol="AAPL", url="https://news.test/1"),
        row(symbol="TSLA", url="https://news.test/2", title=None),  # not ours: not a problem
        row(symbol="msft", url="https://news.test/3"),
    ]
    articles, problems = parse_news_rows(payload, ["aapl", "MSFT", "NVDA"])
    assert problems == []
    assert set(articles) == {"AAPL", "MSFT", "NVDA"}
    assert [a.url for a in articles["AAPL"]] == ["https://news.test/1"]
    assert [a.url for a in articles["MSFT"]] == ["https://news.test/3"]
    assert articles["NVDA"] == []


def test_optional_fields_may_be_missing_or_odd() -> None:
    payload = [
        {
            "symbol": "AAPL",
            "publishedDate": "2025-01-02 08:00:00",
            "url": "u",
            "title": "t",
            "publisher": 7,
            "site": "",
            "text": None,
        }
    ]
    articles, problems = parse_news_rows(payload, ["AAPL"])
    assert problems == []
    (article,) = articles["AAPL"]
    assert (article.publisher, article.site, article.text, article.image) == (None,) * 4


def test_a_payload_that_is_not_a_list_is_an_error() -> None:
    with pytest.raises(ValueError, match="expected a JSON list"):
        parse_news_rows({"Error Message": "x"}, ["AAPL"])


# --- requests against a scripted client ---------------------------------------------------------


class ScriptedClient:
    """``get_json`` serving pages of ``rows`` (as FMP pages them) and recording each call."""

    def __init__(self, rows: list[dict[str, Any]], error: FMPError | None = None) -> None:
        self.rows = rows
        self.error = error
        self.calls: list[dict[str, str]] = []

    def get_json(self, path: str, params: dict[str, str]) -> tuple[Any, datetime]:
        assert path == NEWS_PATH
        self.calls.append(params)
        if self.error is not None:
            raise self.error
        page, limit = int(params["page"]), int(params["limit"])
        return self.rows[page * limit : (page + 1) * limit], datetime.now(UTC)


NY_JULY_15 = datetime(2025, 7, 15, 4, 0, tzinfo=UTC)  # midnight in New York


def many_rows(count: int, symbols: tuple[str, ...] = ("AAPL", "MSFT")) -> list[dict[str, Any]]:
    start = datetime(2025, 7, 15, 20, 0)
    return [
        row(
            symbol=symbols[i % len(symbols)],
            url=f"https://news.test/{i}",
            published=(start - timedelta(minutes=7 * i)).isoformat(sep=" "),
        )
        for i in range(count)
    ]


def test_request_parameters_pages_and_since(monkeypatch: pytest.MonkeyPatch) -> None:
    client = ScriptedClient(many_rows(23))
    since = {"aapl": NY_JULY_15 + timedelta(hours=18)}  # AAPL from 18:00 New York time
    request = news_request(
        client,  # type: ignore[arg-type]
        since=since,
        default_since=datetime(2025, 7, 10, 12, tzinfo=UTC),
        until=datetime(2025, 7, 16, 3, 30, tzinfo=UTC),  # still 15 July in New York
        page_size=5,
    )
    results = request(["aapl", "msft"])
    # Pages 0..4 (5, 5, 5, 5, 3 rows): the short fifth page ends the paging.
    assert [c["page"] for c in client.calls] == ["0", "1", "2", "3", "4"]
    assert {c["symbols"] for c in client.calls} == {"AAPL,MSFT"}  # plural, upper-case, always
    assert {c["from"] for c in client.calls} == {"2025-07-10"}  # the group's earliest since
    assert {c["to"] for c in client.calls} == {"2025-07-15"}  # until's New York date
    assert {c["limit"] for c in client.calls} == {"5"}
    assert "symbol" not in client.calls[0]
    by_symbol = {r.symbol.upper(): r for r in results}
    assert [r.symbol for r in results] == ["aapl", "msft"]  # as the engine asked them
    assert all(r.failure is None and isinstance(r.value, TickerNews) for r in results)
    aapl, msft = by_symbol["AAPL"].value, by_symbol["MSFT"].value
    assert aapl is not None and msft is not None
    assert len(msft.articles) == 11  # the odd rows: all after MSFT's default since
    assert aapl.articles and all(a.published_at >= since["aapl"] for a in aapl.articles)
    assert len(aapl.articles) == 9  # rows 0, 2, …, 16: 20:00 back to 18:08
    assert len({a.url for a in aapl.articles}) == len(aapl.articles)


def test_a_full_last_page_means_more_rows_than_can_be_paged() -> None:
    client = ScriptedClient(many_rows(30))
    request = news_request(
        client,  # type: ignore[arg-type]
        since={},
        default_since=datetime(2025, 7, 1, tzinfo=UTC),
        until=datetime(2025, 7, 16, tzinfo=UTC),
        page_size=5,
        max_pages=3,
    )
    results = request(["AAPL", "MSFT"])
    assert len(client.calls) == 3
    assert [r.symbol for r in results] == ["AAPL", "MSFT"]
    for result in results:
        assert result.value is None
        assert result.failure is not None and result.failure.kind == FailureKind.API_ERROR
        assert "too large to page through" in result.failure.message
        assert not result.transient


def test_rejected_rows_are_the_symbols_failure_beside_its_articles() -> None:
    rows = [row(url="https://news.test/ok"), row(url="https://news.test/bad", published="soon")]
    request = news_request(
        ScriptedClient(rows),  # type: ignore[arg-type]
        since={},
        default_since=datetime(2025, 7, 1, tzinfo=UTC),
        until=datetime(2025, 7, 16, tzinfo=UTC),
    )
    aapl, msft = request(["AAPL", "MSFT"])
    assert aapl.value is not None and [a.url for a in aapl.value.articles] == [
        "https://news.test/ok"
    ]
    assert aapl.failure is not None and aapl.failure.kind == FailureKind.BAD_RESPONSE
    assert "1 news row(s) rejected" in aapl.failure.message
    assert msft.value == TickerNews("MSFT", []) and msft.failure is None  # no news: no failure


@pytest.mark.parametrize(
    "error",
    [
        FMPError(FailureKind.NOT_IN_PLAN, f"{NEWS_PATH}: HTTP 402: Payment Required", status=402),
        FMPEndpointRestrictedError(f"{NEWS_PATH}: HTTP 402: Restricted Endpoint", status=402),
    ],
)
def test_a_402_raises_the_plan_error_naming_starter(error: FMPError) -> None:
    client = ScriptedClient([], error=error)
    request = news_request(
        client,  # type: ignore[arg-type]
        since={},
        default_since=datetime(2025, 7, 1, tzinfo=UTC),
        until=datetime(2025, 7, 16, tzinfo=UTC),
    )
    with pytest.raises(FMPEndpointRestrictedError, match="Starter plan or higher") as raised:
        request(["AAPL"])
    assert raised.value.status == 402
    with pytest.raises(FMPEndpointRestrictedError, match="Starter plan or higher"):
        probe_news(client, "aapl")  # type: ignore[arg-type]
    assert len(client.calls) == 2
    assert client.calls[1] == {"symbols": "AAPL", "page": "0", "limit": "1"}


def test_probe_leaves_other_failures_to_the_fetch() -> None:
    flaky = ScriptedClient([], error=FMPError(FailureKind.SERVER_ERROR, "HTTP 503", status=503))
    probe_news(flaky, "AAPL")  # type: ignore[arg-type]
    refused = ScriptedClient([], error=FMPAuthError("HTTP 401: Invalid API KEY", status=401))
    with pytest.raises(FMPAuthError):
        probe_news(refused, "AAPL")  # type: ignore[arg-type]


def test_a_window_that_starts_after_until_asks_nothing() -> None:
    client = ScriptedClient(many_rows(3))
    request = news_request(
        client,  # type: ignore[arg-type]
        since={},
        default_since=datetime(2025, 7, 20, tzinfo=UTC),
        until=datetime(2025, 7, 16, tzinfo=UTC),
    )
    assert request(["AAPL"])[0].value == TickerNews("AAPL", [])
    assert request([]) == []
    assert client.calls == []


def test_arguments_are_checked() -> None:
    client: Any = ScriptedClient([])
    aware = datetime(2025, 7, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="page_size"):
        news_request(client, since={}, default_since=aware, until=aware, page_size=251)
    with pytest.raises(ValueError, match="max_pages"):
        news_request(client, since={}, default_since=aware, until=aware, max_pages=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        news_request(client, since={}, default_since=aware.replace(tzinfo=None), until=aware)


# --- against the sandbox -------------------------------------------------------------------------

# The sandbox's clock, frozen: a Friday evening in New York, so the window's days are full.
SANDBOX_NOW = datetime(2025, 7, 18, 23, 0, tzinfo=UTC)
WINDOW_START = datetime(2025, 7, 7, 4, 0, tzinfo=UTC)  # Monday 7 July, 00:00 in New York
GROUP = ["AAPL", "MSFT", "NVDA", "JPM", "XOM", "ZZZQ"]


def client_for(sandbox: SandboxServer, **settings: Any) -> FMPClient:
    defaults: dict[str, Any] = {"read_timeout": 5.0, "backoff_initial": 0.01}
    return FMPClient(SANDBOX_KEY, ClientSettings(base_url=sandbox.url, **{**defaults, **settings}))


def fetch_news(
    client: FMPClient, symbols: list[str], request: Callable[..., Any], per_request: int = 25
) -> FetchReport[TickerNews]:
    return FetchEngine(client, RetryBudget(extra_passes=0)).fetch(
        symbols, request, symbols_per_request=per_request
    )


def raw_rows(sandbox: SandboxServer, symbols: list[str], page: int = 0) -> list[dict[str, Any]]:
    """What the sandbox serves for one page of 250 rows, straight over HTTP."""
    answer = requests.get(
        f"{sandbox.url}{NEWS_PATH}",
        params={
            "symbols": ",".join(symbols),
            "from": "2025-07-07",
            "to": "2025-07-18",
            "page": page,
            "limit": 250,
            "apikey": SANDBOX_KEY,
        },
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()


@pytest.fixture
def news_sandbox(start_sandbox: SandboxFactory) -> SandboxServer:
    return start_sandbox(news_plan=True, clock=SANDBOX_NOW)


def test_sandbox_pages_give_every_article_once(news_sandbox: SandboxServer) -> None:
    served = raw_rows(news_sandbox, GROUP)
    assert 20 < len(served) < 250  # one page holds the window: the reference answer
    expected: dict[str, set[str]] = {s: set() for s in GROUP}
    for r in served:
        expected[r["symbol"]].add(r["url"])
    with client_for(news_sandbox) as client:
        request = news_request(
            client, since={}, default_since=WINDOW_START, until=SANDBOX_NOW, page_size=7
        )
        report = fetch_news(client, GROUP, request)
    assert report.failures == []
    assert report.requests_made == len(served) // 7 + 1  # pages of 7 until a short one
    got = {r.symbol: r.value for r in report.results}
    for symbol in GROUP:
        news = got[symbol]
        assert news is not None
        urls = [a.url for a in news.articles]
        assert len(urls) == len(set(urls))  # once each
        assert set(urls) == expected[symbol]  # every one
    assert got["ZZZQ"] is not None  # a symbol with little or no news is not a failure


def test_sandbox_group_of_symbols_is_one_request(news_sandbox: SandboxServer) -> None:
    with client_for(news_sandbox) as client:
        request = news_request(client, since={}, default_since=WINDOW_START, until=SANDBOX_NOW)
        report = fetch_news(client, [s.lower() for s in GROUP], request)
    assert report.requests_made == 1
    # Results are named as asked; FMP is asked in upper case (lower case matches nothing).
    assert sorted(r.symbol for r in report.results) == sorted(s.lower() for s in GROUP)
    news_calls = [r for r in news_sandbox.stats()["requests"] if r["path"] == NEWS_PATH]
    assert len(news_calls) == 1
    assert sorted(news_calls[0]["symbols"]) == sorted(GROUP)
    # Articles carry aware UTC times inside the window (the sandbox serves New York time).
    for result in report.results:
        assert result.value is not None
        for article in result.value.articles:
            assert article.published_at.utcoffset() == timedelta(0)
            assert WINDOW_START <= article.published_at <= SANDBOX_NOW


def test_sandbox_since_is_per_symbol(news_sandbox: SandboxServer) -> None:
    aapl_since = datetime(2025, 7, 15, 17, 0, tzinfo=UTC)
    with client_for(news_sandbox) as client:
        request = news_request(
            client, since={"AAPL": aapl_since}, default_since=WINDOW_START, until=SANDBOX_NOW
        )
        report = fetch_news(client, ["AAPL", "MSFT"], request)
        assert report.requests_made == 1  # one window for the group: from its earliest since
        everything = fetch_news(
            client,
            ["AAPL"],
            news_request(client, since={}, default_since=WINDOW_START, until=SANDBOX_NOW),
        )
    got = {r.symbol: r.value for r in report.results}
    aapl, msft, aapl_all = got["AAPL"], got["MSFT"], everything.results[0].value
    assert aapl is not None and msft is not None and aapl_all is not None
    assert all(a.published_at >= aapl_since for a in aapl.articles)
    assert [a for a in aapl_all.articles if a.published_at >= aapl_since] == aapl.articles
    assert len(aapl_all.articles) > len(aapl.articles)  # the filter dropped something
    assert any(a.published_at < aapl_since for a in msft.articles)  # MSFT's own since


def test_sandbox_without_the_news_plan_fails_after_one_request(sandbox: SandboxServer) -> None:
    with client_for(sandbox) as client:
        with pytest.raises(FMPEndpointRestrictedError, match="Starter plan or higher") as raised:
            probe_news(client, "AAPL")
        assert client.requests_made == 1
        assert SANDBOX_KEY not in str(raised.value)
        request = news_request(client, since={}, default_since=WINDOW_START, until=SANDBOX_NOW)
        with pytest.raises(FMPEndpointRestrictedError, match="Starter plan or higher"):
            fetch_news(client, [*GROUP, "IBM", "ORCL"], request, per_request=2)
        # The engine stops at the first 402: at most the four groups already sent were asked.
        assert 1 < client.requests_made <= 1 + 4
