"""WSGI entry point (``gunicorn quote_site.wsgi`` from examples/django_site)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quote_site.settings")

application = get_wsgi_application()
