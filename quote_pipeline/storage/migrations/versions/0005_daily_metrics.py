"""Research analytics: daily_metrics and daily_metrics_state.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Only adds tables: no stored row is touched. Written out in full, never taken from schema.py
(which moves on with later revisions).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from quote_pipeline.storage.types import UTCDateTime

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYMBOL_LENGTH = 15  # models.MAX_SYMBOL_LENGTH when this revision was written
TICKER = "Exchange symbol, upper case."
FLOAT_COLUMNS = {
    "return_1d": "adj_close / previous stored session's adj_close - 1.",
    "log_return_1d": "ln(adj_close / previous stored session's adj_close).",
    "sma_20": "Mean adj_close of the last 20 sessions, including the day.",
    "sma_50": "Mean adj_close of the last 50 sessions, including the day.",
    "sma_200": "Mean adj_close of the last 200 sessions, including the day.",
    "ema_12": "pandas ewm(span=12, adjust=False) of adj_close, from the first stored session.",
    "ema_26": "pandas ewm(span=26, adjust=False) of adj_close, from the first stored session.",
    "macd": "ema_12 - ema_26.",
    "macd_signal": "pandas ewm(span=9, adjust=False) of macd.",
    "volatility_20": "Sample standard deviation (ddof=1) of the last 20 log returns x sqrt(252).",
    "rsi_14": "Wilder's RSI, 0-100 (gains and losses smoothed with ewm(alpha=1/14)).",
    "drawdown": "adj_close / running max adj_close of the stored history - 1 (<= 0).",
    "high_52w": "Highest adj_high of the last 252 sessions (fewer while fewer are stored).",
    "low_52w": "Lowest adj_low of the last 252 sessions (fewer while fewer are stored).",
    "rsi_avg_gain": "Wilder-smoothed average gain (the RSI's state).",
    "rsi_avg_loss": "Wilder-smoothed average loss (the RSI's state).",
    "peak_close": "Running max adj_close up to the day (the drawdown's reference).",
}


def upgrade() -> None:
    op.create_table(
        "daily_metrics",
        sa.Column("ticker", sa.String(SYMBOL_LENGTH), primary_key=True, comment=TICKER),
        sa.Column("date", sa.Date(), primary_key=True, comment="NYSE session (New York date)."),
        *(
            sa.Column(name, sa.Double(), nullable=True, comment=comment)
            for name, comment in FLOAT_COLUMNS.items()
        ),
        sa.Column(
            "adjusted_fetched_at",
            UTCDateTime(),
            nullable=False,
            comment="raw_fetched_at of the daily_prices_adjusted row it was computed from.",
        ),
        comment="Daily statistics per ticker and session from daily_prices_adjusted: returns, "
        "moving averages, MACD, volatility, RSI, drawdown, 52-week range. Floats (statistics, "
        "not prices); NULL until a window has enough sessions.",
    )
    op.create_table(
        "daily_metrics_state",
        sa.Column("ticker", sa.String(SYMBOL_LENGTH), primary_key=True, comment=TICKER),
        sa.Column(
            "adjustment_computed_at",
            UTCDateTime(),
            nullable=False,
            comment="price_adjustment_state.computed_at of the adjusted history the metrics "
            "were computed from: when it moves (a re-based history), the ticker is recomputed "
            "in full.",
        ),
        sa.Column(
            "metrics_version",
            sa.Integer(),
            nullable=False,
            comment="analytics.METRICS_VERSION they were computed with: a new version "
            "recomputes the ticker in full.",
        ),
        sa.Column(
            "computed_at", UTCDateTime(), nullable=False, comment="Last computation, full or not."
        ),
        comment="Which adjusted history, and which metric definitions, each ticker's "
        "daily_metrics reflect.",
    )


def downgrade() -> None:
    # Derived tables only: a later upgrade and materialization recompute every row.
    op.drop_table("daily_metrics_state")
    op.drop_table("daily_metrics")
