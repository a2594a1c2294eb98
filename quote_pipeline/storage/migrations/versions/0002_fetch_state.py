"""Fetch state: symbols to ask again (symbol_retries), an exhausted quota (api_quota_state),
and column comments that the UI's column schemas are read from.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

Only adds: no stored row is touched. Comments exist on PostgreSQL only (SQLite keeps none),
so they are set there, without rebuilding any SQLite table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from quote_pipeline.storage.types import ExactDecimal, UTCDateTime

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYMBOL_LENGTH = 15
TICKER = "Exchange symbol, upper case."

# (table, column, type, nullable, comment) as schema.py had them when this was written.
COLUMN_COMMENTS: list[tuple[str, str, sa.types.TypeEngine, bool, str]] = [
    ("daily_prices", "ticker", sa.String(SYMBOL_LENGTH), False, TICKER),
    ("daily_prices", "open", ExactDecimal(), False, "Exact decimal, as the API sent it."),
    ("daily_prices", "volume", sa.BigInteger(), False, "Shares (64-bit)."),
    ("daily_prices", "change", ExactDecimal(), True, "Where the API gives it."),
    ("daily_prices", "change_percent", ExactDecimal(), True, "Where the API gives it."),
    ("daily_prices", "vwap", ExactDecimal(), True, "Where the API gives it."),
    ("daily_prices", "fetched_at", UTCDateTime(), False, "When the API answered."),
    ("intraday_bars", "ticker", sa.String(SYMBOL_LENGTH), False, TICKER),
    (
        "intraday_bars",
        "fetched_at",
        UTCDateTime(),
        False,
        "Last fetch (the bar still forming then is rewritten by the next refresh).",
    ),
    ("quote_snapshots", "ticker", sa.String(SYMBOL_LENGTH), False, TICKER),
    ("quote_snapshots", "price", ExactDecimal(), False, "Exact decimal."),
    ("quote_snapshots", "volume", sa.BigInteger(), False, "Day volume (64-bit)."),
    ("quote_snapshots", "quoted_at", UTCDateTime(), False, "Quote time (UTC)."),
    ("quote_snapshots", "fetched_at", UTCDateTime(), False, "When the API answered."),
    ("stocks", "ticker", sa.String(SYMBOL_LENGTH), False, TICKER),
    ("stocks", "price", ExactDecimal(), False, "Last price, exact decimal."),
    ("stocks", "volume", sa.BigInteger(), False, "Day volume (64-bit)."),
    ("stocks", "change", ExactDecimal(), True, "Change since previous close."),
    ("stocks", "quoted_at", UTCDateTime(), False, "Quote time (UTC)."),
    ("stocks", "updated_at", UTCDateTime(), False, "When this row was written."),
    ("tickers", "ticker", sa.String(SYMBOL_LENGTH), False, TICKER),
    ("tickers", "added_at", UTCDateTime(), False, "When it was added (UTC)."),
]


def upgrade() -> None:
    op.create_table(
        "symbol_retries",
        sa.Column("dataset", sa.String(32), primary_key=True, comment="quotes, daily_prices, …"),
        sa.Column("ticker", sa.String(SYMBOL_LENGTH), primary_key=True),
        sa.Column("failure_kind", sa.String(32), nullable=False, comment="Last failure's kind."),
        sa.Column("last_error", sa.String(500), nullable=False, comment="Last failure's message."),
        sa.Column("attempts", sa.Integer(), nullable=False, comment="Requests that failed."),
        sa.Column("runs", sa.Integer(), nullable=False, comment="Runs in which it failed."),
        sa.Column("first_failed_at", UTCDateTime(), nullable=False),
        sa.Column("last_failed_at", UTCDateTime(), nullable=False),
        sa.Column(
            "next_attempt_at",
            UTCDateTime(),
            nullable=True,
            comment="When it is asked again alone; NULL once given up.",
        ),
        sa.Column("status", sa.String(16), nullable=False, comment="pending or given_up."),
        comment="Symbols still failing transiently after a run's retry budget: asked again "
        "alone, with back-off, until they succeed or the give-up time passes.",
    )
    op.create_table(
        "api_quota_state",
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("exhausted_at", UTCDateTime(), nullable=False),
        sa.Column("hold_until", UTCDateTime(), nullable=False, comment="No request before this."),
        sa.Column("reason", sa.String(500), nullable=False),
        comment="An API account whose quota ran out: runs make no request until hold_until; "
        "the first successful call after it clears the row.",
    )
    if op.get_bind().dialect.name == "postgresql":
        for table, column, type_, nullable, comment in COLUMN_COMMENTS:
            op.alter_column(
                table, column, comment=comment, existing_type=type_, existing_nullable=nullable
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column, type_, nullable, _comment in COLUMN_COMMENTS:
            op.alter_column(
                table, column, comment=None, existing_type=type_, existing_nullable=nullable
            )
    op.drop_table("api_quota_state")
    op.drop_table("symbol_retries")
