"""App configuration."""

from __future__ import annotations

from django.apps import AppConfig


class MarketConfig(AppConfig):
    """Unmanaged models over the pipeline's tables: no migrations, ever."""

    name = "market"
    verbose_name = "Market data (quote_pipeline)"
