"""News: `news_articles` (fetched incrementally, scored offline) and `daily_sentiment`.

The fetch goes through the one fetch engine (groups of tickers per request, pages followed
inside a request, the run's retry budget); scoring is plain Python (VADER with the project's
finance lexicon, quote_pipeline/sentiment.py); the tables are written by
quote_pipeline/storage/news.py, one transaction per group of tickers.
"""

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from pydantic import Field

from quote_pipeline.celery_config import fmp_queue_tags
from quote_pipeline.defs.fetching import (
    api_refusal,
    fail_unless_complete,
    fetch_through_engine,
    tracked_symbols,
)
from quote_pipeline.defs.metadata import (
    OWNERS,
    counts_text,
    failures_value,
    table_metadata,
    table_value,
    utc_minute,
)
from quote_pipeline.defs.resources import DatabaseResource, FMPResource
from quote_pipeline.fetch_engine import SymbolResult
from quote_pipeline.fmp import FMPError
from quote_pipeline.fmp.news import NewsArticle, TickerNews, news_request, probe_news
from quote_pipeline.sentiment import HeadlineScorer, Sentiment
from quote_pipeline.storage import schema as tables
from quote_pipeline.storage.news import (
    StoredArticle,
    daily_sentiment_for,
    days_fetched_since,
    new_york_date,
    newest_published,
    rebuild_daily_sentiment,
    write_news,
)

GROUP = "news"
NEWS_ARTICLES = dg.AssetKey("news_articles")
DAILY_SENTIMENT = dg.AssetKey("daily_sentiment")
FETCHED_THROUGH = "fetched_through"  # daily_sentiment's watermark, kept in its metadata


class NewsFetchConfig(dg.Config):
    """How far back a news run asks, and how it groups tickers."""

    first_fetch_days: int = Field(
        default=30,
        ge=1,
        description="A ticker with no stored news is asked this many days back.",
    )
    overlap_hours: int = Field(
        default=6,
        ge=0,
        description="Every later run asks again from this long before the newest stored "
        "article of each ticker (late-indexed articles; a url is stored once).",
    )
    tickers_per_request: int = Field(
        default=25, ge=1, le=30, description="Symbols per request (FMP accepted 30)."
    )
    page_size: int = Field(
        default=250, ge=1, le=250, description="Rows per page (FMP's cap is 250)."
    )
    tickers_per_write: int = Field(
        default=100, ge=1, description="Tickers whose articles are written per transaction."
    )
    only_symbols: list[str] | None = Field(
        default=None, description="Fetch only these of the tracked tickers; unset: all."
    )


def stored_articles(answered: Sequence[TickerNews], scorer: HeadlineScorer) -> list[StoredArticle]:
    """One row per article (by url), linked to every ticker it came with, scored once."""
    by_url: dict[str, NewsArticle] = {}
    tickers: dict[str, list[str]] = {}
    for news in answered:
        for article in news.articles:
            by_url.setdefault(article.url, article)
            tickers.setdefault(article.url, []).append(news.symbol.upper())
    rows = []
    for url, article in by_url.items():
        sentiment: Sentiment = scorer.score(article.title, article.text)
        rows.append(
            StoredArticle(
                url=url,
                published_at=article.published_at,
                publisher=article.publisher,
                site=article.site,
                title=article.title,
                text=article.text,
                image=article.image,
                sentiment=sentiment.compound,
                sentiment_label=sentiment.label,
                tickers=tuple(dict.fromkeys(tickers[url])),
            )
        )
    return rows


