"""Stock news with sentiment: articles, the tickers they are about, and daily aggregates.

Plain Python, no Dagster, no HTTP: the news asset turns the fetch results and the sentiment
scorer's output into :class:`StoredArticle` values and hands them to :func:`write_news`;
:func:`rebuild_daily_sentiment` then recomputes ``daily_sentiment`` for the (ticker, day)
pairs that :func:`days_fetched_since` (or the write's summary) names.

Days are New York dates (the market's), computed in Python with zoneinfo so that SQLite and
PostgreSQL agree without dialect-specific date arithmetic. Every write is one transaction and
sends its rows in bulk statements of at most ``chunk_rows`` rows, never one per row.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from quote_pipeline.compat import batched
from quote_pipeline.models import normalize_symbols
from quote_pipeline.storage.repository import IN_LIST_LIMIT, Bind, dialect_insert, transaction
from quote_pipeline.storage.schema import daily_sentiment, news_article_tickers, news_articles

NEW_YORK = ZoneInfo("America/New_York")
SENTIMENT_LABELS = ("positive", "negative", "neutral")
DEFAULT_CHUNK_ROWS = 1_000
# Rows fetched at a time by the full rebuild's read (a server-side cursor on PostgreSQL).
_READ_BATCH = 10_000

# What a re-fetch replaces; fetched_at is left out on purpose: it records the first fetch.
_CONTENT_COLUMNS = (
    "published_at",
    "publisher",
    "site",
    "title",
    "text",
    "image",
    "sentiment",
    "sentiment_label",
)

_DAILY_VALUES = ("articles", "mean_sentiment", *SENTIMENT_LABELS, "updated_at")


# --- values in and out -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredArticle:
    """One news article as it is stored, with its sentiment and the tickers it is about.

    The same ``url`` may come several times in one write (the API returns an article once per
    ticker asked for): it is stored once and linked to the union of the tickers.
    """

    url: str
    published_at: datetime  # aware
    publisher: str | None
    site: str | None
    title: str
    text: str | None
    image: str | None
    sentiment: float  # VADER compound score, in [-1, 1]
    sentiment_label: str  # one of SENTIMENT_LABELS
    tickers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NewsWriteSummary:
    """What one :func:`write_news` changed."""

    articles_inserted: int  # new urls
    articles_updated: int  # stored urls whose content differed (identical re-fetches: 0)
    links_inserted: int  # new (url, ticker) links
    # The (ticker, New York day) pairs whose daily_sentiment row this write may have changed,
    # including the old day of an article whose published_at moved and the days of an
    # updated article's earlier links: pass them to rebuild_daily_sentiment.
    affected_days: frozenset[tuple[str, date]] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class NewsRow:
    """An article linked to a ticker, as :func:`read_news` lists it."""

    published_at: datetime
    title: str
    publisher: str | None
    sentiment: float
    sentiment_label: str
    url: str


@dataclass(frozen=True, slots=True)
class DailySentimentRow:
    """A row of ``daily_sentiment``."""

    ticker: str
    day: date
    articles: int
    mean_sentiment: float
    positive: int
    negative: int
    neutral: int
    updated_at: datetime


def new_york_date(moment: datetime) -> date:
    """The New York calendar date of an aware ``moment`` (EST or EDT as the date has it)."""
    _require_aware(moment)
    return moment.astimezone(NEW_YORK).date()


def new_york_day_bounds(day: date) -> tuple[datetime, datetime]:
    """``day``'s New York midnight and the next one, in UTC: [start, end) holds the day
    (23 or 25 hours long on the days the clocks change)."""
    start = datetime.combine(day, time(), NEW_YORK)
    end = datetime.combine(day + timedelta(days=1), time(), NEW_YORK)
    return start.astimezone(UTC), end.astimezone(UTC)


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} refused: use an aware one")


# --- writes ----------------------------------------------------------------------------------


def write_news(
    bind: Bind,
    articles: Sequence[StoredArticle],
    *,
    fetched_at: datetime,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> NewsWriteSummary:
    """Store ``articles`` and link each to its tickers, in one transaction.

    Articles are upserted on ``url``: a re-fetch replaces the content (title, text, image,
    publisher, site, published_at, sentiment and its label) but keeps ``fetched_at``, the
    time of the first fetch. A row whose content is unchanged is not rewritten, so running
    the same write twice changes no row and adds none. Links are inserted, existing ones
    ignored; links are never removed here (an article the API stops listing for a ticker was
    still about it). Where one url comes several times, its tickers are merged and the last
    entry's content is stored.

    Tickers are normalized (upper case) and checked, and every value that Python can check
    is checked before anything is sent: an invalid article raises ``ValueError`` and nothing
    is written. ``bind`` may be a connection whose transaction the caller owns.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    _require_aware(fetched_at)
    rows, links = _merged(articles, fetched_at)
    if not rows:
        return NewsWriteSummary(0, 0, 0)
    published = {url: row["published_at"] for url, row in rows.items()}

    with transaction(bind) as conn:
        # Which urls are stored already (and when they said they were published), to tell
        # inserts from updates and to find the day an updated article leaves.
        before: dict[str, datetime] = {}
        for urls in batched(rows, IN_LIST_LIMIT):
            query = sa.select(news_articles.c.url, news_articles.c.published_at).where(
                news_articles.c.url.in_(urls)
            )
            before.update(conn.execute(query).tuples().all())

        insert = dialect_insert(conn, news_articles)
        upsert = insert.on_conflict_do_update(
            index_elements=["url"],
            set_={c: insert.excluded[c] for c in _CONTENT_COLUMNS},
            # Only a real change is written: an identical re-fetch leaves the row alone.
            where=sa.or_(
                *(news_articles.c[c].is_distinct_from(insert.excluded[c]) for c in _CONTENT_COLUMNS)
            ),
        ).returning(news_articles.c.url)
        # RETURNING makes SQLAlchemy send multi-row VALUES pages ("insertmanyvalues").
        written: set[str] = set()
        for chunk in batched(rows.values(), chunk_rows):
            written.update(conn.scalars(upsert, list(chunk)).all())

        link = (
            dialect_insert(conn, news_article_tickers)
            .on_conflict_do_nothing(index_elements=["url", "ticker"])
            .returning(news_article_tickers.c.url, news_article_tickers.c.ticker)
        )
        new_links: list[tuple[str, str]] = []
        for chunk in batched(links, chunk_rows):
            new_links.extend(
                conn.execute(link, [{"url": u, "ticker": t} for u, t in chunk]).tuples()
            )

        updated = written & before.keys()
        affected = {(ticker, new_york_date(published[url])) for url, ticker in new_links}
        for urls in batched(sorted(updated), IN_LIST_LIMIT):
            query = sa.select(news_article_tickers.c.url, news_article_tickers.c.ticker).where(
                news_article_tickers.c.url.in_(urls)
            )
            for url, ticker in conn.execute(query).tuples():
                affected.add((ticker, new_york_date(published[url])))
                affected.add((ticker, new_york_date(before[url])))

    return NewsWriteSummary(
        articles_inserted=len(written - before.keys()),
        articles_updated=len(updated),
        links_inserted=len(new_links),
        affected_days=frozenset(affected),
    )


