"""Where the data lives: the database URL, the engine and the schema."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from quote_pipeline.storage.schema import metadata

DATABASE_URL_ENV = "QUOTE_PIPELINE_DATABASE_URL"
DATA_DIR_ENV = "QUOTE_PIPELINE_DATA_DIR"


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


def create_db_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` (see :func:`resolve_database_url`) with the schema in place.

    A bare ``postgresql://`` URL uses psycopg2 (SQLAlchemy 2.0; see pyproject.toml).
    """
    parsed = make_url(resolve_database_url(url))
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Wait for a concurrent writer (a schedule tick beside a backfill) rather than fail.
        engine = sa.create_engine(parsed, connect_args={"timeout": 30})
    else:
        engine = sa.create_engine(parsed, pool_pre_ping=True)
    metadata.create_all(engine)
    return engine
