"""The site's environment variables, checked when the settings are imported.

Each reader returns the setting's value or raises ``ImproperlyConfigured`` with one line
naming the variable (``manage.py`` and ``wsgi.py`` print it as ``quote_site: error: ...`` and
exit 1). A message never quotes a value that may hold a secret.
"""

from __future__ import annotations

import zoneinfo
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off", ""})


def flag(name: str, raw: str | None, *, default: bool) -> bool:
    """A yes/no variable: 1/true/yes/on or 0/false/no/off (any case); unset, ``default``."""
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be 1/true/yes/on or 0/false/no/off, not {raw!r}")


def secret_key(raw: str | None, *, debug: bool) -> str:
    """``DJANGO_SECRET_KEY``; required unless ``DJANGO_DEBUG`` is on (then a dev-only key)."""
    if raw and raw.strip():
        return raw
    if debug:
        return "dev-only-insecure-quote-site-key"
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set: set it to a long random string (only DJANGO_DEBUG=1 "
        "runs without one)"
    )


def dagster_url(raw: str | None, *, name: str = "QUOTE_PIPELINE_DAGSTER_URL") -> str:
    """The Dagster webserver's base URL as ``scheme://host[:port][/path]``, nothing else.

    Refused: not http(s), no host, a bad port, a user or password (dagster-graphql's client
    would drop them anyway, and the URL is shown on every page), a query or a fragment.
    """
    value = (raw or "").strip() or "http://127.0.0.1:3000"
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        # The scheme and host are not known to be a URL's: do not echo what may be a secret.
        raise ImproperlyConfigured(f"{name} must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ImproperlyConfigured(
            f"{name}: a user name or password in the URL is not supported (credentials are "
            "not sent to Dagster, and the URL is shown on the pages): remove them"
        )
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{name}: the port must be a number from 1 to 65535") from None
    if port == 0:
        raise ImproperlyConfigured(f"{name}: the port must be a number from 1 to 65535")
    if parts.query or parts.fragment:
        raise ImproperlyConfigured(f"{name}: a query or fragment is not supported")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def positive_seconds(name: str, raw: str | None, *, default: int) -> int:
    """A whole number of seconds, 1 or more; unset or empty, ``default``."""
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ImproperlyConfigured(
            f"{name} must be a whole number of seconds (1 or more), not {raw.strip()!r}"
        )
    return value


def time_zone(name: str, raw: str | None, *, default: str) -> str:
    """An IANA time zone name; unset or empty, ``default``."""
    value = (raw or "").strip() or default
    if value not in zoneinfo.available_timezones() | {"UTC"}:
        raise ImproperlyConfigured(f"{name}: {value!r} is not an IANA time zone name")
    return value
