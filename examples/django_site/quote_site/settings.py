"""Settings of the example site: read-only pages over the pipeline's tables.

Everything comes from the environment, read and checked once when the settings are imported
(a bad value is one ``ImproperlyConfigured`` line, see :mod:`quote_site.environment`):

- ``QUOTE_PIPELINE_DATABASE_URL`` — the pipeline's database (SQLAlchemy URL); unset, the
  pipeline's own default (``sqlite:///./data/quote_pipeline.db``, see
  :func:`quote_pipeline.storage.database.resolve_database_url`).
- ``QUOTE_PIPELINE_DAGSTER_URL`` — the Dagster webserver (UI and GraphQL), for the refresh
  button and the links to runs; default ``http://127.0.0.1:3000``; no user or password.
- ``QUOTE_PIPELINE_DAGSTER_LOCATION``, ``QUOTE_PIPELINE_DAGSTER_TIMEOUT`` — where
  ``refresh_quotes`` is launched, and how long a GraphQL call may take (seconds).
- ``QUOTE_SITE_TIME_ZONE`` — the zone times are shown in unless the viewer picks another
  (``?tz=Europe/Berlin``, remembered in a cookie); default ``America/New_York``.
- ``QUOTE_SITE_READ_ONLY`` — open the database read-only (default on).
- ``DJANGO_SECRET_KEY`` (required unless ``DJANGO_DEBUG`` is on), ``DJANGO_DEBUG``
  (1/true/yes/on), ``DJANGO_ALLOWED_HOSTS`` (commas).
"""

from __future__ import annotations

import os
from pathlib import Path

from quote_pipeline.storage.database import resolve_database_url
from quote_site import environment
from quote_site.database import django_database

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = environment.flag("DJANGO_DEBUG", os.environ.get("DJANGO_DEBUG"), default=False)
SECRET_KEY = environment.secret_key(os.environ.get("DJANGO_SECRET_KEY"), debug=DEBUG)
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if host.strip()
]

# --- the pipeline -----------------------------------------------------------------------------

QUOTE_PIPELINE_DATABASE_URL = resolve_database_url()
# scheme://host:port/path only: a URL with a user or password is refused.
QUOTE_PIPELINE_DAGSTER_URL = environment.dagster_url(os.environ.get("QUOTE_PIPELINE_DAGSTER_URL"))
# Where the refresh button launches `refresh_quotes` (workspace.yaml's code location).
QUOTE_PIPELINE_DAGSTER_LOCATION = (
    os.environ.get("QUOTE_PIPELINE_DAGSTER_LOCATION") or "quote_pipeline"
).strip()
QUOTE_PIPELINE_DAGSTER_REPOSITORY = "__repository__"
# Seconds a GraphQL call may take before the refresh is refused as "unreachable".
QUOTE_PIPELINE_DAGSTER_TIMEOUT = environment.positive_seconds(
    "QUOTE_PIPELINE_DAGSTER_TIMEOUT", os.environ.get("QUOTE_PIPELINE_DAGSTER_TIMEOUT"), default=10
)

QUOTE_SITE_READ_ONLY = environment.flag(
    "QUOTE_SITE_READ_ONLY", os.environ.get("QUOTE_SITE_READ_ONLY"), default=True
)
DATABASES = {
    "default": django_database(QUOTE_PIPELINE_DATABASE_URL, read_only=QUOTE_SITE_READ_ONLY)
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Django ----------------------------------------------------------------------------------

# No auth, sessions, admin or contenttypes: nothing here needs a table of Django's own, so
# the site never migrates (its models are unmanaged views of the pipeline's tables).
INSTALLED_APPS = [
    "django.contrib.messages",
    "market",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "market.middleware.ViewerTimeZoneMiddleware",
    "market.middleware.TablesUnavailableMiddleware",
]

ROOT_URLCONF = "quote_site.urls"
WSGI_APPLICATION = "quote_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.messages.context_processors.messages",
                "market.context_processors.site",
            ],
        },
    },
]

# Messages ride in a signed cookie: no session table.
MESSAGE_STORAGE = "django.contrib.messages.storage.cookie.CookieStorage"

USE_TZ = True
TIME_ZONE = environment.time_zone(
    "QUOTE_SITE_TIME_ZONE", os.environ.get("QUOTE_SITE_TIME_ZONE"), default="America/New_York"
)
LANGUAGE_CODE = "en-us"
USE_I18N = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"market": {"handlers": ["console"], "level": "INFO"}},
}
