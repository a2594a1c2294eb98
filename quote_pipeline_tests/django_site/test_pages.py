"""The example site's pages and JSON on PostgreSQL, filled as production fills it (a real
refresh, profiles, corporate actions, a daily backfill with a split, adjusted prices, metrics
and news through the sandbox): every value shown is the table's, read back with SQLAlchemy,
and no view makes an outgoing request."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from PIL import Image

from quote_pipeline.storage import create_db_engine
from quote_pipeline.storage import schema as tables
from quote_pipeline.storage.schema_migrations import upgrade
from quote_pipeline_tests.conftest import drop_all_tables
from quote_pipeline_tests.django_site.support import (
    UNREACHABLE_DAGSTER_URL,
    django_site,
    record_connections,
)
from quote_pipeline_tests.support.filled_database import FilledDatabase, filled_database

pytestmark = [
    pytest.mark.postgres,
    # dagster-graphql's client calls gql the way gql now deprecates; not ours to fix.
    pytest.mark.filterwarnings("ignore:Using variable_values and operation_name"),
]

NEW_YORK, BERLIN = ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")
# A quote written beside the filled ones, with digits a float or a fixed scale would lose.
EXACT_TICKER, EXACT_PRICE, EXACT_CHANGE = "EXACT", Decimal("232.80"), Decimal("-0.00001234")


@pytest.fixture(scope="module")
def filled(postgres_database_url: str) -> Iterator[FilledDatabase]:
    engine = create_db_engine(postgres_database_url, upgrade=False)
    drop_all_tables(engine)
    upgrade(engine)
    with filled_database(postgres_database_url) as database:
        with engine.begin() as conn:
            conn.execute(
                tables.stocks.insert().values(
                    ticker=EXACT_TICKER,
                    price=EXACT_PRICE,
                    volume=12_345_678_901,
                    change=EXACT_CHANGE,
                    quoted_at=datetime.fromisoformat("2026-07-01T13:30:00+00:00"),
                    updated_at=datetime.fromisoformat("2026-07-01T13:30:05+00:00"),
                )
            )
        engine.dispose()
        yield database


@pytest.fixture(scope="module")
def site(filled: FilledDatabase) -> Iterator[Any]:
    with django_site(filled.url) as client:
        yield client


@pytest.fixture
def client(site: Any) -> Any:
    """A fresh test client (no cookies) on the filled database."""
    from django.test import Client

    return Client()


def _read(url: str, statement: sa.Select[Any]) -> list[sa.Row[Any]]:
    engine = create_db_engine(url, upgrade=False)
    try:
        with engine.connect() as conn:
            return list(conn.execute(statement))
    finally:
        engine.dispose()


def _stocks(url: str) -> dict[str, sa.Row[Any]]:
    return {r.ticker: r for r in _read(url, sa.select(tables.stocks))}


def _shown(moment: datetime, zone: ZoneInfo) -> str:
    """How the pages print a time: ``2026-11-27 10:30:00 EST``."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def test_the_stock_list_shows_every_stored_quote_exactly(
    filled: FilledDatabase, client: Any
) -> None:
    stored = _stocks(filled.url)
    names = dict(
        _read(
            filled.url,
            sa.select(tables.company_profiles.c.ticker, tables.company_profiles.c.company_name),
        )
    )
    assert set(filled.tickers) | {EXACT_TICKER} == set(stored)

    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    rows = {row["stock"].ticker: row for row in response.context["rows"]}
    assert set(rows) == set(stored)
    for ticker, row in stored.items():
        shown = rows[ticker]
        # Decimal in, Decimal out, the same digits: never a float on the way.
        assert type(shown["stock"].price) is Decimal
        assert str(shown["stock"].price) == str(row.price)
        assert shown["stock"].change == row.change and shown["stock"].volume == row.volume
        assert shown["company"] == names.get(ticker)
        assert f'<td class="num" data-price>{format(row.price, "f")}</td>' in html
        assert f"{row.volume:,}" in html
        assert _shown(row.quoted_at, NEW_YORK) in html
        assert f'href="/ticker/{ticker}/"' in html
        if names.get(ticker):
            assert names[ticker] in html
    # Trailing zero and eight decimals kept, as the table holds them.
    assert "232.80" in html and "-0.00001234" in html and "12,345,678,901" in html


