"""The news domain end to end: news_articles against the sandbox (Starter plan), on SQLite and
PostgreSQL, a real Dagster instance, and daily_sentiment kept current by automation."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from quote_pipeline.fmp.history import new_york_to_utc
from quote_pipeline.market_calendar import NEW_YORK
from quote_pipeline.sandbox.news import article_tone, symbol_news
from quote_pipeline.storage import create_db_engine
from quote_pipeline.storage.schema import daily_sentiment, news_article_tickers, news_articles
from quote_pipeline_tests.conftest import SandboxFactory
from quote_pipeline_tests.helpers import materialization_metadata, pipeline_definitions

# The megacap tech names share sector pieces in the sandbox; T001 is a made-up symbol.
TICKERS = ["AAPL", "MSFT", "GOOGL", "AMZN", "META", "NVDA", "AMD", "KO", "T001"]
DAYS = 6
# Pages of 20 rows: every group's window takes several pages, so paging is exercised.
NEWS = {"news_articles": {"config": {"first_fetch_days": DAYS, "page_size": 20}}}


def served_pairs(since: datetime, until: datetime) -> dict[tuple[str, str], datetime]:
    """(url, ticker) -> published_at (UTC) of every article the sandbox serves for TICKERS
    published in [since, until], from its own generator: what a complete fetch stores."""
    pairs: dict[tuple[str, str], datetime] = {}
    day = since.astimezone(NEW_YORK).date()
    while day <= until.astimezone(NEW_YORK).date():
        for ticker in TICKERS:
            for row in symbol_news(ticker, day):
                published = new_york_to_utc(datetime.fromisoformat(row["publishedDate"]))
                if since <= published <= until:
                    pairs[(row["url"], ticker)] = published
        day += timedelta(days=1)
    return pairs


def stored_pairs(database_url: str) -> dict[tuple[str, str], datetime]:
    with create_db_engine(database_url).connect() as conn:
        rows = conn.execute(
            sa.select(
                news_article_tickers.c.url,
                news_article_tickers.c.ticker,
                news_articles.c.published_at,
            ).join_from(news_article_tickers, news_articles)
        )
        return {(url, ticker): published for url, ticker, published in rows}


def materialize(
    defs: dg.Definitions, instance: dg.DagsterInstance, *assets: str, **run_config: Any
):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        asset_selection=[dg.AssetKey(a) for a in assets],
        run_config={"ops": run_config} if run_config else None,
    )


def assert_daily_sentiment_adds_up(database_url: str) -> int:
    """daily_sentiment equals an aggregation computed here, independently, with pandas;
    returns its row count."""
    engine = create_db_engine(database_url)
    with engine.connect() as conn:
        articles = pd.DataFrame(
            conn.execute(
                sa.select(
                    news_article_tickers.c.ticker,
                    news_articles.c.published_at,
                    news_articles.c.sentiment,
                    news_articles.c.sentiment_label,
                ).join_from(news_article_tickers, news_articles)
            ).all(),
            columns=["ticker", "published_at", "sentiment", "label"],
        )
        table = (
            pd.DataFrame(conn.execute(sa.select(daily_sentiment)).mappings().all())
            .set_index(["ticker", "day"])
            .sort_index()
        )
    # Independently: the New York date of each article, then counts and means per pair.
    articles["day"] = [
        pd.Timestamp(t).tz_convert("America/New_York").date() for t in articles["published_at"]
    ]
    grouped = articles.groupby(["ticker", "day"])
    independent = pd.DataFrame(
        {
            "articles": grouped.size(),
            "mean_sentiment": grouped["sentiment"].mean(),
            "positive": grouped["label"].apply(lambda s: int((s == "positive").sum())),
            "negative": grouped["label"].apply(lambda s: int((s == "negative").sum())),
            "neutral": grouped["label"].apply(lambda s: int((s == "neutral").sum())),
        }
    ).sort_index()
    assert list(table.index) == list(independent.index)
    for column in ("articles", "positive", "negative", "neutral"):
        assert table[column].tolist() == independent[column].tolist(), column
    assert table["mean_sentiment"].tolist() == pytest.approx(
        independent["mean_sentiment"].tolist(), abs=1e-9
    )
    return len(independent)


@pytest.fixture
def news_sandbox(start_sandbox: SandboxFactory):
    return start_sandbox(news_plan=True)


def test_a_first_fetch_stores_every_article_once_and_a_rerun_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
    news_sandbox,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    defs = pipeline_definitions(monkeypatch, news_sandbox, database_url, TICKERS)
    before = datetime.now(UTC)
    result = materialize(defs, dagster_instance, "news_articles", **NEWS)
    after = datetime.now(UTC)
    assert result.success

    stored = stored_pairs(database_url)
    # Everything served in the window is stored; at the window's edges a run may keep a
    # little more (the request asks whole New York dates from the window's start).
    expected = served_pairs(after - timedelta(days=DAYS), before)
    assert set(expected) <= set(stored)
    assert set(stored) <= set(served_pairs(before - timedelta(days=DAYS + 1), after))
    # publishedDate is New York wall time: stored in UTC, as the sandbox's own conversion.
    assert all(stored[pair] == published for pair, published in expected.items())
    # An article listed for several tickers is one row, linked to each of them.
    by_url = Counter(url for url, _ in stored)
    shared = [url for url, count in by_url.items() if count > 1]
    assert shared, "the sandbox's sector pieces mention several of TICKERS"
    with create_db_engine(database_url).connect() as conn:
        rows = conn.scalar(sa.select(sa.func.count()).select_from(news_articles))
        query = sa.select(news_articles.c.url, news_articles.c.sentiment_label)
        labels = {url: label for url, label in conn.execute(query)}
    assert rows == len(by_url)
    # The scorer reads the sandbox's templates as a reader would.
    agreeing = sum(1 for url, label in labels.items() if label == article_tone(url))
    assert agreeing >= 0.9 * len(labels)

    metadata = materialization_metadata(result, "news_articles")
    pages = [
        r["params"]["page"]
        for r in news_sandbox.stats()["requests"]
        if r["path"] == "/stable/news/stock" and r["params"].get("limit") == "20"
    ]
    assert max(int(p) for p in pages) >= 2, "the window took several pages"
    assert metadata["api_requests"] == len(news_sandbox.stats()["requests"])  # probe included
    assert metadata["articles_new"] == len(by_url)
    assert metadata["links_new"] == len(stored)
    headlines = metadata["latest_headlines"].records
    assert headlines and headlines[0].data["label"] in {"positive", "negative", "neutral"}

    again = materialize(defs, dagster_instance, "news_articles", **NEWS)
    assert again.success
    assert stored_pairs(database_url) == stored
    rerun = materialization_metadata(again, "news_articles")
    assert (rerun["articles_new"], rerun["links_new"], rerun["articles_updated"]) == (0, 0, 0)


def test_a_later_run_asks_only_from_the_newest_stored_article(
    monkeypatch: pytest.MonkeyPatch,
    news_sandbox,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    defs = pipeline_definitions(monkeypatch, news_sandbox, database_url, TICKERS)
    assert materialize(defs, dagster_instance, "news_articles", **NEWS).success
    complete = stored_pairs(database_url)
    # The newest day's articles "have not arrived yet": the next run must fill the gap.
    cutoff = max(complete.values()) - timedelta(hours=12)
    with create_db_engine(database_url).begin() as conn:
        gone = [url for (url, _), published in complete.items() if published > cutoff]
        conn.execute(sa.delete(news_article_tickers).where(news_article_tickers.c.url.in_(gone)))
        conn.execute(sa.delete(news_articles).where(news_articles.c.url.in_(gone)))
    requests_before = len(news_sandbox.stats()["requests"])

    assert materialize(defs, dagster_instance, "news_articles", **NEWS).success

    assert set(stored_pairs(database_url)) >= set(complete)
    asked = [
        r["params"]
        for r in news_sandbox.stats()["requests"][requests_before:]
        if r["path"] == "/stable/news/stock" and r["params"].get("limit") != "1"  # not the probe
    ]
    # One request for the 9 tickers, from the oldest of their newest stored articles less
    # the 6-hour overlap: not the first fetch's DAYS back.
    remaining = {pair: at for pair, at in complete.items() if at <= cutoff}
    newest = {}
    for (_, ticker), published in remaining.items():
        newest[ticker] = max(published, newest.get(ticker, published))
    start = min(newest.values()) - timedelta(hours=6)
    assert {p["from"] for p in asked} == {start.astimezone(NEW_YORK).date().isoformat()}
    assert date.fromisoformat(asked[0]["from"]) > (datetime.now(UTC) - timedelta(days=DAYS)).date()


def test_a_free_plan_fails_after_one_request_saying_why(
    monkeypatch: pytest.MonkeyPatch,
    start_sandbox: SandboxFactory,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    sandbox = start_sandbox()  # free plan: news answers 402
    defs = pipeline_definitions(monkeypatch, sandbox, sqlite_url, TICKERS)
    result = materialize(defs, dagster_instance, "news_articles", **NEWS)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("News needs FMP's Starter plan or higher")
    news_requests = [r for r in sandbox.stats()["requests"] if "/news/" in r["path"]]
    assert len(news_requests) == 1
    assert stored_pairs(sqlite_url) == {}


def test_daily_sentiment_follows_news_by_automation_and_adds_up(
    monkeypatch: pytest.MonkeyPatch,
    news_sandbox,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    defs = pipeline_definitions(monkeypatch, news_sandbox, database_url, TICKERS)
    # The automation sensor ticks all the time; its first tick only starts the record.
    before = dg.evaluate_automation_conditions(defs=defs, instance=dagster_instance)
    assert before.total_requested == 0
    assert materialize(defs, dagster_instance, "news_articles", **NEWS).success

    # The next tick asks for daily_sentiment: news_articles changed.
    evaluation = dg.evaluate_automation_conditions(
        defs=defs, instance=dagster_instance, cursor=before.cursor
    )
    assert evaluation.get_num_requested(dg.AssetKey("daily_sentiment")) == 1
    assert evaluation.total_requested == 1
    result = materialize(defs, dagster_instance, "daily_sentiment")
    assert result.success

    rows = assert_daily_sentiment_adds_up(database_url)
    metadata = materialization_metadata(result, "daily_sentiment")
    assert metadata["rows_rebuilt"] == rows
    assert metadata["most_positive"].records

    # Nothing new: the next evaluation requests nothing.
    later = dg.evaluate_automation_conditions(
        defs=defs, instance=dagster_instance, cursor=evaluation.cursor
    )
    assert later.total_requested == 0

    # Articles that arrive later (here: the newest day's, fetched again after being lost)
    # reach daily_sentiment through the next news run and the next automation tick.
    newest = max(stored_pairs(database_url).values())
    with create_db_engine(database_url).begin() as conn:
        late = sa.select(news_articles.c.url).where(
            news_articles.c.published_at > newest - timedelta(hours=12)
        )
        urls = list(conn.scalars(late))
        conn.execute(sa.delete(news_article_tickers).where(news_article_tickers.c.url.in_(urls)))
        conn.execute(sa.delete(news_articles).where(news_articles.c.url.in_(urls)))
    assert materialize(defs, dagster_instance, "news_articles", **NEWS).success
    tick = dg.evaluate_automation_conditions(
        defs=defs, instance=dagster_instance, cursor=later.cursor
    )
    assert tick.get_num_requested(dg.AssetKey("daily_sentiment")) == 1
    assert materialize(defs, dagster_instance, "daily_sentiment").success
    assert_daily_sentiment_adds_up(database_url)


@pytest.mark.parametrize(
    ("tick", "runs"),
    [
        (datetime(2026, 11, 24, 15, 0, tzinfo=UTC), True),  # Tuesday 10:00 New York
        (datetime(2026, 11, 24, 15, 30, tzinfo=UTC), True),  # 10:30, market hours
        (datetime(2026, 11, 24, 23, 0, tzinfo=UTC), True),  # 18:00: hourly
        (datetime(2026, 11, 24, 23, 30, tzinfo=UTC), False),  # 18:30: not in market hours
        (datetime(2026, 11, 28, 16, 30, tzinfo=UTC), False),  # Saturday 11:30
        (datetime(2026, 11, 28, 16, 0, tzinfo=UTC), True),  # Saturday 11:00: hourly
    ],
)
def test_news_every_30_minutes_in_market_hours_and_hourly_otherwise(
    tick: datetime, runs: bool
) -> None:
    from quote_pipeline.defs.news.schedules import news_skip_reason

    reason = news_skip_reason(tick)
    assert (reason is None) == runs
    if reason:
        assert "Outside market hours" in reason


def test_the_news_command_prints_a_tickers_headlines(
    monkeypatch: pytest.MonkeyPatch,
    news_sandbox,
    sqlite_url: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    import subprocess
    import sys
    from pathlib import Path

    defs = pipeline_definitions(monkeypatch, news_sandbox, sqlite_url, TICKERS)
    assert materialize(defs, dagster_instance, "news_articles", **NEWS).success
    cli = Path(sys.executable).parent / "quote-pipeline"
    shown = subprocess.run(
        [str(cli), "--database-url", sqlite_url, "news", "aapl", "--days", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    first_line, *table = shown.stdout.splitlines()
    assert first_line.startswith("AAPL: ") and "in the last 3 day(s)" in first_line
    assert "sentiment" in table[0] and "label" in table[0]
    assert any(label in table[1] for label in ("positive", "negative", "neutral"))
