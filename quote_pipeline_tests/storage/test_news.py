"""Stock news with sentiment (storage/news.py) on SQLite and on the session's PostgreSQL."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from quote_pipeline.storage.news import (
    DailySentimentRow,
    NewsWriteSummary,
    StoredArticle,
    daily_sentiment_for,
    days_fetched_since,
    new_york_date,
    new_york_day_bounds,
    newest_published,
    read_news,
    rebuild_daily_sentiment,
    write_news,
)
from quote_pipeline.storage.schema import daily_sentiment, news_article_tickers, news_articles

FETCHED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 12, 5, tzinfo=UTC)
LABELS = ("positive", "negative", "neutral")


def label_of(score: float) -> str:
    """VADER's usual thresholds (the scorer's business; any consistent labelling does)."""
    return "positive" if score >= 0.05 else "negative" if score <= -0.05 else "neutral"


def article(
    url: str,
    published_at: datetime,
    tickers: tuple[str, ...] = ("AAPL",),
    sentiment: float = 0.5,
    title: str | None = None,
) -> StoredArticle:
    return StoredArticle(
        url=url,
        published_at=published_at,
        publisher="Example Wire",
        site="example.com",
        title=title if title is not None else f"Headline of {url}",
        text=f"Text of {url}.",
        image=None,
        sentiment=sentiment,
        sentiment_label=label_of(sentiment),
        tickers=tickers,
    )


def contents(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the news tables, in a fixed order."""
    tables = (news_articles, news_article_tickers, daily_sentiment)
    with engine.connect() as conn:
        return {
            t.name: sorted(tuple(r) for r in conn.execute(sa.select(t)).tuples()) for t in tables
        }


def stored_daily(engine: Engine) -> dict[tuple[str, date], tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(daily_sentiment)).mappings().all()
    return {
        (r["ticker"], r["day"]): (
            r["articles"],
            r["mean_sentiment"],
            r["positive"],
            r["negative"],
            r["neutral"],
        )
        for r in rows
    }


def expected_daily(engine: Engine) -> dict[tuple[str, date], tuple[Any, ...]]:
    """The daily aggregates computed independently, with pandas, from the stored rows."""
    with engine.connect() as conn:
        links = pd.DataFrame(
            conn.execute(sa.select(news_article_tickers.c.url, news_article_tickers.c.ticker))
            .tuples()
            .all(),
            columns=["url", "ticker"],
        )
        articles = pd.DataFrame(
            conn.execute(
                sa.select(
                    news_articles.c.url,
                    news_articles.c.published_at,
                    news_articles.c.sentiment,
                    news_articles.c.sentiment_label,
                )
            )
            .tuples()
            .all(),
            columns=["url", "published_at", "sentiment", "label"],
        )
    frame = links.merge(articles, on="url", how="inner")
    frame["day"] = (
        pd.to_datetime(frame["published_at"], utc=True).dt.tz_convert("America/New_York").dt.date
    )
    grouped = frame.groupby(["ticker", "day"])
    summary = grouped.agg(articles=("url", "size"), mean_sentiment=("sentiment", "mean"))
    counts = pd.crosstab([frame["ticker"], frame["day"]], frame["label"])
    summary = summary.join(counts.reindex(columns=list(LABELS), fill_value=0))
    return {
        key: (
            int(row["articles"]),
            float(row["mean_sentiment"]),
            *(int(row[label]) for label in LABELS),
        )
        for key, row in summary.iterrows()
    }


def assert_same_daily(
    stored: dict[tuple[str, date], tuple[Any, ...]],
    expected: dict[tuple[str, date], tuple[Any, ...]],
) -> None:
    assert stored.keys() == expected.keys()
    for key, (articles, mean, *labels) in expected.items():
        got_articles, got_mean, *got_labels = stored[key]
        assert (got_articles, got_labels) == (articles, labels), key
        assert got_mean == pytest.approx(mean, abs=1e-12), key


# --- write_news ---------------------------------------------------------------------------------


def test_an_article_about_three_tickers_is_stored_once_and_linked_three_times(
    engine: Engine,
) -> None:
    at = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    # As the API returns it: once per ticker asked for; plus one entry naming several.
    shared = [article("https://x.test/a", at, (t,)) for t in ("AAPL", "msft", "NVDA")]
    several = article("https://x.test/b", at, ("AAPL", "MSFT", "NVDA", "AAPL"))

    summary = write_news(engine, [*shared, several], fetched_at=FETCHED)

    assert summary == NewsWriteSummary(
        articles_inserted=2,
        articles_updated=0,
        links_inserted=6,
        affected_days=frozenset((t, date(2026, 11, 24)) for t in ("AAPL", "MSFT", "NVDA")),
    )
    stored = contents(engine)
    assert [row[0] for row in stored["news_articles"]] == ["https://x.test/a", "https://x.test/b"]
    assert stored["news_article_tickers"] == [
        (url, ticker)
        for url in ("https://x.test/a", "https://x.test/b")
        for ticker in ("AAPL", "MSFT", "NVDA")
    ]