def test_times_are_shown_in_the_viewers_time_zone(filled: FilledDatabase, client: Any) -> None:
    quoted_at = _stocks(filled.url)["AAPL"].quoted_at

    new_york = client.get("/ticker/AAPL/").content.decode()
    assert _shown(quoted_at, NEW_YORK) in new_york
    assert "America/New_York" in new_york

    berlin = client.get("/ticker/AAPL/?tz=Europe/Berlin")
    assert berlin.cookies["viewer_tz"].value == "Europe/Berlin"
    html = berlin.content.decode()
    assert _shown(quoted_at, BERLIN) in html and _shown(quoted_at, NEW_YORK) not in html
    assert "times in Europe/Berlin" in html
    # Remembered by the cookie; an unknown zone is ignored; ?tz= forgets the choice.
    assert _shown(quoted_at, BERLIN) in client.get("/").content.decode()
    assert _shown(quoted_at, BERLIN) in client.get("/?tz=Mars/Olympus_Mons").content.decode()
    assert _shown(quoted_at, NEW_YORK) in client.get("/?tz=").content.decode()
    assert _shown(quoted_at, NEW_YORK) in client.get("/").content.decode()


def test_the_ticker_page_shows_price_profile_chart_metrics_and_headlines(
    filled: FilledDatabase, client: Any
) -> None:
    ticker = "AAPL"
    stock = _stocks(filled.url)[ticker]
    (profile,) = _read(
        filled.url,
        sa.select(tables.company_profiles).where(tables.company_profiles.c.ticker == ticker),
    )
    metrics = tables.daily_metrics
    (latest,) = _read(
        filled.url,
        sa.select(metrics)
        .where(metrics.c.ticker == ticker)
        .order_by(metrics.c.date.desc())
        .limit(1),
    )
    articles, links = tables.news_articles, tables.news_article_tickers
    headlines = _read(
        filled.url,
        sa.select(articles.c.url, articles.c.title, articles.c.sentiment_label)
        .join(links, links.c.url == articles.c.url)
        .where(links.c.ticker == ticker)
        .order_by(articles.c.published_at.desc(), articles.c.url)
        .limit(10),
    )
    assert headlines, "the fill stored no news for AAPL"

    response = client.get(f"/ticker/{ticker}/")
    assert response.status_code == 200
    html = response.content.decode()
    from django.utils.html import escape

    # The price, exactly as stored, and when it was quoted.
    assert f'<span class="price" id="price">{format(stock.price, "f")}</span>' in html
    assert _shown(stock.quoted_at, NEW_YORK) in html
    # The profile.
    for value in (profile.company_name, profile.sector, profile.industry, profile.exchange):
        assert value and escape(value) in html
    assert f'href="{profile.website}"' in html
    # The latest metrics (rounded for reading).
    page_metrics = response.context["metrics"]
    assert response.context["data"].metrics.date == latest.date
    for name in ("return_1d", "sma_20", "sma_50", "rsi_14", "volatility_20", "drawdown"):
        assert page_metrics[name] == getattr(latest, name)
    assert f"{latest.sma_20:,.2f}" in html and f"{latest.rsi_14:,.1f}" in html
    assert f"{latest.return_1d * 100:+.2f}%" in html
    # The headlines, newest first, with their labels.
    assert [a.url for a in response.context["headlines"]] == [h.url for h in headlines]
    for headline in headlines:
        assert escape(headline.title) in html
    labels = {h.sentiment_label for h in headlines}
    for label in labels:
        assert f'class="badge {label}"' in html
    # The chart: served from stored data, the size the page says, over the sessions it says.
    assert f'<img src="/ticker/{ticker}/chart.png"' in html
    (stored_sessions,) = _read(
        filled.url,
        sa.select(sa.func.count())
        .select_from(tables.daily_prices_adjusted)
        .where(tables.daily_prices_adjusted.c.ticker == ticker),
    )
    shown_sessions = min(stored_sessions[0], 120)
    assert shown_sessions > 1
    assert f"Last {shown_sessions} stored sessions, adjusted prices" in html
    chart = client.get(f"/ticker/{ticker}/chart.png")
    assert chart.status_code == 200 and chart["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(chart.content)).size == (880, 440)
    # The refresh button: a CSRF-protected POST form.
    assert f'action="/ticker/{ticker}/refresh"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert "Refresh this ticker now" in html


def test_the_json_endpoint_equals_the_tables(filled: FilledDatabase, client: Any) -> None:
    stored = _stocks(filled.url)
    metrics = tables.daily_metrics
    profiles = {r.ticker: r for r in _read(filled.url, sa.select(tables.company_profiles))}
    for ticker, row in stored.items():
        for path in (f"/api/ticker/{ticker}/", f"/api/ticker/{ticker}.json"):
            response = client.get(path)
            assert response.status_code == 200, path
            body = response.json()
            assert body["stock"] == {
                "price": format(row.price, "f"),
                "change": None if row.change is None else format(row.change, "f"),
                "volume": row.volume,
                "quoted_at": row.quoted_at.isoformat(),
                "updated_at": row.updated_at.isoformat(),
            }
            assert body["tracked"] is (ticker in filled.tickers)
        latest = _read(
            filled.url,
            sa.select(metrics)
            .where(metrics.c.ticker == ticker)
            .order_by(metrics.c.date.desc())
            .limit(1),
        )
        if latest:
            (m,) = latest
            assert body["metrics"]["date"] == m.date.isoformat()
            for name in ("return_1d", "sma_20", "sma_50", "sma_200", "rsi_14", "volatility_20"):
                assert body["metrics"][name] == getattr(m, name), name  # the float, exactly
            for name in ("drawdown", "high_52w", "low_52w"):
                assert body["metrics"][name] == getattr(m, name), name
        else:
            assert body["metrics"] is None
        profile = profiles.get(ticker)
        if profile is not None:
            assert body["profile"]["company_name"] == profile.company_name
            assert body["profile"]["sector"] == profile.sector
            assert body["profile"]["market_cap"] == (
                None if profile.market_cap is None else format(profile.market_cap, "f")
            )
    assert client.get(f"/api/ticker/{EXACT_TICKER}/").json()["stock"]["price"] == "232.80"


def test_unknown_and_invalid_tickers_are_not_found(client: Any) -> None:
    for path in ("/ticker/ZZZZ/", "/ticker/NOT%20A%20SYMBOL/", "/ticker/ZZZZ/chart.png"):
        response = client.get(path)
        assert response.status_code == 404, path
    assert "no data for ZZZZ" in client.get("/ticker/ZZZZ/").content.decode()
    assert "not a valid ticker symbol" in client.get("/ticker/%24%24/").content.decode()
    api_errors = {"/api/ticker/ZZZZ/": "unknown_ticker", "/api/ticker/%24%24/": "invalid_symbol"}
    for path, code in api_errors.items():
        response = client.get(path)
        assert response.status_code == 404 and response.json()["error"] == code
    # Lower case is the same ticker: one canonical page.
    response = client.get("/ticker/aapl/")
    assert response.status_code == 301 and response["Location"] == "/ticker/AAPL/"


def test_no_view_makes_an_outgoing_request(filled: FilledDatabase, client: Any) -> None:
    """Every page, chart and JSON answer comes from the database: no socket is opened by
    Python code (libpq's connection to PostgreSQL is C), and the sandbox API sees nothing."""
    requests_before = filled.sandbox.stats()["requests_total"]
    paths = ["/", "/?tz=Asia/Tokyo", "/ticker/ZZZZ/", "/api/ticker/ZZZZ/"]
    for ticker in (*filled.tickers, EXACT_TICKER):
        paths += [
            f"/ticker/{ticker}/",
            f"/ticker/{ticker}/chart.png",
            f"/api/ticker/{ticker}/",
            f"/api/ticker/{ticker}.json",
        ]
    with record_connections() as log:
        statuses = {path: client.get(path).status_code for path in paths}
    assert log.addresses == []
    assert filled.sandbox.stats()["requests_total"] == requests_before
    expected = {
        path: 404 if "ZZZZ" in path or path.endswith(f"{EXACT_TICKER}/chart.png") else 200
        for path in paths
    }
    assert statuses == expected

    # The refresh POST is the one view that talks to something: the Dagster webserver, only.
    with record_connections() as log:
        response = client.post("/api/ticker/AAPL/refresh", content_type="application/json")
    assert response.status_code == 503
    assert {address[1] for address in log.addresses} == {9}  # UNREACHABLE_DAGSTER_URL's port
    assert UNREACHABLE_DAGSTER_URL.endswith(":9")
    assert filled.sandbox.stats()["requests_total"] == requests_before


def test_the_site_connects_read_only(filled: FilledDatabase, site: Any) -> None:
    from django.db import DatabaseError, connection
    from market.models import Stock

    before = _stocks(filled.url)["AAPL"].volume
    with pytest.raises(DatabaseError, match="read-only"):
        Stock.objects.filter(ticker="AAPL").update(volume=before + 1)
    connection.close()
    # The SQLAlchemy engine of the chart and the revision check: read-only too.
    from market.engine import site_engine

    with (
        pytest.raises(sa.exc.InternalError, match="read-only transaction"),
        site_engine().begin() as conn,
    ):
        conn.execute(sa.update(tables.stocks).values(volume=before + 1))
    assert _stocks(filled.url)["AAPL"].volume == before
