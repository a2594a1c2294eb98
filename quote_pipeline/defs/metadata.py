"""What every domain's definitions share: owners, tags, column schemas, and the tables and
one-line summaries the UI shows."""

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import sqlalchemy as sa

from quote_pipeline.models import SymbolFailure
from quote_pipeline.storage.fetch_state import PendingSymbol

OWNERS = ["team:market-data"]


@contextmanager
def beta_parameters_accepted() -> Iterator[None]:
    """Build definitions that use parameters Dagster 1.13 calls beta (owners of schedules,
    backfill policies) without printing a warning at every load. Scoped to the building, so
    nothing else's warnings are hidden."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        yield


def table_metadata(table: sa.Table) -> dict[str, Any]:
    """`dagster/table_name` and `dagster/column_schema` read from the storage table itself
    (types as the database names them, descriptions from the column comments), so the UI
    never disagrees with the schema."""
    columns = [
        dg.TableColumn(
            column.name,
            _type_name(column),
            description=column.comment,
            constraints=dg.TableColumnConstraints(nullable=column.nullable or False),
        )
        for column in table.columns
    ]
    return {
        "dagster/table_name": table.name,
        "dagster/column_schema": dg.TableSchema(columns=columns),
    }


def _type_name(column: sa.Column[Any]) -> str:
    # The PostgreSQL names: what a reader of the production tables sees.
    from sqlalchemy.dialects import postgresql

    return column.type.compile(dialect=postgresql.dialect()).lower()


def utc_minute(moment: datetime) -> str:
    """``2026-11-30 14:01 UTC``: a time as a table cell, without seconds that wrap."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def table_value(
    rows: Sequence[Mapping[str, Any]], *, descriptions: Mapping[str, str] | None = None
) -> dg.TableMetadataValue:
    """``rows`` as a table the UI draws inline (markdown hides behind "Show Markdown").

    Cells are kept as given when they are numbers or booleans, else shown as text (an exact
    decimal stays exact as text)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    descriptions = descriptions or {}

    def cell(value: Any) -> Any:
        return value if isinstance(value, bool | int | float) or value is None else str(value)

    def column_type(name: str) -> str:
        values = [row[name] for row in rows if row.get(name) is not None]
        if values and all(isinstance(v, bool) for v in values):
            return "bool"
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "int"
        if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return "float"
        return "string"

    return dg.MetadataValue.table(
        records=[dg.TableRecord({c: cell(row.get(c)) for c in columns}) for row in rows],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn(c, column_type(c), description=descriptions.get(c)) for c in columns
            ]
        ),
    )


def failures_value(failures: Sequence[SymbolFailure], *, limit: int = 50) -> dg.TableMetadataValue:
    """The symbols that failed and why, as a table (the first ``limit``)."""
    return table_value(
        [
            {"ticker": f.symbol, "kind": f.kind.value, "message": f.message[:160]}
            for f in failures[:limit]
        ]
    )


def names_summary(names: Sequence[str], *, limit: int = 8) -> str:
    """``A, B, C, … and 3 more``: a list in one line of bounded length."""
    more = f", … and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def failures_summary(failures: Sequence[SymbolFailure], *, limit: int = 8) -> str:
    """``ZZZQ no_quote, XYZ server_error, … and 3 more``: who failed, in one line."""
    return names_summary([f"{f.symbol} {f.kind.value}" for f in failures], limit=limit)


def counts_text(counts: Mapping[str, int]) -> str:
    """``no_quote: 2, server_error: 1``: counts by kind as text, not a Python dict."""
    return ", ".join(f"{key}: {value}" for key, value in counts.items()) or "none"


def pending_value(pending: Sequence[PendingSymbol], *, limit: int = 50) -> dg.TableMetadataValue:
    """Tickers left to a retry sensor (the first ``limit``): when each is asked next, or
    that it was given up."""
    return table_value([p.as_row() for p in pending[:limit]])