def test_rewriting_changes_nothing_and_a_refetch_keeps_the_first_fetched_at(
    engine: Engine,
) -> None:
    at = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    first = [
        article("https://x.test/a", at, ("AAPL", "MSFT"), 0.6),
        article("https://x.test/b", at - timedelta(hours=1), ("AAPL",), -0.4),
    ]
    write_news(engine, first, fetched_at=FETCHED)
    before = contents(engine)

    again = write_news(engine, first, fetched_at=FETCHED + timedelta(hours=1))

    assert again == NewsWriteSummary(0, 0, 0)
    assert contents(engine) == before

    # The publisher corrected the headline; the scorer now reads it as negative; and the
    # article is now also listed for NVDA.
    corrected = replace(
        first[0],
        title="Corrected headline",
        text="Corrected text.",
        image="https://x.test/a.png",
        sentiment=-0.7,
        sentiment_label="negative",
        tickers=("NVDA",),
    )
    later = FETCHED + timedelta(days=1)
    summary = write_news(engine, [corrected, first[1]], fetched_at=later)

    assert (summary.articles_inserted, summary.articles_updated, summary.links_inserted) == (
        0,
        1,
        1,
    )
    # Every ticker of the changed article, its earlier links too, needs its day rebuilt.
    day = date(2026, 11, 24)
    assert summary.affected_days == {("AAPL", day), ("MSFT", day), ("NVDA", day)}
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(news_articles).where(news_articles.c.url == "https://x.test/a")
        ).one()
        links = conn.execute(
            sa.select(news_article_tickers.c.ticker).where(
                news_article_tickers.c.url == "https://x.test/a"
            )
        ).scalars()
        assert sorted(links) == ["AAPL", "MSFT", "NVDA"]
    assert (row.title, row.text, row.image) == (
        "Corrected headline",
        "Corrected text.",
        "https://x.test/a.png",
    )
    assert (row.sentiment, row.sentiment_label) == (-0.7, "negative")
    assert row.fetched_at == FETCHED  # the first fetch, not the re-fetch
    assert row.published_at == at and row.published_at.tzinfo == UTC


def test_an_article_whose_publication_moves_to_another_day_reports_both_days(
    engine: Engine,
) -> None:
    old = datetime(2026, 11, 25, 3, 30, tzinfo=UTC)  # 2026-11-24 in New York
    write_news(engine, [article("https://x.test/a", old)], fetched_at=FETCHED)
    rebuild_daily_sentiment(engine, None, now=NOW)
    assert set(stored_daily(engine)) == {("AAPL", date(2026, 11, 24))}

    moved = article("https://x.test/a", old + timedelta(hours=2))  # 2026-11-25 in New York
    summary = write_news(engine, [moved], fetched_at=FETCHED + timedelta(hours=1))

    assert summary.affected_days == {("AAPL", date(2026, 11, 24)), ("AAPL", date(2026, 11, 25))}
    # The first fetch time is the watermark's: the move is not seen there, only in the summary.
    assert days_fetched_since(engine, FETCHED) == set()
    rebuild_daily_sentiment(engine, summary.affected_days, now=NOW)
    assert set(stored_daily(engine)) == {("AAPL", date(2026, 11, 25))}


def test_a_failure_in_a_later_chunk_leaves_nothing_written(engine: Engine) -> None:
    at = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    kept = article("https://x.test/kept", at, ("AAPL",), 0.3)
    write_news(engine, [kept], fetched_at=FETCHED)
    rebuild_daily_sentiment(engine, None, now=NOW)
    before = contents(engine)
    batch = [
        replace(kept, title="Changed", sentiment=-0.9, sentiment_label="negative"),
        article("https://x.test/1", at, ("AAPL", "MSFT")),
        article("https://x.test/2", at, ("NVDA",)),
        # NOT NULL title: the database refuses the second chunk's row.
        replace(article("https://x.test/3", at), title=None),  # type: ignore[arg-type]
    ]
    statements: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with pytest.raises(sa.exc.IntegrityError):
        write_news(engine, batch, fetched_at=FETCHED + timedelta(hours=1), chunk_rows=2)

    sa.event.remove(engine, "before_cursor_execute", record)
    article_inserts = [s for s in statements if s.startswith("INSERT INTO news_articles")]
    assert len(article_inserts) == 2  # the first chunk was sent, and then rolled back
    assert contents(engine) == before


