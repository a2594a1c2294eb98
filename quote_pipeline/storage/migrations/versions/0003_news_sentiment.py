"""Stock news with sentiment: news_articles, news_article_tickers, daily_sentiment.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Only adds tables: no stored row is touched. Written out in full, never taken from schema.py
(which moves on with later revisions).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from quote_pipeline.storage.types import UTCDateTime

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYMBOL_LENGTH = 15  # models.MAX_SYMBOL_LENGTH when this revision was written
URL_LENGTH = 2048
TICKER = "Exchange symbol, upper case."
URL = "The article's link."


def upgrade() -> None:
    op.create_table(
        "news_articles",
        sa.Column("url", sa.String(URL_LENGTH), primary_key=True, comment=URL),
        sa.Column("published_at", UTCDateTime(), nullable=False, comment="Publication time (UTC)."),
        sa.Column("publisher", sa.Text(), nullable=True, comment="Publisher, as the API names it."),
        sa.Column("site", sa.Text(), nullable=True, comment="Web site it appeared on."),
        sa.Column("title", sa.Text(), nullable=False, comment="Headline."),
        sa.Column("text", sa.Text(), nullable=True, comment="Summary or text, as the API sent it."),
        sa.Column("image", sa.Text(), nullable=True, comment="Image link."),
        sa.Column(
            "fetched_at",
            UTCDateTime(),
            nullable=False,
            comment="When it was first fetched (a re-fetch keeps it).",
        ),
        sa.Column(
            "sentiment",
            sa.Float(),
            nullable=False,
            comment="VADER compound score in [-1, 1]: a statistic, a float on purpose.",
        ),
        sa.Column(
            "sentiment_label",
            sa.String(8),
            nullable=False,
            comment="positive, negative or neutral.",
        ),
        comment="Stock news articles, one row per link, with the sentiment of their text.",
    )
    op.create_index("ix_news_articles_published_at", "news_articles", ["published_at"])

    op.create_table(
        "news_article_tickers",
        sa.Column(
            "url",
            sa.String(URL_LENGTH),
            sa.ForeignKey(
                "news_articles.url", ondelete="CASCADE", name="fk_news_article_tickers_url"
            ),
            primary_key=True,
            comment=URL,
        ),
        sa.Column("ticker", sa.String(SYMBOL_LENGTH), primary_key=True, comment=TICKER),
        comment="Which tickers each news article is about (an article may be about several).",
    )
    op.create_index("ix_news_article_tickers_ticker_url", "news_article_tickers", ["ticker", "url"])

    op.create_table(
        "daily_sentiment",
        sa.Column("ticker", sa.String(SYMBOL_LENGTH), primary_key=True, comment=TICKER),
        sa.Column(
            "day",
            sa.Date(),
            primary_key=True,
            comment="New York date of the articles' publication.",
        ),
        sa.Column("articles", sa.Integer(), nullable=False, comment="Articles that day."),
        sa.Column(
            "mean_sentiment",
            sa.Float(),
            nullable=False,
            comment="Mean VADER compound score of those articles, in [-1, 1].",
        ),
        sa.Column("positive", sa.Integer(), nullable=False, comment="Articles labelled positive."),
        sa.Column("negative", sa.Integer(), nullable=False, comment="Articles labelled negative."),
        sa.Column("neutral", sa.Integer(), nullable=False, comment="Articles labelled neutral."),
        sa.Column(
            "updated_at", UTCDateTime(), nullable=False, comment="When this row was computed."
        ),
        comment="News sentiment per ticker and New York day, recomputed from news_articles.",
    )


def downgrade() -> None:
    op.drop_table("daily_sentiment")
    op.drop_index("ix_news_article_tickers_ticker_url", table_name="news_article_tickers")
    op.drop_table("news_article_tickers")
    op.drop_index("ix_news_articles_published_at", table_name="news_articles")
    op.drop_table("news_articles")
