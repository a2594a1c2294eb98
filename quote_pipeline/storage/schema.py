"""The project's tables, in SQLAlchemy Core."""

from __future__ import annotations

import sqlalchemy as sa

from quote_pipeline.models import MAX_SYMBOL_LENGTH
from quote_pipeline.storage.types import ExactDecimal, UTCDateTime

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
