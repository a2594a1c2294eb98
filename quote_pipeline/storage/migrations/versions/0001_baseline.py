"""Baseline: the six tables as ``metadata.create_all`` built them before migrations.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Written out in full, never taken from schema.py (which moves on with later revisions). The
result is the same database create_all made: exact decimals as NUMERIC on PostgreSQL and
VARCHAR(64) text on SQLite, timestamps as TIMESTAMP WITH TIME ZONE, the same constraint and
index names and comments.

A database made before migrations is adopted at this revision without being rebuilt. One
made by an older version may lack the later tables (create_all only ever added missing
ones), so a table that already exists is kept as it is and only the missing ones are
created.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from quote_pipeline.storage.types import ExactDecimal, UTCDateTime

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYMBOL_LENGTH = 15  # models.MAX_SYMBOL_LENGTH when this revision was written


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())

    if "tickers" not in existing:
        op.create_table(
            "tickers",
            sa.Column("ticker", sa.String(SYMBOL_LENGTH), primary_key=True),
            sa.Column("added_at", UTCDateTime(), nullable=False),
            comment="The tracked universe: every symbol the quote refresh asks the API for.",
        )

    if "stocks" not in existing:
        op.create_table(
            "stocks",
            sa.Column("ticker", sa.String(SYMBOL_LENGTH), primary_key=True),
            sa.Column("price", ExactDecimal(), nullable=False),
            sa.Column("volume", sa.BigInteger(), nullable=False),
            sa.Column("change", ExactDecimal(), nullable=True),
            sa.Column("quoted_at", UTCDateTime(), nullable=False),
            sa.Column("updated_at", UTCDateTime(), nullable=False),
            comment="The latest quote of each ticker.",
        )

    if "quote_snapshots" not in existing:
        op.create_table(
            "quote_snapshots",
            sa.Column("ticker", sa.String(SYMBOL_LENGTH), nullable=False),
            sa.Column("price", ExactDecimal(), nullable=False),
            sa.Column("volume", sa.BigInteger(), nullable=False),
            sa.Column("quoted_at", UTCDateTime(), nullable=False),
            sa.Column("fetched_at", UTCDateTime(), nullable=False),
            sa.UniqueConstraint("ticker", "quoted_at", name="uq_quote_snapshots_ticker_quoted_at"),
            comment="Every quote ever written, append-only.",
        )

    if "daily_prices" not in existing:
        op.create_table(
            "daily_prices",
            sa.Column("ticker", sa.String(SYMBOL_LENGTH), primary_key=True),
            sa.Column("date", sa.Date(), primary_key=True, comment="NYSE session (New York date)."),
            sa.Column("open", ExactDecimal(), nullable=False),
            sa.Column("high", ExactDecimal(), nullable=False),
            sa.Column("low", ExactDecimal(), nullable=False),
            sa.Column("close", ExactDecimal(), nullable=False),
            sa.Column("volume", sa.BigInteger(), nullable=False),
            sa.Column("change", ExactDecimal(), nullable=True),
            sa.Column("change_percent", ExactDecimal(), nullable=True),
            sa.Column("vwap", ExactDecimal(), nullable=True),
            sa.Column("fetched_at", UTCDateTime(), nullable=False),
            comment="End-of-day OHLCV per ticker and NYSE session (the daily_prices asset).",
        )

    if "intraday_bars" not in existing:
        op.create_table(
            "intraday_bars",
            sa.Column("ticker", sa.String(SYMBOL_LENGTH), primary_key=True),
            sa.Column("bar_start", UTCDateTime(), primary_key=True, comment="Bar start, UTC."),
            sa.Column("open", ExactDecimal(), nullable=False),
            sa.Column("high", ExactDecimal(), nullable=False),
            sa.Column("low", ExactDecimal(), nullable=False),
            sa.Column("close", ExactDecimal(), nullable=False),
            sa.Column("volume", sa.BigInteger(), nullable=False),
            sa.Column("fetched_at", UTCDateTime(), nullable=False),
            comment="5-minute OHLCV bars per ticker (the intraday_bars asset).",
        )

    if "api_calls" not in existing:
        op.create_table(
            "api_calls",
            # BIGSERIAL on PostgreSQL; SQLite autoincrements only an INTEGER primary key.
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
            sa.Column("account", sa.String(64), nullable=False),
            sa.Column("sent_at", sa.Float(), nullable=False, comment="Epoch seconds."),
            comment="Calls in the current rate-limit window per API account, "
            "shared by all processes.",
        )
        op.create_index("ix_api_calls_account_sent_at", "api_calls", ["account", "sent_at"])


def downgrade() -> None:
    op.drop_index("ix_api_calls_account_sent_at", table_name="api_calls")
    for table in (
        "api_calls",
        "intraday_bars",
        "daily_prices",
        "quote_snapshots",
        "stocks",
        "tickers",
    ):
        op.drop_table(table)
