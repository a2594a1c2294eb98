"""Run the example Django site (examples/django_site) inside pytest, without pytest-django.

``django_site(database_url, dagster_url=...)`` points the site at a database and a Dagster
webserver and yields a ``django.test.Client``. The first use sets Django up (settings module,
``django.setup()``, the test environment); later uses in the same process, on another
database, close Django's connections and swap ``DATABASES`` (the project's autouse fixture
clears ``QUOTE_PIPELINE_DATABASE_URL`` from the environment per test, so the URL is handed to
the settings here, not read from the environment afterwards; so is ``DJANGO_SECRET_KEY``). On
the way out every connection the site opened (Django's and its SQLAlchemy engine's) is closed,
so that the database can be dropped.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quote_pipeline_tests.support.environ import temporary_environ

SITE_DIR = Path(__file__).resolve().parents[2] / "examples" / "django_site"
SETTINGS_MODULE = "quote_site.settings"
# The site refuses to start without a key unless DJANGO_DEBUG is on.
SECRET_KEY = "test-only-quote-site-secret-key-5b0c2e"
# Nothing listens on the discard port: a refresh POST finds the webserver unreachable.
UNREACHABLE_DAGSTER_URL = "http://127.0.0.1:9"


def _ensure_django(database_url: str) -> None:
    """Import and set up Django with the site's settings, once per process."""
    if str(SITE_DIR) not in sys.path:
        sys.path.insert(0, str(SITE_DIR))
    from django.apps import apps

    if apps.ready:
        return
    import django
    from django.test.utils import setup_test_environment

    # Set for the setup only: left in os.environ, the variable would reach every process the
    # rest of this test worker starts (a Celery worker then loads the site as its Django app).
    environment = {
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "QUOTE_PIPELINE_DATABASE_URL": database_url,
        "DJANGO_SECRET_KEY": SECRET_KEY,
    }
    with temporary_environ(environment):
        django.setup()
    setup_test_environment()  # ALLOWED_HOSTS gets "testserver"; response.context is kept


def close_site_connections() -> None:
    """Close Django's connections and the site engine's pools; check the schema revision
    again on the next request."""
    from django.db import connections
    from market import schema_check
    from market.engine import dispose_engines

    connections.close_all()
    dispose_engines()
    schema_check.forget()


def use_database(database_url: str) -> None:
    """Point the (set-up) site at ``database_url``: new ``DATABASES``, fresh connections."""
    from django.conf import settings
    from django.db import connections
    from quote_site.database import django_database

    close_site_connections()
    settings.QUOTE_PIPELINE_DATABASE_URL = database_url
    settings.DATABASES = {"default": django_database(database_url)}
    for alias in list(connections.settings):
        with contextlib.suppress(AttributeError):  # never opened in this thread
            del connections[alias]
    # ConnectionHandler caches the settings it was built from; read DATABASES again.
    connections.__dict__.pop("settings", None)
    connections._settings = None


@contextmanager
def django_site(database_url: str, *, dagster_url: str = UNREACHABLE_DAGSTER_URL) -> Iterator[Any]:
    """A ``django.test.Client`` on the site reading ``database_url``, refreshing through the
    Dagster webserver at ``dagster_url``."""
    _ensure_django(database_url)
    from django.conf import settings
    from django.test import Client

    use_database(database_url)
    saved_dagster_url = settings.QUOTE_PIPELINE_DAGSTER_URL
    from quote_site.environment import dagster_url as checked_dagster_url

    settings.QUOTE_PIPELINE_DAGSTER_URL = checked_dagster_url(dagster_url)
    try:
        yield Client()
    finally:
        settings.QUOTE_PIPELINE_DAGSTER_URL = saved_dagster_url
        close_site_connections()


# --- "no view makes an outgoing HTTP request" -------------------------------------------------


@dataclass
class ConnectionLog:
    """Every connection Python code opened while :func:`record_connections` was active.

    libpq (psycopg2) connects from C, so PostgreSQL never appears here; SQLite opens no socket.
    Anything recorded is therefore a request of Python code: an HTTP client, a GraphQL call.
    """

    addresses: list[Any] = field(default_factory=list)


@contextmanager
def record_connections() -> Iterator[ConnectionLog]:
    """Record (and refuse) every ``socket.connect``/``connect_ex`` made meanwhile."""
    log = ConnectionLog()
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        log.addresses.append(address)
        raise ConnectionRefusedError(f"test: outgoing connection to {address!r} refused")

    def connect_ex(self: socket.socket, address: Any) -> int:
        log.addresses.append(address)
        return 111  # ECONNREFUSED

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    try:
        yield log
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]