def test_rows_are_sent_in_bulk_statements_of_at_most_chunk_rows(engine: Engine) -> None:
    at = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    batch = [article(f"https://x.test/{i}", at, ("AAPL", "MSFT")) for i in range(5)]
    statements: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    summary = write_news(engine, batch, fetched_at=FETCHED, chunk_rows=4)
    rebuild_daily_sentiment(engine, None, now=NOW, chunk_rows=1)

    sa.event.remove(engine, "before_cursor_execute", record)
    assert (summary.articles_inserted, summary.links_inserted) == (5, 10)
    assert sum(s.startswith("INSERT INTO news_articles ") for s in statements) == 2  # 4 + 1
    assert sum(s.startswith("INSERT INTO news_article_tickers ") for s in statements) == 3
    assert sum(s.startswith("INSERT INTO daily_sentiment ") for s in statements) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"published_at": datetime(2026, 11, 24, 15, 0)}, "naive datetime"),
        ({"sentiment_label": "bullish"}, "sentiment label 'bullish'"),
        ({"sentiment": 1.5}, r"not in \[-1, 1\]"),
        ({"sentiment": float("nan")}, r"not in \[-1, 1\]"),
        ({"tickers": ("AAPL", "BAD;")}, "invalid ticker"),
        ({"url": ""}, "without a url"),
    ],
)
def test_an_invalid_article_is_refused_before_anything_is_written(
    engine: Engine, change: dict[str, Any], message: str
) -> None:
    at = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    good = article("https://x.test/good", at)
    bad = replace(article("https://x.test/bad", at), **change)
    with pytest.raises(ValueError, match=message):
        write_news(engine, [good, bad], fetched_at=FETCHED)
    assert not any(contents(engine).values())
    with pytest.raises(ValueError, match="naive datetime"):
        write_news(engine, [good], fetched_at=datetime(2026, 11, 25, 12, 0))


# --- reads ------------------------------------------------------------------------------------


def test_newest_published_per_ticker(engine: Engine) -> None:
    base = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
    write_news(
        engine,
        [
            article("https://x.test/1", base, ("AAPL", "MSFT")),
            article("https://x.test/2", base + timedelta(days=2, microseconds=7), ("AAPL",)),
            article("https://x.test/3", base - timedelta(days=1), ("MSFT",)),
        ],
        fetched_at=FETCHED,
    )

    newest = newest_published(engine, ["AAPL", "MSFT", "NVDA"])

    assert newest == {"AAPL": base + timedelta(days=2, microseconds=7), "MSFT": base}
    assert all(moment.tzinfo == UTC for moment in newest.values())
    assert newest_published(engine, []) == {}


def test_read_news_is_newest_first_from_since(engine: Engine) -> None:
    base = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    write_news(
        engine,
        [
            article("https://x.test/old", base - timedelta(days=3), ("AAPL",), 0.2),
            article("https://x.test/b", base, ("AAPL",), -0.3),
            article("https://x.test/a", base, ("AAPL", "MSFT"), 0.0),  # same time: by url
            article("https://x.test/new", base + timedelta(hours=5), ("AAPL",), 0.9),
            article("https://x.test/other", base + timedelta(hours=6), ("MSFT",)),
        ],
        fetched_at=FETCHED,
    )

    rows = read_news(engine, "AAPL", since=base)

    assert [r.url for r in rows] == ["https://x.test/new", "https://x.test/a", "https://x.test/b"]
    assert rows[0].published_at == base + timedelta(hours=5)
    assert (rows[0].title, rows[0].publisher) == ("Headline of https://x.test/new", "Example Wire")
    assert [(r.sentiment, r.sentiment_label) for r in rows] == [
        (0.9, "positive"),
        (0.0, "neutral"),
        (-0.3, "negative"),
    ]
    assert [r.url for r in read_news(engine, "AAPL", since=base, limit=1)] == ["https://x.test/new"]
    assert read_news(engine, "NVDA", since=base) == []


