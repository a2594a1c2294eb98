"""Row source: which market-data provider served each row of stocks, quote_snapshots and
daily_prices.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

A second provider (Massive, formerly Polygon.io) joins FMP. Each of the three tables gets a
``source`` column, NOT NULL, with the server default ``'fmp'``: every row already stored is
FMP's (the only provider until now) and is labelled so in the same statement, without a
rewrite of the table on PostgreSQL (a constant default is stored once in the catalog). The
default stays on both backends, so a writer that predates the column (and names no source)
keeps working and labels its rows with the one provider it knew.

The downgrade drops the three columns (on SQLite by copying each table, batch mode): every
row and every other value stays, only the provider label is lost.

Written out in full, never taken from schema.py (which moves on with later revisions).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("stocks", "quote_snapshots", "daily_prices")
LEGACY_SOURCE = "fmp"
SOURCE_COMMENT = (
    "The provider that served the row: fmp or massive (Massive, formerly Polygon.io). "
    "Rows written before revision 0006 are fmp, the only provider then."
)


def upgrade() -> None:
    for table in TABLES:
        # SQLite adds a NOT NULL column with a constant default in place (no batch needed).
        op.add_column(
            table,
            sa.Column(
                "source",
                sa.String(16),
                nullable=False,
                server_default=LEGACY_SOURCE,
                comment=SOURCE_COMMENT,
            ),
        )


def downgrade() -> None:
    # Rows served by another provider than FMP cannot be told apart once the column is gone:
    # downgrading loses that label (never a row or another value).
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("source")