def _merged(
    articles: Iterable[StoredArticle], fetched_at: datetime
) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str]]]:
    """One row per url (the last entry's content) and the distinct (url, ticker) links."""
    rows: dict[str, dict[str, Any]] = {}
    links: dict[tuple[str, str], None] = {}  # ordered and distinct
    for article in articles:
        _check(article)
        rows[article.url] = {
            "url": article.url,
            "published_at": article.published_at,
            "publisher": article.publisher,
            "site": article.site,
            "title": article.title,
            "text": article.text,
            "image": article.image,
            "fetched_at": fetched_at,
            "sentiment": float(article.sentiment),
            "sentiment_label": article.sentiment_label,
        }
        for ticker in normalize_symbols(article.tickers):
            links.setdefault((article.url, ticker), None)
    return rows, list(links)


def _check(article: StoredArticle) -> None:
    if not article.url:
        raise ValueError("an article without a url cannot be stored")
    _require_aware(article.published_at)
    if article.sentiment_label not in SENTIMENT_LABELS:
        raise ValueError(
            f"{article.url}: sentiment label {article.sentiment_label!r} is not one of "
            f"{', '.join(SENTIMENT_LABELS)}"
        )
    if not (math.isfinite(article.sentiment) and -1.0 <= article.sentiment <= 1.0):
        raise ValueError(f"{article.url}: sentiment {article.sentiment!r} is not in [-1, 1]")


