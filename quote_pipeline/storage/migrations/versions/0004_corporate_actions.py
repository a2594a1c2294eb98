"""Corporate actions: company_profiles, stock_splits, dividends, daily_prices_adjusted,
price_adjustment_state; and the price basis of every daily_prices row.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Until this revision daily bars came from /stable/historical-price-eod/full, which FMP
split-adjusts as of the day it answers. From now on they come unadjusted (as traded). Every
row already stored keeps its values and is labelled ``price_basis = 'split_adjusted'`` (as
of its ``fetched_at``): ``daily_prices_adjusted`` re-bases it from the splits, and the next
fetch of its range replaces it with the as-traded row. New rows always name their basis (no
default is left on the column, so a writer cannot mislabel a row by forgetting it).

Written out in full, never taken from schema.py (which moves on with later revisions).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from quote_pipeline.storage.types import ExactDecimal, UTCDateTime

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYMBOL_LENGTH = 15  # models.MAX_SYMBOL_LENGTH when this revision was written
TICKER = "Exchange symbol, upper case."
LEGACY_BASIS = "split_adjusted"
PRICE_BASIS_COMMENT = (
    "as_traded: prices and volume as traded that day (never change later); "
    "split_adjusted: fetched before revision 0004 from /full, split-adjusted as of "
    "fetched_at (re-based in daily_prices_adjusted, replaced by the next fetch of its range)."
)


def upgrade() -> None:
    # Existing rows take the legacy basis through the server default, in the same statement.
    # On PostgreSQL the default is then dropped (a plain ALTER), so a writer that forgot the
    # column would fail instead of mislabelling a row. SQLite keeps it: dropping it there
    # means copying the whole table, and the one writer (storage/history.py) always names
    # the basis.
    op.add_column(
        "daily_prices",
        sa.Column(
            "price_basis",
            sa.String(16),
            nullable=False,
            server_default=LEGACY_BASIS,
            comment=PRICE_BASIS_COMMENT,
        ),
    )
    is_postgresql = op.get_bind().dialect.name == "postgresql"
    if is_postgresql:
        op.alter_column("daily_prices", "price_basis", server_default=None)
    if is_postgresql:  # SQLite keeps no comments
        op.create_table_comment(
            "daily_prices",
            "End-of-day OHLCV per ticker and NYSE session, as traded (the daily_prices asset).",
            existing_comment="End-of-day OHLCV per ticker and NYSE session (the daily_prices "
            "asset).",
        )

    op.create_table(
        "company_profiles",
        sa.Column("ticker", sa.String(SYMBOL_LENGTH), primary_key=True, comment=TICKER),
        sa.Column("company_name", sa.Text(), nullable=True),
        sa.Column(
            "exchange", sa.String(32), nullable=True, comment="Exchange short name (NASDAQ)."
        ),
        sa.Column("exchange_full_name", sa.Text(), nullable=True),
        sa.Column("currency", sa.String(8), nullable=True, comment="Trading currency (ISO 4217)."),
        sa.Column("country", sa.String(8), nullable=True),
        sa.Column("sector", sa.Text(), nullable=True),
        sa.Column("industry", sa.Text(), nullable=True),
        sa.Column("market_cap", ExactDecimal(), nullable=True, comment="Exact, in `currency`."),
        sa.Column("is_etf", sa.Boolean(), nullable=True),
        sa.Column("is_fund", sa.Boolean(), nullable=True),
        sa.Column("is_adr", sa.Boolean(), nullable=True),
        sa.Column(
            "is_actively_trading", sa.Boolean(), nullable=True, comment="As the API last said it."
        ),
        sa.Column("ipo_date", sa.Date(), nullable=True),
        sa.Column("cik", sa.String(16), nullable=True, comment="SEC CIK, zero-padded text."),
        sa.Column("isin", sa.String(16), nullable=True),
        sa.Column("cusip", sa.String(16), nullable=True),
        sa.Column("website", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "status",
            sa.String(16),
            nullable=False,
            comment="active; not_trading (the API says isActivelyTrading false); gone (the API "
            "stopped answering with a profile). Rows are flagged, never deleted.",
        ),
        sa.Column(
            "missing_since",
            UTCDateTime(),
            nullable=True,
            comment="First refresh that got no profile (status gone); NULL while answered.",
        ),
        sa.Column(
            "fetched_at", UTCDateTime(), nullable=False, comment="When the API last answered."
        ),
        comment="What each tracked company is: name, exchange, sector, identifiers (the "
        "company_profiles asset).",
    )
    op.create_table(
        "stock_splits",
        sa.Column("ticker", sa.String(SYMBOL_LENGTH), primary_key=True, comment=TICKER),
        sa.Column(
            "ex_date", sa.Date(), primary_key=True, comment="First day traded on the new basis."
        ),
        sa.Column("numerator", ExactDecimal(), nullable=False, comment="New shares (4 in 4:1)."),
        sa.Column("denominator", ExactDecimal(), nullable=False, comment="Old shares (1 in 4:1)."),
        sa.Column("split_type", sa.String(32), nullable=True, comment="As the API names it."),
        sa.Column(
            "fetched_at", UTCDateTime(), nullable=False, comment="When the API last listed it."
        ),
        comment="Stock splits per ticker; a reverse split has numerator < denominator.",
    )
    op.create_table(
        "dividends",
        sa.Column("ticker", sa.String(SYMBOL_LENGTH), primary_key=True, comment=TICKER),
        sa.Column("ex_date", sa.Date(), primary_key=True, comment="Ex-dividend date."),
        sa.Column("dividend", ExactDecimal(), nullable=False, comment="Per share, as declared."),
        sa.Column(
            "adj_dividend", ExactDecimal(), nullable=True, comment="Split-adjusted by the API."
        ),
        sa.Column("record_date", sa.Date(), nullable=True),
        sa.Column("payment_date", sa.Date(), nullable=True),
        sa.Column("declaration_date", sa.Date(), nullable=True),
        sa.Column("frequency", sa.String(32), nullable=True, comment="Quarterly, Semi-Annual, …"),
        sa.Column(
            "fetched_at", UTCDateTime(), nullable=False, comment="When the API last listed it."
        ),
        comment="Cash dividends per ticker and ex-date; empty dates from the API are NULL.",
    )
    op.create_table(
        "daily_prices_adjusted",
        sa.Column("ticker", sa.String(SYMBOL_LENGTH), primary_key=True, comment=TICKER),
        sa.Column("date", sa.Date(), primary_key=True, comment="NYSE session (New York date)."),
        sa.Column("adj_open", ExactDecimal(), nullable=False, comment="Exact, 8 decimal places."),
        sa.Column("adj_high", ExactDecimal(), nullable=False),
        sa.Column("adj_low", ExactDecimal(), nullable=False),
        sa.Column("adj_close", ExactDecimal(), nullable=False),
        sa.Column("adj_volume", sa.BigInteger(), nullable=False, comment="Shares, split-adjusted."),
        sa.Column(
            "split_factor",
            ExactDecimal(),
            nullable=False,
            comment="Product of the ratios of later splits: prices are divided by it.",
        ),
        sa.Column(
            "dividend_factor",
            ExactDecimal(),
            nullable=False,
            comment="Product of (1 - dividend / previous close) of later dividends (12 places).",
        ),
        sa.Column(
            "raw_fetched_at",
            UTCDateTime(),
            nullable=False,
            comment="fetched_at of the daily_prices row it was computed from.",
        ),
        comment="Split- and dividend-adjusted OHLCV (CRSP-style backward adjustment), derived "
        "from daily_prices, stock_splits and dividends without any API call.",
    )
    op.create_table(
        "price_adjustment_state",
        sa.Column("ticker", sa.String(SYMBOL_LENGTH), primary_key=True, comment=TICKER),
        sa.Column(
            "actions_fingerprint",
            sa.String(64),
            nullable=False,
            comment="Hash of the splits and dividends the ticker's adjusted rows were computed "
            "with.",
        ),
        sa.Column("computed_at", UTCDateTime(), nullable=False, comment="Last full computation."),
        comment="Which corporate actions each ticker's adjusted history reflects: a change "
        "rewrites that ticker's whole adjusted history.",
    )


def downgrade() -> None:
    # Rows fetched as traded after the upgrade cannot be told from legacy ones once the
    # column is gone: downgrading loses that label (never the prices themselves).
    op.drop_table("price_adjustment_state")
    op.drop_table("daily_prices_adjusted")
    op.drop_table("dividends")
    op.drop_table("stock_splits")
    op.drop_table("company_profiles")
    if op.get_bind().dialect.name == "postgresql":
        op.create_table_comment(
            "daily_prices",
            "End-of-day OHLCV per ticker and NYSE session (the daily_prices asset).",
            existing_comment="End-of-day OHLCV per ticker and NYSE session, as traded (the "
            "daily_prices asset).",
        )
    with op.batch_alter_table("daily_prices") as batch:
        batch.drop_column("price_basis")
