"""Is the database at the schema revision this site's models were written for?

The pipeline's migrations own the tables; a database left at an older revision (the pipeline
was upgraded but ``quote-pipeline db upgrade`` not run, or an older deployment) has other
columns than the models. The check reads the revision with
``quote_pipeline.storage.schema_migrations`` on the site's read-only engine: lazily, on the
first request (no database access at import or start-up), and until the database is found at
the head — then never again in this process.

``manage.py check --database default`` runs it too (a system check tagged ``database``).
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core import checks

from market.engine import site_engine
from quote_pipeline.storage.schema_migrations import (
    SchemaMigrationError,
    current_revision,
    head_revision,
    known_revisions,
)

_at_head: set[str] = set()  # database URLs found at the head revision by this process
_lock = threading.Lock()


def schema_problem() -> str | None:
    """None when the database is at the head revision, else one line saying what to do.

    Raises SQLAlchemy's errors when the database cannot be read at all.
    """
    url = settings.QUOTE_PIPELINE_DATABASE_URL
    with _lock:
        if url in _at_head:
            return None
    head = head_revision()
    try:
        current = current_revision(site_engine())
    except SchemaMigrationError as exc:
        return f"the database's schema revision cannot be read: {exc}"
    if current == head:
        with _lock:
            _at_head.add(url)
        return None
    if current is None:
        return (
            f"the database has no schema revision (the pipeline has not created its tables "
            f"there), this site expects {head}: run `quote-pipeline db upgrade`"
        )
    if current not in known_revisions():
        return (
            f"the database is at revision {current}, newer than this site's quote_pipeline "
            f"knows (it expects {head}): upgrade quote_pipeline where the site runs"
        )
    return (
        f"the database is at revision {current}, this site expects {head}: run "
        "`quote-pipeline db upgrade`"
    )


def forget() -> None:
    """Check again on the next request (tests switching databases)."""
    with _lock:
        _at_head.clear()


@checks.register(checks.Tags.database)
def check_schema_revision(databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check --database default``: the revision, as the pages check it."""
    if not databases:
        return []
    from sqlalchemy.exc import SQLAlchemyError

    from quote_pipeline.storage.database import database_error_line

    try:
        problem = schema_problem()
    except SQLAlchemyError as exc:
        problem = database_error_line(exc, settings.QUOTE_PIPELINE_DATABASE_URL)
    return [] if problem is None else [checks.Error(problem, id="market.E001")]
