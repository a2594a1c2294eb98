"""The pipeline's SQLAlchemy database URL as a Django ``DATABASES`` entry and as a read-only
SQLAlchemy engine (for the chart and the schema revision check).

The site reads the tables the pipeline writes, so it takes the same URL the pipeline does
(``QUOTE_PIPELINE_DATABASE_URL``, else the pipeline's SQLite default) and turns it into
Django's settings: ``postgresql://user:pw@host:port/db`` (any ``+driver``; Django and the
engine use psycopg2 here) and ``sqlite:///path``. Both connections are read-only by default
(the site never writes a table it reads), and neither ever creates a SQLite file or its
directory: a missing file is an error on the page, not a new empty database.

:func:`site_database` checks the URL once, when the settings are imported; every problem is
an ``ImproperlyConfigured`` of one line that never quotes the URL (it may hold a password).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from django.core.exceptions import ImproperlyConfigured
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError

POSTGRESQL_ENGINE = "django.db.backends.postgresql"
SQLITE_ENGINE = "django.db.backends.sqlite3"
ENV = "QUOTE_PIPELINE_DATABASE_URL"
# libpq connection keywords a URL's query may carry to the site's connections; anything else
# (say ``?ssl=require`` from an asyncpg URL) is refused rather than handed to libpq blindly.
LIBPQ_KEYWORDS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
    "host",
    "options",
    "target_session_attrs",
)
READ_ONLY_OPTION = "-c default_transaction_read_only=on"
SQLITE_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class SiteDatabase:
    """A checked database URL: PostgreSQL connection parameters or a SQLite file."""

    backend: str  # "postgresql" or "sqlite"
    read_only: bool
    database: str = ""  # PostgreSQL database name
    username: str = ""
    password: str = ""
    host: str = ""
    port: int | None = None
    libpq: dict[str, str] = field(default_factory=dict)  # with the read-only option, if on
    sqlite_path: Path | None = None

    @property
    def sqlite_uri(self) -> str:
        """The SQLite file as a URI that opens it without ever creating it (``mode=ro``, or
        ``mode=rw`` when writes are allowed)."""
        assert self.sqlite_path is not None
        mode = "ro" if self.read_only else "rw"
        return f"file:{quote(str(self.sqlite_path))}?mode={mode}"


def site_database(url: str, *, read_only: bool = True) -> SiteDatabase:
    """Check ``url`` (see the module docstring); ``ImproperlyConfigured`` when unusable."""
    try:
        parsed = make_url(url)
        port = parsed.port
    except (ArgumentError, ValueError):
        # A bad port ("h:abc") fails in make_url with int()'s message, which quotes it.
        raise ImproperlyConfigured(
            f"{ENV} is not a usable database URL (check its form and port)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if port is not None and not 0 < port < 65536:
            raise ImproperlyConfigured(f"{ENV}: the port must be 1 to 65535, not {port}")
        libpq: dict[str, str] = {}
        for key, value in parsed.query.items():
            if key not in LIBPQ_KEYWORDS:
                raise ImproperlyConfigured(
                    f"{ENV}: the query parameter {key!r} is not a libpq keyword the site "
                    f"passes on ({', '.join(LIBPQ_KEYWORDS)})"
                )
            libpq[key] = value if isinstance(value, str) else value[-1]
        if read_only:
            given = libpq.get("options")
            libpq["options"] = f"{given} {READ_ONLY_OPTION}" if given else READ_ONLY_OPTION
        return SiteDatabase(
            backend=backend,
            read_only=read_only,
            database=parsed.database or "",
            username=parsed.username or "",
            password=parsed.password or "",
            host=parsed.host or "",
            port=port,
            libpq=libpq,
        )
    if backend == "sqlite":
        if (
            not parsed.database
            or parsed.database == ":memory:"
            or parsed.database.startswith("file:")
        ):
            raise ImproperlyConfigured(
                f"{ENV}: the site needs the pipeline's SQLite file (sqlite:///path/to/file.db)"
            )
        if parsed.query:
            raise ImproperlyConfigured(
                f"{ENV}: the site takes no query parameters on a SQLite URL "
                f"(got {', '.join(sorted(parsed.query))})"
            )
        return SiteDatabase(
            backend=backend, read_only=read_only, sqlite_path=Path(parsed.database).resolve()
        )
    raise ImproperlyConfigured(
        f"{ENV}: the {backend!r} backend is not supported (postgresql:// or sqlite:///)"
    )


def django_database(url: str, *, read_only: bool = True) -> dict[str, Any]:
    """Django's ``DATABASES["default"]`` for the SQLAlchemy ``url``.

    ``read_only`` makes every transaction read-only (PostgreSQL's
    ``default_transaction_read_only``; SQLite opened with ``mode=ro``). A SQLite file is
    always opened as a URI with a ``mode`` (``ro``, else ``rw``), so a missing one is never
    created.
    """
    checked = site_database(url, read_only=read_only)
    if checked.backend == "postgresql":
        return {
            "ENGINE": POSTGRESQL_ENGINE,
            "NAME": checked.database,
            "USER": checked.username,
            "PASSWORD": checked.password,
            "HOST": checked.host,
            "PORT": "" if checked.port is None else str(checked.port),
            "OPTIONS": dict(checked.libpq),
        }
    return {
        "ENGINE": SQLITE_ENGINE,
        "NAME": checked.sqlite_uri,
        "OPTIONS": {"uri": True, "timeout": SQLITE_TIMEOUT_SECONDS},
    }


def sqlalchemy_engine(url: str, *, read_only: bool = True) -> Engine:
    """A SQLAlchemy engine on the same database as Django's connection, with the same
    read-only options, made with ``sqlalchemy.create_engine`` directly: it never migrates
    and never creates a SQLite file or directory (unlike the pipeline's
    ``create_db_engine``)."""
    checked = site_database(url, read_only=read_only)
    if checked.backend == "postgresql":
        engine_url = sa.engine.URL.create(
            "postgresql+psycopg2",
            username=checked.username or None,
            password=checked.password or None,
            host=checked.host or None,
            port=checked.port,
            database=checked.database or None,
        )
        return sa.create_engine(engine_url, connect_args=dict(checked.libpq), pool_pre_ping=True)
    assert checked.sqlite_path is not None
    mode = "ro" if checked.read_only else "rw"
    engine_url = sa.engine.URL.create(
        "sqlite",
        database=f"file:{quote(str(checked.sqlite_path))}",
        query={"mode": mode, "uri": "true"},
    )
    return sa.create_engine(engine_url, connect_args={"timeout": SQLITE_TIMEOUT_SECONDS})
