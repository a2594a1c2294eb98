"""The site's unmanaged models against the tables the pipeline's migrations build, on SQLite
and PostgreSQL: a renamed, retyped or re-nulled column fails here, not in a page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from quote_pipeline.storage import add_tickers, create_db_engine
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


def _live_type_problem(field: Any, live: dict[str, Any], dialect: str) -> str | None:
    """What is wrong with the live column for the Django ``field``, if anything: the type the
    database actually has (after migrations), not what schema.py declares."""
    kind, live_type = type(field).__name__, live["type"]
    if kind == "ExactDecimalField":
        # Exact: NUMERIC on PostgreSQL (never a float type), the decimal's text on SQLite.
        if dialect == "postgresql":
            exact = isinstance(live_type, sa.Numeric) and not isinstance(live_type, sa.Float)
        else:
            exact = isinstance(live_type, sa.String)
        return None if exact else f"not an exact decimal column: {live_type!r}"
    if kind == "DateTimeField":
        if not isinstance(live_type, sa.DateTime):
            return f"not a timestamp: {live_type!r}"
        # PostgreSQL keeps the offset (TIMESTAMPTZ); SQLite stores naive UTC text.
        if dialect == "postgresql" and live_type.timezone is not True:
            return f"a timestamp without time zone: {live_type!r}"
        return None
    expected: dict[str, type[Any]] = {
        "DateField": sa.Date,
        "BigIntegerField": sa.BigInteger,
        "IntegerField": sa.Integer,
        "FloatField": sa.Float,
        "BooleanField": sa.Boolean,
        "TextField": sa.Text,
        "CharField": sa.String,
    }
    if not isinstance(live_type, expected[kind]):
        return f"{kind} over {live_type!r}"
    if kind == "CharField" and getattr(live_type, "length", None) != field.max_length:
        return f"max_length {field.max_length} over {live_type!r}"
    if kind == "IntegerField" and isinstance(live_type, sa.BigInteger):
        return f"IntegerField over {live_type!r}: values past 2**31 would not fit"
    return None


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
                    # And against the live column's type, not only schema.py's.
                    problem = _live_type_problem(target, live[name], engine.dialect.name)
                    assert problem is None, f"{where}: {problem}"
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
        "postgresql://reader:s3cret@db.example:6543/market?sslmode=require"
        "&options=-c%20search_path%3Dquotes&connect_timeout=5",
        "postgresql+psycopg2://u@localhost/q",
    ],
)
def test_postgresql_urls_become_django_settings(url: str, tmp_path: Any) -> None:
    with django_site(f"sqlite:///{tmp_path / 'x.db'}"):
        from quote_site.database import django_database

        settings = django_database(url)
    assert settings["ENGINE"] == "django.db.backends.postgresql"
    if "example" in url:
        assert (settings["NAME"], settings["USER"], settings["PASSWORD"]) == (
            "market",
            "reader",
            "s3cret",
        )
        assert (settings["HOST"], settings["PORT"]) == ("db.example", "6543")
        # libpq keywords pass through; the read-only flag is added to the given options.
        assert settings["OPTIONS"] == {
            "sslmode": "require",
            "connect_timeout": "5",
            "options": "-c search_path=quotes -c default_transaction_read_only=on",
        }
    else:
        assert (settings["NAME"], settings["HOST"], settings["PORT"]) == ("q", "localhost", "")
        assert settings["OPTIONS"] == {"options": "-c default_transaction_read_only=on"}


def test_a_sqlite_path_with_odd_characters_opens_read_only(tmp_path: Any) -> None:
    """The SQLite file is opened as a ``file:`` URI (``mode=ro``), its path percent-encoded:
    a space, ``#`` or ``%`` in it is a file name, not URI syntax."""
    odd = tmp_path / "a b#c%41d" / "quotes.db"
    url = f"sqlite:///{odd}"
    engine = create_db_engine(url)
    add_tickers(engine, ["AAPL"], now=datetime(2026, 11, 27, tzinfo=UTC))
    engine.dispose()
    with django_site(url):
        from django.conf import settings
        from market.engine import site_engine
        from market.models import TrackedTicker

        name = settings.DATABASES["default"]["NAME"]
        assert name == f"file:{quote(str(odd))}?mode=ro" and "%2541" in name
        assert list(TrackedTicker.objects.values_list("ticker", flat=True)) == ["AAPL"]
        with site_engine().connect() as conn:
            assert conn.execute(sa.text("SELECT ticker FROM tickers")).scalars().all() == ["AAPL"]
    assert sorted(p.name for p in odd.parent.iterdir()) == ["quotes.db"]
