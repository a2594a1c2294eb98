"""The site's unmanaged models against the tables the pipeline's migrations build, on SQLite
and PostgreSQL: a renamed, retyped or re-nulled column fails here, not in a page."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from quote_pipeline.storage import create_db_engine
from quote_pipeline.storage import schema as tables
from quote_pipeline.storage.types import ExactDecimal, UTCDateTime
from quote_pipeline_tests.django_site.support import django_site


def _django_type(column: sa.Column[Any]) -> tuple[str, int | None]:
    """The Django field (class name, max_length) a column of the pipeline's schema needs."""
    kind = column.type
    if isinstance(kind, ExactDecimal):
        return "ExactDecimalField", None
    if isinstance(kind, UTCDateTime):
        return "DateTimeField", None
    if isinstance(kind, sa.Date):
        return "DateField", None
    if isinstance(kind, sa.BigInteger):
        return "BigIntegerField", None
    if isinstance(kind, sa.Integer):
        return "IntegerField", None
    if isinstance(kind, sa.Float):  # Double is a Float
        return "FloatField", None
    if isinstance(kind, sa.Boolean):
        return "BooleanField", None
    if isinstance(kind, sa.Text):
        return "TextField", None
    if isinstance(kind, sa.String):
        return "CharField", kind.length
    raise AssertionError(f"{column.table.name}.{column.name}: no Django mapping for {kind!r}")


def _models() -> list[Any]:
    from django.apps import apps

    return list(apps.get_app_config("market").get_models())


def test_every_model_matches_its_table(database_url: str) -> None:
    engine = create_db_engine(database_url)  # migrated to the head, as the pipeline runs
    inspector = sa.inspect(engine)
    try:
        with django_site(database_url):
            models = _models()
            assert {m._meta.db_table for m in models} == {
                "tickers",
                "stocks",
                "quote_snapshots",
                "daily_prices_adjusted",
                "daily_metrics",
                "company_profiles",
                "news_articles",
                "news_article_tickers",
            }
            for model in models:
                meta = model._meta
                assert meta.managed is False, meta.label
                table = tables.metadata.tables[meta.db_table]
                fields = {f.column: f for f in meta.concrete_fields if f.column}
                live = {c["name"]: c for c in inspector.get_columns(meta.db_table)}
                assert set(fields) == set(live) == set(table.columns.keys()), meta.label
                for name, model_field in fields.items():
                    where = f"{meta.db_table}.{name}"
                    assert model_field.null == live[name]["nullable"], where
                    target = model_field.target_field if model_field.is_relation else model_field
                    kind, length = _django_type(table.columns[name])
                    assert type(target).__name__ == kind, where
                    if length is not None:
                        assert target.max_length == length, where
                # The key Django uses is the table's key (or, for quote_snapshots, its
                # unique constraint): rows are told apart the way the pipeline does.
                key = {f.column for f in meta.pk_fields}
                table_key = set(inspector.get_pk_constraint(meta.db_table)["constrained_columns"])
                if not table_key:
                    uniques = inspector.get_unique_constraints(meta.db_table)
                    table_key = {c for u in uniques for c in u["column_names"]}
                assert key == table_key, meta.label
                # And Django's SELECT of every column runs on this backend.
                assert list(model.objects.all()[:1]) == []
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://reader:s3cret@db.example:6543/market?sslmode=require",
        "postgresql+psycopg2://u@localhost/q",
    ],
)
def test_postgresql_urls_become_django_settings(url: str, tmp_path: Any) -> None:
    with django_site(f"sqlite:///{tmp_path / 'x.db'}"):
        from quote_site.database import django_database

        settings = django_database(url)
    assert settings["ENGINE"] == "django.db.backends.postgresql"
    assert "default_transaction_read_only=on" in settings["OPTIONS"]["options"]
    if "example" in url:
        assert (settings["NAME"], settings["USER"], settings["PASSWORD"]) == (
            "market",
            "reader",
            "s3cret",
        )
        assert (settings["HOST"], settings["PORT"]) == ("db.example", "6543")
        assert settings["OPTIONS"]["sslmode"] == "require"
    else:
        assert (settings["NAME"], settings["HOST"], settings["PORT"]) == ("q", "localhost", "")