def test_new_york_dates_at_the_utc_midnight_boundary_and_across_dst(engine: Engine) -> None:
    cases = {
        # After UTC midnight, still the evening before in New York (EST, UTC-5).
        datetime(2026, 11, 25, 3, 30, tzinfo=UTC): date(2026, 11, 24),
        datetime(2026, 11, 25, 5, 0, tzinfo=UTC): date(2026, 11, 25),
        # Clocks go forward on 2026-03-08: a 23-hour day.
        datetime(2026, 3, 8, 4, 59, tzinfo=UTC): date(2026, 3, 7),  # 23:59 EST
        datetime(2026, 3, 8, 5, 0, tzinfo=UTC): date(2026, 3, 8),  # 00:00 EST
        datetime(2026, 3, 9, 3, 59, tzinfo=UTC): date(2026, 3, 8),  # 23:59 EDT
        datetime(2026, 3, 9, 4, 0, tzinfo=UTC): date(2026, 3, 9),  # 00:00 EDT
        # Clocks go back on 2026-11-01: a 25-hour day.
        datetime(2026, 11, 1, 3, 59, tzinfo=UTC): date(2026, 10, 31),  # 23:59 EDT
        datetime(2026, 11, 1, 4, 0, tzinfo=UTC): date(2026, 11, 1),  # 00:00 EDT
        datetime(2026, 11, 2, 4, 59, tzinfo=UTC): date(2026, 11, 1),  # 23:59 EST
        datetime(2026, 11, 2, 5, 0, tzinfo=UTC): date(2026, 11, 2),  # 00:00 EST
    }
    for moment, day in cases.items():
        assert new_york_date(moment) == day, moment
    assert new_york_day_bounds(date(2026, 3, 8)) == (
        datetime(2026, 3, 8, 5, 0, tzinfo=UTC),
        datetime(2026, 3, 9, 4, 0, tzinfo=UTC),
    )
    assert new_york_day_bounds(date(2026, 11, 1)) == (
        datetime(2026, 11, 1, 4, 0, tzinfo=UTC),
        datetime(2026, 11, 2, 5, 0, tzinfo=UTC),
    )
    write_news(
        engine,
        [article(f"https://x.test/{i}", moment) for i, moment in enumerate(cases)],
        fetched_at=FETCHED,
    )

    assert days_fetched_since(engine, None) == {("AAPL", day) for day in cases.values()}
    assert rebuild_daily_sentiment(engine, None, now=NOW) == len(set(cases.values()))
    per_day = {day: n for (_, day), (n, *_) in stored_daily(engine).items()}
    assert per_day == {
        date(2026, 11, 24): 1,
        date(2026, 11, 25): 1,
        date(2026, 3, 7): 1,
        date(2026, 3, 8): 2,
        date(2026, 3, 9): 1,
        date(2026, 10, 31): 1,
        date(2026, 11, 1): 2,
        date(2026, 11, 2): 1,
    }
    # A rebuild of one day reads only that day's New York bounds.
    with engine.begin() as conn:
        conn.execute(sa.delete(daily_sentiment))
    assert rebuild_daily_sentiment(engine, [("AAPL", date(2026, 11, 1))], now=NOW) == 1
    assert stored_daily(engine) == {("AAPL", date(2026, 11, 1)): (2, 0.5, 2, 0, 0)}


def test_days_fetched_since_a_watermark(engine: Engine) -> None:
    at = datetime(2026, 11, 25, 3, 30, tzinfo=UTC)  # 2026-11-24 in New York
    write_news(engine, [article("https://x.test/1", at, ("AAPL", "MSFT"))], fetched_at=FETCHED)
    later = FETCHED + timedelta(hours=1)
    write_news(
        engine,
        [
            article("https://x.test/1", at, ("AAPL", "MSFT")),  # seen before: not new
            article("https://x.test/2", at + timedelta(days=1), ("NVDA",)),
        ],
        fetched_at=later,
    )

    assert days_fetched_since(engine, None) == {
        ("AAPL", date(2026, 11, 24)),
        ("MSFT", date(2026, 11, 24)),
        ("NVDA", date(2026, 11, 25)),
    }
    assert days_fetched_since(engine, FETCHED) == {("NVDA", date(2026, 11, 25))}
    assert days_fetched_since(engine, later) == set()


# --- daily sentiment ----------------------------------------------------------------------------


def random_articles(rng: random.Random, count: int, prefix: str) -> list[StoredArticle]:
    """Articles around New York midnights, DST changes included, for a few tickers."""
    tickers = ("AAPL", "MSFT", "NVDA", "BRK.B", "^GSPC")
    anchors = [
        datetime(2026, 3, 8, 5, 0, tzinfo=UTC),  # spring forward
        datetime(2026, 11, 1, 4, 0, tzinfo=UTC),  # fall back
        datetime(2026, 11, 25, 5, 0, tzinfo=UTC),  # a plain EST midnight
    ]
    result = []
    for i in range(count):
        moment = rng.choice(anchors) + timedelta(minutes=rng.randint(-36 * 60, 36 * 60))
        sentiment = round(rng.uniform(-1, 1), 4) if rng.random() > 0.2 else 0.0
        chosen = tuple(rng.sample(tickers, rng.randint(1, 3)))
        result.append(article(f"https://x.test/{prefix}{i}", moment, chosen, sentiment))
    return result


