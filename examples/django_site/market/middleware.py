"""The viewer's time zone, and a clear page when the pipeline's tables cannot be read."""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from sqlalchemy.exc import SQLAlchemyError

from market.schema_check import schema_problem
from quote_pipeline.storage.database import database_error_line

logger = logging.getLogger("market")

TIME_ZONE_PARAM = "tz"
TIME_ZONE_COOKIE = "viewer_tz"
TIME_ZONE_COOKIE_AGE = 365 * 24 * 3600
# Offered in the page's picker; any IANA name works as ?tz=.
TIME_ZONE_CHOICES = (
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Tokyo",
    "Asia/Hong_Kong",
    "Australia/Sydney",
)


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones() | {"UTC"})


def valid_zone(name: str | None) -> zoneinfo.ZoneInfo | None:
    """The IANA zone ``name``, or None when it is not one."""
    if not name or name not in _known_zones():
        return None
    return zoneinfo.ZoneInfo(name)


class ViewerTimeZoneMiddleware:
    """Show times in the viewer's zone: ``?tz=Europe/Berlin`` picks one and remembers it in a
    cookie, ``?tz=`` forgets it; otherwise the cookie's, else ``settings.TIME_ZONE``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        asked = request.GET.get(TIME_ZONE_PARAM)
        zone = valid_zone(asked)
        if zone is None:
            zone = valid_zone(request.COOKIES.get(TIME_ZONE_COOKIE)) if asked != "" else None
        zone = zone or zoneinfo.ZoneInfo(settings.TIME_ZONE)
        timezone.activate(zone)
        try:
            response = self.get_response(request)
        finally:
            timezone.deactivate()
        if asked == "":
            response.delete_cookie(TIME_ZONE_COOKIE)
        elif valid_zone(asked) is not None:
            response.set_cookie(
                TIME_ZONE_COOKIE, asked, max_age=TIME_ZONE_COOKIE_AGE, samesite="Lax"
            )
        return response


def unavailable(request: HttpRequest, code: str, message: str) -> HttpResponse:
    """A one-line 503: a page, or JSON under /api/."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": code, "message": message}, status=503)
    return render(request, "market/error.html", {"message": message}, status=503)


def tables_unavailable(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The 503 of a database error (Django's or SQLAlchemy's): the driver's first line, the
    password masked; the traceback goes to the log."""
    logger.exception("reading the pipeline's tables failed", exc_info=exception)
    line = database_error_line(exception, settings.QUOTE_PIPELINE_DATABASE_URL)
    message = (
        f"The pipeline's tables could not be read ({line}). Has the pipeline run against this "
        "database (QUOTE_PIPELINE_DATABASE_URL)?"
    )
    return unavailable(request, "database_unavailable", message)


class TablesUnavailableMiddleware:
    """A database the site cannot use is a one-line 503 page (or JSON under /api/), not a
    traceback: a database error (tables not created yet, database down, a SQLite file that
    is not there), or a schema revision other than the head (checked on the first request,
    see :mod:`market.schema_check`)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            problem = schema_problem()
        except SQLAlchemyError as exc:
            return tables_unavailable(request, exc)
        if problem is not None:
            return unavailable(request, "schema_revision", f"{problem[0].upper()}{problem[1:]}.")
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DatabaseError | SQLAlchemyError):
            return None
        return tables_unavailable(request, exception)
