"""The site's SQLAlchemy engine on the pipeline's database, for what Django's ORM does not
do: the chart (``quote_pipeline.charts``) and the schema revision check.

Read-only like Django's connection and made with ``sqlalchemy.create_engine`` directly (see
:func:`quote_site.database.sqlalchemy_engine`): it never migrates, and never creates a SQLite
file or directory.
"""

from __future__ import annotations

import threading

from django.conf import settings
from quote_site.database import sqlalchemy_engine
from sqlalchemy.engine import Engine

_engines: dict[tuple[str, bool], Engine] = {}
_engines_lock = threading.Lock()


def site_engine() -> Engine:
    """One engine per database URL and process, read-only unless ``QUOTE_SITE_READ_ONLY``
    is off."""
    key = (settings.QUOTE_PIPELINE_DATABASE_URL, settings.QUOTE_SITE_READ_ONLY)
    with _engines_lock:
        if key not in _engines:
            _engines[key] = sqlalchemy_engine(key[0], read_only=key[1])
        return _engines[key]


def dispose_engines() -> None:
    """Close and forget every cached engine (tests switching databases)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
