"""Searching everything a user can look at for a secret: files, and every stored text.

``columns_containing`` reads every text, bytea and JSON column of every table of a
PostgreSQL database (a Dagster instance's run, event-log and schedule storage), so an
event, a run's failure, a tick or a serialized config holding the key is found wherever
Dagster put it. Searches for a marker known to be stored prove the search looks there.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import sqlalchemy as sa

# Column types whose content a user sees (through the UI, GraphQL, or a dump of the storage).
_TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "bytea")


def columns_containing(database_url: str, needle: str) -> list[str]:
    """``table.column`` of every text/bytea/JSON column in which ``needle`` occurs."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            columns = conn.execute(
                sa.text(
                    "select table_schema, table_name, column_name, data_type "
                    "from information_schema.columns "
                    "where table_schema not in ('pg_catalog', 'information_schema') "
                    "and data_type = any(:types) order by 1, 2, 3"
                ),
                {"types": list(_TEXT_TYPES)},
            ).all()
            assert columns, "no text column found: the search would prove nothing"
            quote = conn.dialect.identifier_preparer.quote
            hits = []
            for schema, table, column, data_type in columns:
                name = f"{quote(schema)}.{quote(table)}"
                if data_type == "bytea":
                    # Read in Python: Dagster stores snapshots zlib-compressed.
                    values = conn.scalars(sa.text(f"select {quote(column)} from {name}"))
                    found = any(_bytes_contain(bytes(v), needle.encode()) for v in values if v)
                else:
                    found = conn.scalar(
                        sa.text(
                            f"select exists (select 1 from {name} "
                            f"where strpos({quote(column)}::text, :needle) > 0)"
                        ),
                        {"needle": needle},
                    )
                if found:
                    hits.append(f"{table}.{column}")
            return hits
    finally:
        engine.dispose()


def _bytes_contain(value: bytes, needle: bytes) -> bool:
    if needle in value:
        return True
    try:
        return needle in zlib.decompress(value)
    except zlib.error:
        return False


def files_containing(root: Path, needle: bytes) -> list[str]:
    """Files under ``root`` (paths relative to it) whose bytes contain ``needle``."""
    return [
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and needle in path.read_bytes()
    ]
