"""Settings of the example site: read-only pages over the pipeline's tables.

Everything comes from the environment, read once when the settings are imported:

- ``QUOTE_PIPELINE_DATABASE_URL`` — the pipeline's database (SQLAlchemy URL); unset, the
  pipeline's own default (``sqlite:///./data/quote_pipeline.db``, see
  :func:`quote_pipeline.storage.database.resolve_database_url`).
- ``QUOTE_PIPELINE_DAGSTER_URL`` — the Dagster webserver (UI and GraphQL), for the refresh
  button and the links to runs; default ``http://127.0.0.1:3000``.
- ``QUOTE_SITE_TIME_ZONE`` — the zone times are shown in unless the viewer picks another
  (``?tz=Europe/Berlin``, remembered in a cookie); default ``America/New_York``.
- ``DJANGO_SECRET_KEY``, ``DJANGO_DEBUG`` (1/true/yes), ``DJANGO_ALLOWED_HOSTS`` (commas).
"""

from __future__ import annotations

import os
from pathlib import Path

from quote_pipeline.storage.database import resolve_database_url
from quote_site.database import django_database

BASE_DIR = Path(__file__).resolve().parent.parent


def _flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "dev-only-insecure-quote-site-key"
DEBUG = _flag("DJANGO_DEBUG")
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if host.strip()
]

# --- the pipeline -----------------------------------------------------------------------------

QUOTE_PIPELINE_DATABASE_URL = resolve_database_url()
QUOTE_PIPELINE_DAGSTER_URL = (
    os.environ.get("QUOTE_PIPELINE_DAGSTER_URL") or "http://127.0.0.1:3000"
).rstrip("/")
# Where the refresh button launches `refresh_quotes` (workspace.yaml's code location).
QUOTE_PIPELINE_DAGSTER_LOCATION = os.environ.get(
    "QUOTE_PIPELINE_DAGSTER_LOCATION", "quote_pipeline"
)
QUOTE_PIPELINE_DAGSTER_REPOSITORY = "__repository__"
# Seconds a GraphQL call may take before the refresh is refused as "unreachable".
QUOTE_PIPELINE_DAGSTER_TIMEOUT = int(os.environ.get("QUOTE_PIPELINE_DAGSTER_TIMEOUT", "10"))

DATABASES = {
    "default": django_database(
        QUOTE_PIPELINE_DATABASE_URL, read_only=_flag("QUOTE_SITE_READ_ONLY", default=True)
    )
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
TIME_ZONE = os.environ.get("QUOTE_SITE_TIME_ZONE", "America/New_York")
LANGUAGE_CODE = "en-us"
USE_I18N = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"market": {"handlers": ["console"], "level": "INFO"}},
}
