#!/usr/bin/env python
"""Django's command-line utility for the quote_pipeline example site.

A bad setting (an unusable database URL, a Dagster URL with a password, no secret key...)
stops it with one line on stderr, ``quote_site: error: <what is wrong>``, and exit status 1.
"""

from __future__ import annotations

import os
import sys


def fail(exc: BaseException) -> None:
    """Print ``exc`` as the one-line error of a bad setting and exit 1."""
    lines = str(exc).strip().splitlines()
    print(f"quote_site: error: {lines[0] if lines else type(exc).__name__}", file=sys.stderr)
    raise SystemExit(1)


def main() -> None:
    """Run a Django management command with this site's settings."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quote_site.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        # Import the settings now: Django's own command line would swallow the error here
        # and fail later, with a traceback.
        settings.INSTALLED_APPS  # noqa: B018
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        fail(exc)


if __name__ == "__main__":
    main()