def rebuild_daily_sentiment(
    bind: Bind,
    pairs: Collection[tuple[str, date]] | None,
    *,
    now: datetime,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> int:
    """Recompute the ``daily_sentiment`` rows of ``pairs`` (None: every row) from the stored
    articles and links, in one transaction. Returns the rows written.

    Each pair's row is deleted, then written again if the ticker has articles that New York
    day (a pair with none ends with no row). Only the articles of the pairs' tickers published
    within the pairs' days are read; the aggregation is done in Python. Running it again
    with the same ``now`` leaves the same rows.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    _require_aware(now)
    with transaction(bind) as conn:
        if pairs is None:
            conn.execute(sa.delete(daily_sentiment))
            observations: Iterable[tuple[str, datetime, float, str]] = conn.execute(
                _observations_query().execution_options(yield_per=_READ_BATCH)
            ).tuples()
            aggregates = _aggregate(observations)
        else:
            aggregates = _aggregate(_replace_pairs(conn, pairs))

        rows = [
            {"ticker": ticker, "day": day, **values, "updated_at": now}
            for (ticker, day), values in sorted(aggregates.items())
        ]
        insert = dialect_insert(conn, daily_sentiment)
        # The rows were just deleted; the upsert keeps a concurrent rebuild of the same
        # pairs from failing on the primary key.
        upsert = insert.on_conflict_do_update(
            index_elements=["ticker", "day"], set_={c: insert.excluded[c] for c in _DAILY_VALUES}
        ).returning(daily_sentiment.c.ticker)
        written = 0
        for chunk in batched(rows, chunk_rows):
            written += len(conn.execute(upsert, list(chunk)).all())
    return written


def _replace_pairs(
    conn: Connection, pairs: Collection[tuple[str, date]]
) -> Iterator[tuple[str, datetime, float, str]]:
    """Delete the pairs' rows and yield the observations (ticker, published_at, sentiment,
    label) that make them up: one query per day and chunk of tickers, bounded by the day's
    New York midnights."""
    by_day: dict[date, set[str]] = {}
    for ticker, day in pairs:
        by_day.setdefault(day, set()).add(ticker)
    for day, tickers in sorted(by_day.items()):
        start, end = new_york_day_bounds(day)
        for chunk in batched(sorted(tickers), IN_LIST_LIMIT):
            conn.execute(
                sa.delete(daily_sentiment).where(
                    daily_sentiment.c.day == day, daily_sentiment.c.ticker.in_(chunk)
                )
            )
            query = _observations_query().where(
                news_article_tickers.c.ticker.in_(chunk),
                news_articles.c.published_at >= start,
                news_articles.c.published_at < end,
            )
            yield from conn.execute(query).tuples()


def _observations_query() -> sa.Select[tuple[str, datetime, float, str]]:
    return sa.select(
        news_article_tickers.c.ticker,
        news_articles.c.published_at,
        news_articles.c.sentiment,
        news_articles.c.sentiment_label,
    ).join_from(news_article_tickers, news_articles)


def _aggregate(
    observations: Iterable[tuple[str, datetime, float, str]],
) -> dict[tuple[str, date], dict[str, Any]]:
    """Per (ticker, New York day): the article count, mean score and counts per label."""
    scores: dict[tuple[str, date], list[float]] = {}
    labels: dict[tuple[str, date], dict[str, int]] = {}
    for ticker, published_at, sentiment, label in observations:
        key = (ticker, new_york_date(published_at))
        scores.setdefault(key, []).append(sentiment)
        counts = labels.setdefault(key, dict.fromkeys(SENTIMENT_LABELS, 0))
        counts[label] = counts.get(label, 0) + 1
    return {
        key: {
            "articles": len(values),
            # fsum: the same mean whatever order the database returned the rows in.
            "mean_sentiment": math.fsum(values) / len(values),
            **{label: labels[key].get(label, 0) for label in SENTIMENT_LABELS},
        }
        for key, values in scores.items()
    }


# --- reads -----------------------------------------------------------------------------------


def newest_published(bind: Bind, tickers: Sequence[str]) -> dict[str, datetime]:
    """The latest ``published_at`` of the articles linked to each ticker (as stored, upper
    case); tickers without news are absent. What a fetch can start from."""
    newest: dict[str, datetime] = {}
    with transaction(bind) as conn:
        for chunk in batched(sorted(set(tickers)), IN_LIST_LIMIT):
            query = (
                sa.select(news_article_tickers.c.ticker, sa.func.max(news_articles.c.published_at))
                .join_from(news_article_tickers, news_articles)
                .where(news_article_tickers.c.ticker.in_(chunk))
                .group_by(news_article_tickers.c.ticker)
            )
            newest.update(conn.execute(query).tuples().all())
    return newest


def read_news(
    bind: Bind, ticker: str, *, since: datetime, limit: int | None = None
) -> list[NewsRow]:
    """The articles linked to ``ticker`` (as stored, upper case) published at or after
    ``since``, newest first (then by url, so the order is stable); at most ``limit``."""
    _require_aware(since)
    query = (
        sa.select(
            news_articles.c.published_at,
            news_articles.c.title,
            news_articles.c.publisher,
            news_articles.c.sentiment,
            news_articles.c.sentiment_label,
            news_articles.c.url,
        )
        .join_from(news_article_tickers, news_articles)
        .where(news_article_tickers.c.ticker == ticker, news_articles.c.published_at >= since)
        .order_by(news_articles.c.published_at.desc(), news_articles.c.url)
        .limit(limit)
    )
    with transaction(bind) as conn:
        return [NewsRow(*row) for row in conn.execute(query).tuples()]


def days_fetched_since(
    bind: Bind, fetched_after: datetime | None, *, published_since: datetime | None = None
) -> set[tuple[str, date]]:
    """The (ticker, New York date of publication) pairs of the articles first fetched after
    ``fetched_after`` (None: of every article), and of every article published since
    ``published_since``: the daily_sentiment rows a rebuild needs.

    ``fetched_at`` is the first fetch, so an article re-fetched with new content is not
    found by it; re-fetches only happen in the overlap window of an incremental fetch, so
    ``published_since`` (the window's start) covers them. Within one process,
    :attr:`NewsWriteSummary.affected_days` says the same.
    """
    query = sa.select(news_article_tickers.c.ticker, news_articles.c.published_at).join_from(
        news_article_tickers, news_articles
    )
    if fetched_after is not None:
        _require_aware(fetched_after)
        recent = news_articles.c.fetched_at > fetched_after
        if published_since is not None:
            _require_aware(published_since)
            recent = sa.or_(recent, news_articles.c.published_at >= published_since)
        query = query.where(recent)
    with transaction(bind) as conn:
        return {
            (ticker, new_york_date(published_at))
            for ticker, published_at in conn.execute(query).tuples()
        }


def daily_sentiment_for(bind: Bind, day: date) -> list[DailySentimentRow]:
    """Every ticker's ``daily_sentiment`` row of New York ``day``, most positive first (then by
    ticker): the head of the list is the day's most positive tickers, its tail the most
    negative."""
    query = (
        sa.select(daily_sentiment)
        .where(daily_sentiment.c.day == day)
        .order_by(daily_sentiment.c.mean_sentiment.desc(), daily_sentiment.c.ticker)
    )
    with transaction(bind) as conn:
        return [DailySentimentRow(**row._mapping) for row in conn.execute(query)]


__all__ = [
    "NEW_YORK",
    "SENTIMENT_LABELS",
    "DailySentimentRow",
    "NewsRow",
    "NewsWriteSummary",
    "StoredArticle",
    "daily_sentiment_for",
    "days_fetched_since",
    "new_york_date",
    "new_york_day_bounds",
    "newest_published",
    "read_news",
    "rebuild_daily_sentiment",
    "write_news",
]
