"""The pipeline's SQLAlchemy database URL as a Django ``DATABASES`` entry.

The site reads the tables the pipeline writes, so it takes the same URL the pipeline does
(``QUOTE_PIPELINE_DATABASE_URL``, else the pipeline's SQLite default) and turns it into
Django's settings: ``postgresql://user:pw@host:port/db`` (any ``+driver``; Django uses
psycopg2 here) and ``sqlite:///path``. The connection is read-only by default: the site never
writes a table it reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

POSTGRESQL_ENGINE = "django.db.backends.postgresql"
SQLITE_ENGINE = "django.db.backends.sqlite3"


def django_database(url: str, *, read_only: bool = True) -> dict[str, Any]:
    """Django's ``DATABASES["default"]`` for the SQLAlchemy ``url``.

    ``read_only`` makes every transaction read-only (PostgreSQL's
    ``default_transaction_read_only``, SQLite's ``query_only``). The error never quotes the
    URL, which may hold a password.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ImproperlyConfigured("QUOTE_PIPELINE_DATABASE_URL is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        options: dict[str, Any] = {
            key: value if isinstance(value, str) else value[-1]
            for key, value in parsed.query.items()
        }
        if read_only:
            flag = "-c default_transaction_read_only=on"
            options["options"] = f"{options['options']} {flag}" if "options" in options else flag
        return {
            "ENGINE": POSTGRESQL_ENGINE,
            "NAME": parsed.database or "",
            "USER": parsed.username or "",
            "PASSWORD": parsed.password or "",
            "HOST": parsed.host or "",
            "PORT": str(parsed.port or ""),
            "OPTIONS": options,
        }
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ImproperlyConfigured("the site needs the pipeline's SQLite file, not :memory:")
        sqlite_options: dict[str, Any] = {"timeout": 30}
        if read_only:
            sqlite_options["init_command"] = "PRAGMA query_only = ON;"
        return {
            "ENGINE": SQLITE_ENGINE,
            "NAME": str(Path(parsed.database).resolve()),
            "OPTIONS": sqlite_options,
        }
    raise ImproperlyConfigured(
        f"QUOTE_PIPELINE_DATABASE_URL: the {backend!r} backend is not supported "
        "(postgresql:// or sqlite:///)"
    )
