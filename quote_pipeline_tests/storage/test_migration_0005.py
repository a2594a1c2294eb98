"""Revision 0005 on a database with rows, on SQLite and PostgreSQL: it only adds the
analytics tables — every stored row kept value for value — and goes back to 0004 cleanly."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from quote_pipeline.storage.schema_migrations import current_revision, head_revision, upgrade
from quote_pipeline_tests.storage.test_migration_0004 import (
    downgrade,
    old_engine,  # noqa: F401 (a fixture)
    read_rows,
    table_names,
)

NEW_TABLES = {"daily_metrics", "daily_metrics_state"}


def test_the_upgrade_adds_the_metrics_tables_and_keeps_every_row(old_engine: Engine) -> None:  # noqa: F811
    upgrade(old_engine, "0004")
    before, tables_before = read_rows(old_engine), table_names(old_engine)

    upgrade(old_engine, "0005")

    assert read_rows(old_engine) == before
    assert table_names(old_engine) == tables_before | NEW_TABLES
    upgrade(old_engine)
    assert current_revision(old_engine) == head_revision()

    downgrade(old_engine, "0004")
    assert current_revision(old_engine) == "0004"
    assert table_names(old_engine) == tables_before
    assert read_rows(old_engine) == before
