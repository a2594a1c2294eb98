"""What every domain's definitions share: owners, tags, column schemas, markdown tables."""

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
import sqlalchemy as sa
from tabulate import tabulate

from quote_pipeline.defs.code_version import CODE_VERSION_TAG, code_version
from quote_pipeline.models import SymbolFailure

OWNERS = ["team:market-data"]


def code_version_tags() -> dict[str, str]:
    """The tag that says which code a job, run or schedule tick came from."""
    return {CODE_VERSION_TAG: code_version()}


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


def markdown_table(rows: Sequence[Mapping[str, Any]], *, empty: str = "_no rows_") -> str:
    """``rows`` as a markdown table (the UI renders it), or ``empty`` when there are none.

    tabulate directly, as pandas' ``to_markdown`` would call it: importing pandas for this
    cost ~0.3 s of every CLI run's start."""
    if not rows:
        return empty
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = [[row.get(column, "") for column in columns] for row in rows]
    return tabulate(table, headers=columns, tablefmt="pipe", disable_numparse=True)


def failures_table(
    failures: Sequence[SymbolFailure], *, limit: int = 50, empty: str = "_no failures_"
) -> str:
    """A markdown table of symbols that failed, and why; the first ``limit`` of them."""
    table = markdown_table(
        [
            {"ticker": f.symbol, "kind": f.kind.value, "message": f.message}
            for f in failures[:limit]
        ],
        empty=empty,
    )
    more = f"\n\n… and {len(failures) - limit} more" if len(failures) > limit else ""
    return table + more
