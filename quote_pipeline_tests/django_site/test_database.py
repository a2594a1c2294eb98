"""When the site cannot use the database: a SQLite file that is not there (never created), a
table the chart cannot read, a database at another schema revision — each a one-line 503
(JSON under /api/), never a traceback."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from quote_pipeline.storage import add_tickers, create_db_engine
from quote_pipeline.storage.schema_migrations import head_revision, upgrade
from quote_pipeline_tests.conftest import drop_all_tables
from quote_pipeline_tests.django_site.support import django_site

NOW = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
PATHS = ("/", "/ticker/AAPL/", "/ticker/AAPL/chart.png", "/api/ticker/AAPL/")


def _message(response: Any) -> str:
    """The one line a 503 says: the JSON's message, or the page's paragraph."""
    if response["Content-Type"].startswith("application/json"):
        return response.json()["message"]
    match = re.search(r'<div class="card"><p>(.*?)</p>', response.content.decode(), re.S)
    assert match, response.content.decode()
    return html.unescape(match.group(1))


def test_a_missing_sqlite_file_is_a_503_and_is_never_created(tmp_path: Path) -> None:
    for missing in (tmp_path / "absent" / "quotes.db", tmp_path / "quotes.db"):
        with django_site(f"sqlite:///{missing}") as client:
            for path in PATHS:
                response = client.get(path)
                assert response.status_code == 503, path
                message = _message(response)
                assert message == (
                    "The pipeline's tables could not be read (unable to open database "
                    "file). Has the pipeline run against this database "
                    "(QUOTE_PIPELINE_DATABASE_URL)?"
                ), path
            assert client.get("/api/ticker/AAPL/").json()["error"] == "database_unavailable"
            # Django's own connection does not create it either.
            from django.db import DatabaseError
            from market.models import Stock

            with pytest.raises(DatabaseError, match="unable to open database file"):
                Stock.objects.first()
        assert not missing.exists()
        assert not (tmp_path / "absent").exists()


def test_the_chart_is_a_503_when_sqlalchemy_cannot_read_the_tables(sqlite_url: str) -> None:
    engine = create_db_engine(sqlite_url)
    add_tickers(engine, ["AAPL"], now=NOW)
    with engine.begin() as conn:  # the chart joins daily_metrics
        conn.exec_driver_sql("DROP TABLE daily_metrics")
    engine.dispose()
    with django_site(sqlite_url) as client:
        chart = client.get("/ticker/AAPL/chart.png")
        assert chart.status_code == 503
        assert _message(chart) == (
            "The pipeline's tables could not be read (no such table: daily_metrics). "
            "Has the pipeline run against this database (QUOTE_PIPELINE_DATABASE_URL)?"
        )
        page = client.get("/ticker/AAPL/")  # Django's error, the same line
        assert page.status_code == 503 and "no such table: daily_metrics" in _message(page)


def test_a_database_at_another_schema_revision_is_refused_until_upgraded(
    database_url: str,
) -> None:
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    engine = create_db_engine(database_url, upgrade=False)
    drop_all_tables(engine)
    head = head_revision()
    try:
        with django_site(database_url) as client:
            # No schema at all.
            empty = client.get("/")
            assert empty.status_code == 503
            assert _message(empty) == (
                "The database has no schema revision (the pipeline has not created its "
                f"tables there), this site expects {head}: run `quote-pipeline db upgrade`."
            )
            # An older revision: every page and JSON answer says so, in one line.
            upgrade(engine, "0003")
            expected = (
                f"The database is at revision 0003, this site expects {head}: run "
                "`quote-pipeline db upgrade`."
            )
            for path in PATHS:
                response = client.get(path)
                assert response.status_code == 503, path
                assert _message(response) == expected, path
            assert client.get("/api/ticker/AAPL/").json()["error"] == "schema_revision"
            with pytest.raises(SystemCheckError, match=r"market\.E001.*revision 0003"):
                call_command("check", databases=["default"])

            # Upgraded: the pages answer again (only "at the head" is remembered).
            upgrade(engine)
            add_tickers(engine, ["AAPL"], now=NOW)
            assert client.get("/").status_code == 200
            assert client.get("/ticker/AAPL/").status_code == 200
            call_command("check", databases=["default"])
            # A revision newer than the code: upgrade quote_pipeline, not the database.
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
        with django_site(database_url) as client:
            newer = client.get("/")
            assert newer.status_code == 503
            assert _message(newer).startswith(
                f"The database is at revision 9999, newer than this site's quote_pipeline "
                f"knows (it expects {head})"
            )
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :h"), {"h": head})
        engine.dispose()
