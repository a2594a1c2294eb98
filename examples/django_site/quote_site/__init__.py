"""The example site's Django project: settings, URLs, WSGI entry point."""