def headlines_value(articles: Sequence[StoredArticle], limit: int = 10) -> dg.TableMetadataValue:
    """The newest headlines of the run, with their labels (the score is a float statistic)."""
    newest = sorted(articles, key=lambda a: (a.published_at, a.url), reverse=True)[:limit]
    return table_value(
        [
            {
                "published": utc_minute(a.published_at),
                "tickers": ", ".join(a.tickers),
                "label": a.sentiment_label,
                "sentiment": round(a.sentiment, 3),
                "title": a.title[:120],
            }
            for a in newest
        ]
    )


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    deps=["tickers"],
    pool="fmp_api",
    op_tags=fmp_queue_tags(),
    kinds={"api", "sql", "table"},
    metadata=table_metadata(tables.news_articles),
)
def news_articles(
    context: dg.AssetExecutionContext,
    config: NewsFetchConfig,
    fmp: FMPResource,
    database: DatabaseResource,
) -> dg.MaterializeResult:
    """Stock news of every tracked ticker, each article stored once (by url) and linked to
    each ticker it was listed for (`news_article_tickers`), with an offline sentiment score.

    Incremental: each ticker is asked from its newest stored article (less an overlap), a
    ticker without news `first_fetch_days` back; tickers go 25 to a request, pages followed
    until the window is complete. FMP's `publishedDate` has no zone: it is read as New York
    time and stored in UTC. Needs FMP's Starter plan or higher: on a free plan the run
    stops after one request, saying so.
    """
    started = time.monotonic()
    now = datetime.now(UTC)
    engine = database.get_engine()
    symbols = tracked_symbols(database, config.only_symbols)
    fmp.refuse_if_quota_held()
    requests_before = fmp.client.requests_made
    try:  # one request: a free plan fails here, not in a wall of 402s
        probe_news(fmp.client, symbols[0])
    except FMPError as exc:
        raise api_refusal(
            exc,
            "News needs FMP's Starter plan or higher",
            api_requests=fmp.client.requests_made - requests_before,
        ) from None
    newest = newest_published(engine, symbols)
    overlap = timedelta(hours=config.overlap_hours)
    default_since = now - timedelta(days=config.first_fetch_days)
    since = {s: newest[s] - overlap for s in symbols if s in newest}
    scorer = HeadlineScorer()
    written: dict[str, int] = Counter()
    # The run's articles by url: one listed for tickers of two groups counts once, with all.
    run_articles: dict[str, StoredArticle] = {}

    def on_group(results: list[SymbolResult[TickerNews]]) -> None:
        answered = [r.value for r in results if r.value is not None]
        rows = stored_articles(answered, scorer)
        if not rows:
            return
        summary = write_news(engine, rows, fetched_at=datetime.now(UTC))
        written["articles_inserted"] += summary.articles_inserted
        written["articles_updated"] += summary.articles_updated
        written["links_inserted"] += summary.links_inserted
        for row in rows:
            if seen := run_articles.get(row.url):
                row = replace(row, tickers=tuple(dict.fromkeys((*seen.tickers, *row.tickers))))
            run_articles[row.url] = row

    report = fetch_through_engine(
        fmp,
        symbols,
        news_request(
            fmp.client,
            since=since,
            default_since=default_since,
            until=now,
            page_size=config.page_size,
        ),
        symbols_per_request=config.tickers_per_request,
        group_size=config.tickers_per_write,
        on_group=on_group,
        log=context.log.info,
    )
    failures = report.failures
    requests = fmp.client.requests_made - requests_before  # the probe included
    labels = Counter(a.sentiment_label for a in run_articles.values())
    context.log.info(
        f"{len(run_articles)} articles for {len(symbols)} tickers with {requests} "
        f"requests: {written['articles_inserted']} new, {written['links_inserted']} new links"
        + (f"; {len(failures)} tickers failed" if failures else "")
    )
    metadata: dict[str, Any] = {
        **({"failed_tickers": failures_value(failures)} if failures else {}),
        "latest_headlines": headlines_value(list(run_articles.values())),
        "articles_new": written["articles_inserted"],
        "articles_updated": written["articles_updated"],
        "links_new": written["links_inserted"],
        "labels": counts_text(labels),
        "tickers_requested": len(symbols),
        "api_requests": requests,
        "seconds": round(time.monotonic() - started, 3),
    }
    fail_unless_complete(report, metadata, "Materialize again: articles are stored once by url.")
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    deps=[NEWS_ARTICLES],
    kinds={"sql", "table"},
    metadata=table_metadata(tables.daily_sentiment),
    # Declarative automation: rebuilt after each news_articles materialization (the
    # automation condition sensor evaluates it), never on a schedule of its own.
    automation_condition=dg.AutomationCondition.eager(),
)
def daily_sentiment(
    context: dg.AssetExecutionContext, database: DatabaseResource
) -> dg.MaterializeResult:
    """Per ticker and New York date: how many articles, their mean sentiment, and how many
    were positive, negative and neutral. Rebuilt for the days that gained or may have
    changed articles since its last materialization (every day, the first time)."""
    engine = database.get_engine()
    started_at = datetime.now(UTC)
    previous = context.instance.get_latest_materialization_event(DAILY_SENTIMENT)
    watermark = None
    if previous and previous.asset_materialization:
        stored = previous.asset_materialization.metadata.get(FETCHED_THROUGH)
        watermark = datetime.fromtimestamp(float(stored.value), UTC) if stored else None
    # Re-fetched articles (content may have changed) are those in the news run's overlap,
    # published at most a day or so before the watermark: rebuild their days too.
    pairs = days_fetched_since(
        engine,
        watermark,
        published_since=watermark - timedelta(days=2) if watermark else None,
    )
    rows = rebuild_daily_sentiment(engine, None if watermark is None else pairs, now=started_at)
    latest_day = max((day for _, day in pairs), default=new_york_date(started_at))
    day_rows = daily_sentiment_for(engine, latest_day)

    def ranked(rows: Sequence[Any]) -> dg.TableMetadataValue:
        return table_value(
            [
                {
                    "ticker": r.ticker,
                    "articles": r.articles,
                    "mean_sentiment": round(r.mean_sentiment, 3),
                    "positive": r.positive,
                    "negative": r.negative,
                }
                for r in rows
            ]
        )

    return dg.MaterializeResult(
        metadata={
            "day": latest_day.isoformat(),
            "most_positive": ranked(day_rows[:5]),
            "most_negative": ranked(list(reversed(day_rows[-5:]))),
            "rows_rebuilt": rows,
            # Articles fetched up to a little before this run started are counted: one still
            # being written by a concurrent news run is rebuilt next time.
            FETCHED_THROUGH: dg.MetadataValue.timestamp(started_at - timedelta(minutes=10)),
        }
    )
