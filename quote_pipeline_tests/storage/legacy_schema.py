"""A frozen copy of schema.py's tables as commit fabbbcd built them with ``create_all``,
before migrations: the databases deployed then, which the migrations must adopt intact.

Never edit this to follow schema.py: it stands for databases that already exist.
"""

from __future__ import annotations

import sqlalchemy as sa

from quote_pipeline.storage.types import ExactDecimal, UTCDateTime

MAX_SYMBOL_LENGTH = 15

metadata = sa.MetaData()
tickers = sa.Table(
    "tickers",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True),
    sa.Column("added_at", UTCDateTime(), nullable=False),
    comment="The tracked universe: every symbol the quote refresh asks the API for.",
)

stocks = sa.Table(
    "stocks",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True),
    sa.Column("price", ExactDecimal(), nullable=False),
    sa.Column("volume", sa.BigInteger(), nullable=False),
    sa.Column("change", ExactDecimal(), nullable=True),
    sa.Column("quoted_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    comment="The latest quote of each ticker.",
)

quote_snapshots = sa.Table(
    "quote_snapshots",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), nullable=False),
    sa.Column("price", ExactDecimal(), nullable=False),
    sa.Column("volume", sa.BigInteger(), nullable=False),
    sa.Column("quoted_at", UTCDateTime(), nullable=False),
    sa.Column("fetched_at", UTCDateTime(), nullable=False),
    # One observation per ticker and quote time: re-running a write adds nothing.
    sa.UniqueConstraint("ticker", "quoted_at", name="uq_quote_snapshots_ticker_quoted_at"),
    comment="Every quote ever written, append-only.",
)

daily_prices = sa.Table(
    "daily_prices",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True),
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

intraday_bars = sa.Table(
    "intraday_bars",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True),
    sa.Column("bar_start", UTCDateTime(), primary_key=True, comment="Bar start, UTC."),
    sa.Column("open", ExactDecimal(), nullable=False),
    sa.Column("high", ExactDecimal(), nullable=False),
    sa.Column("low", ExactDecimal(), nullable=False),
    sa.Column("close", ExactDecimal(), nullable=False),
    sa.Column("volume", sa.BigInteger(), nullable=False),
    # The bar still forming when fetched is rewritten by the next refresh; this says when.
    sa.Column("fetched_at", UTCDateTime(), nullable=False),
    comment="5-minute OHLCV bars per ticker (the intraday_bars asset).",
)

api_calls = sa.Table(
    "api_calls",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    # A hash of the API base URL and key: the account, never the key itself.
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("sent_at", sa.Float(), nullable=False, comment="Epoch seconds."),
    sa.Index("ix_api_calls_account_sent_at", "account", "sent_at"),
    comment="Calls in the current rate-limit window per API account, shared by all processes.",
)
