"""The sandbox's FMP stock news endpoints, tested over real HTTP on a loopback port."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from quote_pipeline.sandbox import FaultConfig, SandboxConfig, SandboxServer, article_tone
from quote_pipeline.sandbox.market import NEW_YORK
from quote_pipeline.sandbox.news import (
    LATEST_SYMBOLS,
    NEWS_START,
    SECTORS,
    TEMPLATES,
    company_name,
    default_from,
    market_news,
    peer_bucket,
    symbol_news,
)
from quote_pipeline.sandbox.server import INVALID_KEY_MESSAGE, RESTRICTED_MESSAGE

KEY = "sandbox-key"
NEWS = "/stable/news/stock"
LATEST = "/stable/news/stock-latest"
FIELDS = ["symbol", "publishedDate", "publisher", "title", "image", "site", "text", "url"]
# A Tuesday afternoon in New York.
NOW = datetime(2026, 11, 24, 15, 42, 30, tzinfo=NEW_YORK)
NOW_TEXT = "2026-11-24 15:42:30"
TODAY = NOW.date()
MEGACAP = list(SECTORS["Megacap tech"])
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Client:
    server: SandboxServer
    session: requests.Session

    def get(self, path: str, *, key: str | None = KEY, **params: Any) -> requests.Response:
        if key is not None:
            params["apikey"] = key
        return self.session.get(self.server.url + path, params=params, timeout=10)

    def rows(self, path: str = NEWS, **params: Any) -> list[dict[str, Any]]:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        rows = response.json()
        assert isinstance(rows, list)
        return rows


@contextlib.contextmanager
def sandbox(**config: Any) -> Iterator[Client]:
    config.setdefault("clock", NOW)
    with SandboxServer(SandboxConfig(**config)) as server, requests.Session() as session:
        yield Client(server, session)


@pytest.fixture(scope="module")
def news() -> Iterator[Client]:
    with sandbox(news_plan=True) as client:
        yield client


def keys(rows: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(r["url"], r["symbol"]) for r in rows]


def check_order_strict(rows: list[dict[str, Any]]) -> None:
    """Newest first; a shared article's rows (one per symbol) by url, then symbol; no
    (article, symbol) pair twice."""
    order = [(r["publishedDate"], r["url"], r["symbol"] or "") for r in rows]
    expected = sorted(order, key=lambda k: (k[1], k[2]))
    expected.sort(key=lambda k: k[0], reverse=True)
    assert order == expected
    assert len(set(order)) == len(order)


# --- shapes -----------------------------------------------------------------------------


def test_rows_have_fmp_fields_and_sane_values(news: Client) -> None:
    rows = news.rows(symbols="AAPL,MSFT,T042", limit=250)
    assert 20 < len(rows) <= 250
    for row in rows:
        assert list(row) == FIELDS
        assert row["symbol"] in {"AAPL", "MSFT", "T042"}
        assert all(isinstance(row[f], str) and row[f] for f in FIELDS)
        datetime.strptime(row["publishedDate"], "%Y-%m-%d %H:%M:%S")  # no zone, no T
        assert "04:00:00" <= row["publishedDate"][11:] <= "20:00:00"
        assert row["publishedDate"] <= NOW_TEXT  # nothing from the sandbox's future
        assert row["url"].startswith("https://news.example.invalid/")
        assert row["image"].startswith("https://") and row["image"].endswith(".jpg")
        assert "." in row["site"] and row["publisher"]
        assert 2 <= row["text"].count(". ") + 1 <= 3 and row["text"].endswith(".")
        assert article_tone(row["url"]) in {"positive", "negative", "neutral"}
    check_order_strict(rows)
    # Some rows are from today (before 15:42:30), none later.
    assert any(r["publishedDate"].startswith("2026-11-24") for r in rows)


def test_titles_read_as_their_tone() -> None:
    cues = {
        "positive": r"beats|raises|upgraded|record high|buyback|wins|rall|surge",
        "negative": r"misses|plunge|probe|layoffs|recalls|loss|sell off|slump|tumble",
        "neutral": r"present|schedules|meeting|appoints|files|what to know|roundup|watch",
    }
    assert {t.tone for t in TEMPLATES} == set(cues)
    for template in TEMPLATES:
        title = template.title.lower()
        assert re.search(cues[template.tone], title), template.title
        others = [tone for tone in cues if tone != template.tone]
        assert not any(re.search(cues[o], title) for o in others), template.title
    # Tones of served articles follow their templates and all three occur.
    rows = [r for d in range(30) for r in symbol_news("AAPL", TODAY - timedelta(days=d))]
    tones = Counter(article_tone(r["url"]) for r in rows)
    assert set(tones) == {"positive", "negative", "neutral"}
    for row in rows:
        tone = article_tone(row["url"])
        titles = [t.title for t in TEMPLATES if t.tone == tone]
        assert any(_matches(template, row["title"]) for template in titles)
    with pytest.raises(ValueError):
        article_tone("https://www.zacks.com/stock/news/2408814/apple-china-tariffs")


def _matches(template: str, title: str) -> bool:
    pattern = re.escape(template)
    pattern = re.sub(r"\\\{\w+\\\}", ".+", pattern)
    return re.fullmatch(pattern, title) is not None


def test_articles_per_symbol_day() -> None:
    symbols = [f"T{i:03d}" for i in range(200)] + list(LATEST_SYMBOLS)
    weekday = Counter(
        len(symbol_news(s, date(2026, 11, 17 + d))) for s in symbols for d in range(5)
    )
    weekend = Counter(
        len(symbol_news(s, date(2026, 11, 21 + d))) for s in symbols for d in range(2)
    )
    assert set(weekday) == set(range(7))  # 0 to 6, and every count occurs
    assert max(weekend) <= 2 and sum(n * c for n, c in weekend.items()) > 0
    mean = lambda c: sum(n * k for n, k in c.items()) / sum(c.values())  # noqa: E731
    assert mean(weekend) < mean(weekday) / 3
    for symbol in ("AAPL", "T007"):
        for d in range(14):
            day = TODAY - timedelta(days=d)
            for row in symbol_news(symbol, day):
                assert row["publishedDate"][:10] == day.isoformat()
                assert "04:00:00" <= row["publishedDate"][11:] <= "20:00:00"
    assert symbol_news("aapl", TODAY) == [] and symbol_news("AAPL", date(2010, 12, 31)) == []
    assert all(r["symbol"] is None for d in range(7) for r in market_news(TODAY - timedelta(d)))


def test_generation_is_fast_and_deterministic() -> None:
    days = [date(2019, 1, 1) + timedelta(days=d) for d in range(60)]
    symbols = [f"PERF{i}" for i in range(50)]
    started = time.perf_counter()
    first = [symbol_news(s, d, seed=99) for s in symbols for d in days]
    elapsed = time.perf_counter() - started
    # 3,000 uncached symbol-days; generous for a shared CPU (typically ~20 ms in all).
    assert elapsed < 3.0
    assert first == [symbol_news(s, d, seed=99) for s in symbols for d in days]
    assert first != [symbol_news(s, d, seed=100) for s in symbols for d in days]


# --- the traps --------------------------------------------------------------------------


def test_symbols_defaults_and_spelling(news: Client) -> None:
    aapl = news.rows(symbols="AAPL")
    assert len(aapl) == 20 and {r["symbol"] for r in aapl} == {"AAPL"}
    assert news.rows() == aapl  # symbols omitted: AAPL, not "everything"
    assert news.rows(symbol="MSFT") == aapl  # the singular is dropped
    assert news.rows(symbols="aapl") == []  # exact upper case only
    assert news.rows(symbols="Msft") == []
    msft = news.rows(symbols="MSFT")
    assert {r["symbol"] for r in msft} == {"MSFT"}
    assert news.rows(symbols="aapl,MSFT") == msft
    assert news.rows(symbols="NOT A SYMBOL") == []


def test_limit_default_and_cap(news: Client) -> None:
    params = {"symbols": ",".join(MEGACAP), "from": "2026-01-01"}
    assert len(news.rows(**params)) == 20
    assert len(news.rows(limit=7, **params)) == 7
    assert len(news.rows(limit=250, **params)) == 250
    assert news.rows(limit=1000, **params) == news.rows(limit=250, **params)
    assert len(news.rows(LATEST, limit=5000)) == 250


def test_page_bounds(news: Client) -> None:
    for path in (NEWS, LATEST):
        for page in ("101", "-1", "x"):
            response = news.get(path, page=page)
            assert response.status_code == 400
            assert response.headers["Content-Type"].startswith("text/plain")
            with pytest.raises(ValueError):
                json.loads(response.text)
            assert "page" in response.text
        assert news.get(path, page="100").status_code == 200
    # Far enough back, page 100 still has rows.
    deep = news.rows(symbols=",".join(MEGACAP), page=100, limit=250, **{"from": "2011-01-01"})
    assert len(deep) == 250


def test_pagination_covers_everything_once(news: Client) -> None:
    params = {"symbols": ",".join(MEGACAP), "from": "2026-11-10", "to": "2026-11-24"}
    whole = news.rows(limit=250, **params)
    assert 30 < len(whole) < 250  # one page holds it all
    paged: list[dict[str, Any]] = []
    for page in range(101):
        rows = news.rows(page=page, limit=9, **params)
        paged.extend(rows)
        if len(rows) < 9:
            assert news.rows(page=page + 1, limit=9, **params) == []
            break
    assert paged == whole
    assert len(set(keys(paged))) == len(paged)
    check_order_strict(paged)


def test_three_month_floor_and_explicit_from(news: Client) -> None:
    floor = default_from(TODAY)
    assert floor == date(2026, 8, 24)
    assert default_from(date(2026, 5, 31)) == date(2026, 2, 28)
    assert default_from(date(2027, 2, 15)) == date(2026, 11, 15)
    everything: list[dict[str, Any]] = []
    for page in range(20):
        rows = news.rows(page=page, limit=250)
        everything.extend(rows)
        if len(rows) < 250:
            break
    assert everything and everything[-1]["publishedDate"] >= floor.isoformat()
    assert everything[-1]["publishedDate"] < (floor + timedelta(days=7)).isoformat()
    # `to` alone, older than the floor: nothing.
    assert news.rows(to="2026-06-30") == []
    # An explicit `from` reaches back as far as asked...
    old = news.rows(limit=250, **{"from": "2016-03-01", "to": "2016-03-31"})
    assert old and all("2016-03-01" <= r["publishedDate"] < "2016-04-01" for r in old)
    # ...but never before 2011.
    first = news.rows(limit=250, **{"from": "2009-01-01", "to": "2011-01-20"})
    assert first and min(r["publishedDate"] for r in first) >= NEWS_START.isoformat()
    assert news.rows(**{"from": "2009-01-01", "to": "2010-12-31"}) == []
    # `from` after `to`: nothing; a bad date: a JSON 400 like the other endpoints.
    assert news.rows(**{"from": "2026-11-20", "to": "2026-11-10"}) == []
    bad = news.get(NEWS, **{"from": "24/11/2026"})
    assert bad.status_code == 400 and "from" in bad.json()["Error Message"]


def test_the_clock_hides_the_future() -> None:
    with sandbox(news_plan=True, clock=datetime(2026, 11, 24, 9, 0, tzinfo=NEW_YORK)) as client:
        params = {"symbols": ",".join(LATEST_SYMBOLS), "limit": 250, "from": "2026-11-24"}
        morning = client.rows(to="2026-12-31", **params)
        assert morning and max(r["publishedDate"] for r in morning) <= "2026-11-24 09:00:00"
        client.server.set_clock(NOW)
        afternoon = client.rows(**params)
        assert max(r["publishedDate"] for r in afternoon) > "2026-11-24 09:00:00"
        assert set(keys(morning)) < set(keys(afternoon))
        assert max(r["publishedDate"] for r in afternoon) <= NOW_TEXT
        # Latest feed, too.
        assert max(r["publishedDate"] for r in client.rows(LATEST, limit=250)) <= NOW_TEXT


def test_deterministic_per_seed() -> None:
    params = {"symbols": "AAPL,T001,T002", "limit": 100}
    with (
        sandbox(news_plan=True) as a,
        sandbox(premium=True) as b,
        sandbox(news_plan=True, seed=3) as c,
    ):
        assert a.get(NEWS, **params).text == b.get(NEWS, **params).text
        assert a.get(LATEST, limit=100).text == b.get(LATEST, limit=100).text
        assert a.rows(**params) != c.rows(**params)


# --- shared articles --------------------------------------------------------------------


def test_sector_pieces_appear_once_per_mentioned_symbol(news: Client) -> None:
    window = {"from": "2026-11-03", "to": "2026-11-24", "limit": 250}
    rows = news.rows(symbols=",".join(MEGACAP), **window)
    assert len(rows) < 250
    assert len(set(keys(rows))) == len(rows)  # one row per (article, symbol)
    by_url: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_url.setdefault(row["url"], []).append(row)
    shared = {url: group for url, group in by_url.items() if len(group) > 1}
    assert len(shared) >= 5
    alone = {s: {r["url"]: r for r in news.rows(symbols=s, **window)} for s in MEGACAP}
    for url, group in shared.items():
        assert 2 <= len(group) <= 4
        assert len({r["publishedDate"] for r in group}) == 1
        assert len({r["title"] for r in group}) == 1
        for row in group:
            assert alone[row["symbol"]][url] == row  # there when the symbol is asked alone
            # A named sector piece names the companies it is served for.
            assert company_name(row["symbol"]) in row["title"]
    # Every single-symbol row is in the multi-symbol answer and vice versa.
    assert sorted(keys(rows)) == sorted((u, s) for s in MEGACAP for u in alone[s])


def test_bucket_pieces_are_shared_by_any_symbols_in_a_bucket(news: Client) -> None:
    universe = [f"T{i:03d}" for i in range(500)]
    buckets: dict[int, list[str]] = {}
    for symbol in universe:
        buckets.setdefault(peer_bucket(symbol), []).append(symbol)
    sizes = Counter(len(members) for members in buckets.values())
    assert sum(c for n, c in sizes.items() if 2 <= n <= 4) > len(buckets) / 2
    pair = next(members[:2] for members in buckets.values() if len(members) >= 2)
    window = {"from": "2026-10-26", "to": "2026-11-24", "limit": 250}
    first, second = ({r["url"]: r for r in news.rows(symbols=s, **window)} for s in pair)
    common = first.keys() & second.keys()
    assert common
    for url in common:
        assert first[url]["publishedDate"] == second[url]["publishedDate"]
    together = news.rows(symbols=",".join(pair), **window)
    assert sorted(keys(together)) == sorted(
        [(u, pair[0]) for u in first] + [(u, pair[1]) for u in second]
    )


# --- the latest feed --------------------------------------------------------------------


def test_latest_is_market_wide(news: Client) -> None:
    rows = news.rows(LATEST, symbols="AAPL")
    assert len(rows) == 20 and len({r["symbol"] for r in rows}) > 5  # symbols is ignored
    assert rows == news.rows(LATEST)
    page = news.rows(LATEST, limit=250)
    assert {r["symbol"] for r in page} <= {*LATEST_SYMBOLS, None}
    assert any(r["symbol"] is None for r in page)
    assert all(list(r) == FIELDS for r in page)
    check_order_strict(page)
    # news/stock is a filtered view of the same feed.
    oldest = page[-1]["publishedDate"][:10]
    window = {"from": oldest, "limit": 250}
    full = news.rows(LATEST, **window)
    msft = news.rows(symbols="MSFT", **window)
    assert msft and msft == [r for r in full if r["symbol"] == "MSFT"]


# --- plan, key, stats, faults, CLI ------------------------------------------------------


def test_news_needs_the_starter_plan() -> None:
    with sandbox() as basic:
        for path in (NEWS, LATEST):
            response = basic.get(path, symbols="AAPL")
            assert response.status_code == 402
            assert response.json() == {"Error Message": RESTRICTED_MESSAGE}
            # The plan is checked before the page is.
            assert basic.get(path, page="101").status_code == 402
    with sandbox(premium=True) as premium:
        assert premium.rows(symbols="AAPL")


def test_key_check_and_stats(news: Client) -> None:
    with sandbox(news_plan=True, api_key="n3ws-secret") as client:
        for key in (None, "", "wrong-key-value"):
            response = client.get(NEWS, key=key, symbols="AAPL")
            assert response.status_code == 401
            assert response.json() == {"Error Message": INVALID_KEY_MESSAGE}
        client.get(NEWS, key="n3ws-secret", symbols="AAPL,MSFT")
        client.get(NEWS, key="n3ws-secret", symbol="MSFT")
        client.get(LATEST, key="n3ws-secret", symbols="AAPL")
        client.get(NEWS, key="n3ws-secret", page="101")
        raw = client.session.get(client.server.url + "/_sandbox/stats").text
        assert "n3ws" not in raw and "wrong-key" not in raw
        stats = json.loads(raw)
        assert stats["requests_total"] == 7
        assert stats["by_endpoint"] == {NEWS: 6, LATEST: 1}
        assert stats["by_status"] == {"401": 3, "200": 3, "400": 1}
        logged = [(r["path"], r["symbols"]) for r in stats["requests"][3:]]
        assert logged == [
            (NEWS, ["AAPL", "MSFT"]),
            (NEWS, ["AAPL"]),  # what FMP answers for, not the ignored singular
            (LATEST, []),
            (NEWS, ["AAPL"]),
        ]


def test_symbol_faults_apply_to_news() -> None:
    faults = FaultConfig(
        unknown_symbols={"GONE"},
        plan_gated_symbols={"GATED"},
        malformed_symbols={"BROKEN"},
        error_body_symbols={"OOPS"},
        server_error_symbols={"DOWN"},
    )
    with sandbox(news_plan=True, faults=faults) as client:
        msft = client.rows(symbols="MSFT")
        assert client.rows(symbols="GONE,MSFT,GATED") == msft
        assert client.rows(symbols="GONE") == []
        with pytest.raises(ValueError):
            client.get(NEWS, symbols="BROKEN").json()
        assert "Error Message" in client.get(NEWS, symbols="MSFT,OOPS").json()
        assert client.get(NEWS, symbols="DOWN").status_code >= 500


def test_many_group_requests_stay_fast(news: Client) -> None:
    universe = [f"U{i:03d}" for i in range(500)]
    started = time.perf_counter()
    for i in range(0, 500, 25):
        rows = news.rows(
            symbols=",".join(universe[i : i + 25]), limit=250, **{"from": "2026-10-25"}
        )
        assert len(rows) == 250
    # 20 cold requests; typically well under a second.
    assert time.perf_counter() - started < 15


def test_cli_news_plan_flag() -> None:
    import argparse

    from quote_pipeline.sandbox.command import add_sandbox_parser, config_from_args

    parser = argparse.ArgumentParser(prog="quote-pipeline")
    add_sandbox_parser(parser.add_subparsers(dest="command"))
    assert config_from_args(parser.parse_args(["sandbox", "--news-plan"])).news_plan
    config = config_from_args(parser.parse_args(["sandbox"]))
    assert not config.news_plan and not config.premium
    help_text = subprocess.run(
        [sys.executable, "-m", "quote_pipeline.sandbox", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "--news-plan" in help_text and "news/stock" in help_text
