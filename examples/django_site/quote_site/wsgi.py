"""WSGI entry point (``gunicorn quote_site.wsgi`` from examples/django_site).

A bad setting stops the import with one line on stderr (``quote_site: error: ...``) and
``SystemExit(1)``, as ``manage.py`` does.
"""

from __future__ import annotations

import os
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quote_site.settings")

try:
    application = get_wsgi_application()
except ImproperlyConfigured as exc:
    _lines = str(exc).strip().splitlines()
    print(f"quote_site: error: {_lines[0] if _lines else 'ImproperlyConfigured'}", file=sys.stderr)
    raise SystemExit(1) from None
