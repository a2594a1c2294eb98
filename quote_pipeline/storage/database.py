"""Where the data lives: the database URL, and the engine with its schema in place."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError

from quote_pipeline.storage.schema_migrations import ensure_schema

DATABASE_URL_ENV = "QUOTE_PIPELINE_DATABASE_URL"
DATA_DIR_ENV = "QUOTE_PIPELINE_DATA_DIR"


class DatabaseUrlError(ValueError):
    """The database URL cannot be used: malformed, or a backend whose driver is missing. The
    message never quotes the URL, which may hold a password."""


def data_dir() -> Path:
    """The local data directory: ``$QUOTE_PIPELINE_DATA_DIR``, else ``./data``."""
    return Path(os.environ.get(DATA_DIR_ENV) or Path.cwd() / "data").resolve()


def default_database_url() -> str:
    """A SQLite file in the local data directory: runs with nothing else installed."""
    return f"sqlite:///{data_dir() / 'quote_pipeline.db'}"


def resolve_database_url(url: str | None = None) -> str:
    """``url`` if given, else ``$QUOTE_PIPELINE_DATABASE_URL``, else the SQLite default."""
    return url or os.environ.get(DATABASE_URL_ENV) or default_database_url()


def display_url(url: str | URL) -> str:
    """The URL with its password masked, for logs and the UI."""
    return make_url(url).render_as_string(hide_password=True)


def database_error_line(exc: Exception, url: str | URL | None = None) -> str:
    """A database error as one line: the driver's own first line (``connection refused``),
    not SQLAlchemy's wrapping, with ``url``'s password masked where a driver quotes it (in a
    URL or a ``password=`` keyword; a bare word equal to it, a user name say, is left)."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc
    lines = str(cause).strip().splitlines()
    line = lines[0].strip() if lines else type(cause).__name__
    password = make_url(url).password if url is not None else None
    if password:
        for quoted in (f":{password}@", f"password={password}", f"password='{password}'"):
            line = line.replace(quoted, quoted.replace(str(password), "***"))
    return line


def create_db_engine(url: str | None = None, *, upgrade: bool = True) -> Engine:
    """An engine for ``url`` (see :func:`resolve_database_url`) with the schema in place.

    The schema is migrated to the head on first use (:func:`ensure_schema`: one small query
    when it is already there), so no set-up step is needed. ``upgrade=False`` leaves the
    database as it is, for ``quote-pipeline db current``/``db upgrade``, which look at or
    choose the revision themselves. A bare ``postgresql://`` URL uses psycopg2 (SQLAlchemy
    2.0; see pyproject.toml).
    """
    try:
        engine = _new_engine(make_url(resolve_database_url(url)))
    except (sa.exc.ArgumentError, ValueError, ImportError) as exc:
        # SQLAlchemy's messages name no URL; `from None` keeps the cause's frames out too.
        raise DatabaseUrlError(f"unusable database URL: {exc}") from None
    if upgrade:
        try:
            ensure_schema(engine)
        except BaseException:
            engine.dispose()
            raise
    return engine


def _new_engine(parsed: URL) -> Engine:
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Wait for a concurrent writer (a schedule tick beside a backfill) rather than fail.
        return sa.create_engine(parsed, connect_args={"timeout": 30})
    return sa.create_engine(parsed, pool_pre_ping=True)
