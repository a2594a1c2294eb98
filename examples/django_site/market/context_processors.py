"""What every page's template gets: the Dagster UI link and the viewer's time zone."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from market.middleware import TIME_ZONE_CHOICES, TIME_ZONE_PARAM


def site(request: HttpRequest) -> dict[str, Any]:
    """The Dagster UI URL, the current zone's name and the zones offered to pick from."""
    current = timezone.get_current_timezone_name()
    choices = list(TIME_ZONE_CHOICES)
    if current not in choices:
        choices.insert(0, current)
    return {
        "dagster_url": settings.QUOTE_PIPELINE_DAGSTER_URL,
        "viewer_time_zone": current,
        "time_zone_choices": choices,
        "time_zone_param": TIME_ZONE_PARAM,
    }