def test_rebuild_daily_sentiment_equals_an_independent_aggregation(engine: Engine) -> None:
    rng = random.Random(20261125)
    write_news(engine, random_articles(rng, 300, "a"), fetched_at=FETCHED, chunk_rows=64)

    written = rebuild_daily_sentiment(engine, None, now=NOW, chunk_rows=7)

    expected = expected_daily(engine)
    assert written == len(expected) > 20
    assert_same_daily(stored_daily(engine), expected)
    with engine.connect() as conn:
        assert set(conn.scalars(sa.select(daily_sentiment.c.updated_at))) == {NOW}
    before = contents(engine)
    assert rebuild_daily_sentiment(engine, None, now=NOW) == written
    assert contents(engine) == before  # idempotent

    # New articles and changed ones; then only some pairs are rebuilt.
    watermark = FETCHED
    later = FETCHED + timedelta(hours=2)
    changed = [
        replace(a, sentiment=-a.sentiment, sentiment_label=label_of(-a.sentiment))
        for a in random_articles(random.Random(20261125), 300, "a")[:40]
    ]
    summary = write_news(
        engine, [*changed, *random_articles(rng, 60, "b")], fetched_at=later, chunk_rows=64
    )
    pairs = days_fetched_since(engine, watermark) | summary.affected_days
    subset = sorted(pairs)[: len(pairs) // 2]
    untouched = {key: value for key, value in before_daily(before).items() if key not in subset}

    rebuild_daily_sentiment(engine, subset, now=NOW + timedelta(hours=3))

    expected = expected_daily(engine)
    stored = stored_daily(engine)
    assert_same_daily(
        {k: v for k, v in stored.items() if k in subset},
        {k: v for k, v in expected.items() if k in subset},
    )
    assert {k: v for k, v in stored.items() if k not in subset} == untouched

    # The rest of the pairs: now every row is what the articles say.
    rest = [pair for pair in pairs if pair not in subset]
    rebuild_daily_sentiment(engine, rest, now=NOW + timedelta(hours=3))
    assert_same_daily(stored_daily(engine), expected_daily(engine))


def before_daily(snapshot: dict[str, list[tuple[Any, ...]]]) -> dict[tuple[str, date], Any]:
    """The daily rows of a :func:`contents` snapshot, keyed as :func:`stored_daily` keys."""
    rows = snapshot["daily_sentiment"]
    return {(t, d): (n, mean, p, neg, neu) for t, d, n, mean, p, neg, neu, _ in rows}


def test_a_pair_without_articles_ends_without_a_row(engine: Engine) -> None:
    at = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    write_news(engine, [article("https://x.test/a", at, ("AAPL",))], fetched_at=FETCHED)
    rebuild_daily_sentiment(engine, None, now=NOW)
    with engine.begin() as conn:
        conn.execute(sa.delete(news_article_tickers))
        conn.execute(sa.delete(news_articles))

    assert rebuild_daily_sentiment(engine, [("AAPL", date(2026, 11, 24))], now=NOW) == 0
    assert stored_daily(engine) == {}
    assert rebuild_daily_sentiment(engine, [], now=NOW) == 0


def test_daily_sentiment_for_a_day_is_most_positive_first(engine: Engine) -> None:
    day = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    write_news(
        engine,
        [
            article("https://x.test/1", day, ("AAPL",), 0.8),
            article("https://x.test/2", day + timedelta(hours=1), ("AAPL",), -0.2),
            article("https://x.test/3", day, ("MSFT",), -0.6),
            article("https://x.test/4", day, ("NVDA",), 0.0),
            article("https://x.test/5", day + timedelta(days=1), ("NVDA",), 0.9),
        ],
        fetched_at=FETCHED,
    )
    rebuild_daily_sentiment(engine, None, now=NOW)

    rows = daily_sentiment_for(engine, date(2026, 11, 24))

    assert [r.ticker for r in rows] == ["AAPL", "NVDA", "MSFT"]
    assert rows[0] == DailySentimentRow(
        ticker="AAPL",
        day=date(2026, 11, 24),
        articles=2,
        mean_sentiment=pytest.approx(0.3),  # type: ignore[arg-type]
        positive=1,
        negative=1,
        neutral=0,
        updated_at=NOW,
    )
    assert (rows[1].neutral, rows[2].negative) == (1, 1)
    assert daily_sentiment_for(engine, date(2026, 11, 23)) == []
