"""App configuration."""

from __future__ import annotations

from django.apps import AppConfig


class MarketConfig(AppConfig):
    """Unmanaged models over the pipeline's tables: no migrations, ever."""

    name = "market"
    verbose_name = "Market data (quote_pipeline)"

    def ready(self) -> None:
        # Registers the schema revision system check; no database access here (the pages
        # check the revision on their first request).
        from market import schema_check  # noqa: F401
